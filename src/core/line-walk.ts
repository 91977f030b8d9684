/**
 * Scan memory and the WebAssembly line walk that works in it.
 *
 * Read buffers of large scans live in one shared WebAssembly.Memory, so that the
 * compiled walk (wasm/line-walk.ts) reads their lines in place on every thread. The
 * walk checks a line's grammar about three times as fast as the JavaScript walk,
 * because it searches strings 16 bytes at a time. LineScanner uses it for lines in
 * such memory and falls back to its own walk everywhere else, with the same verdicts.
 *
 * Memory layout: the first RESERVED_BYTES contain a slot counter and one slot per
 * walk instance, with its member keys and the results of its last walk. The read
 * buffers follow, then TAIL_PADDING_BYTES that no buffer covers.
 */

import { readFileSync } from 'node:fs';

/** Page size of WebAssembly memory, in bytes, fixed by the WebAssembly specification. */
const WASM_PAGE_BYTES = 64 * 1024;

/** Bytes at the start of a scan memory reserved for the walk instances' slots. */
const RESERVED_BYTES = 64 * 1024;

/** Size of one instance's slot, in bytes; the layout inside is fixed by wasm/line-walk.ts. */
const SLOT_BYTES = 1024;

/** The first slot starts after the header (one slot's size, for simple arithmetic). */
const SLOT_COUNT = RESERVED_BYTES / SLOT_BYTES - 1;

// Header of a scan memory, as Int32 indexes.
/** Slots taken in the current generation. */
const HEADER_SLOTS_TAKEN = 0;
/** Generation: counts the runs that used the memory; instances of an earlier run are stale. */
const HEADER_GENERATION = 1;

/**
 * Largest end of a scan memory, in bytes. The compiled walk returns addresses as
 * signed 32-bit integers, so the memory stays below 2 GiB; larger read buffers
 * (chunk sizes beyond 700 MB) are plain shared memory that the JavaScript walk reads.
 */
const MAX_SCAN_MEMORY_BYTES = 2 ** 31 - WASM_PAGE_BYTES;

/** Idle scan memories kept for the next run, so a service does not reserve new address space for every call. */
const MAX_IDLE_SCAN_MEMORIES = 2;

/**
 * Unused bytes after the last buffer. A walk reads at most 16 bytes past a line's
 * line feed (one SIMD load) and 4 bytes past a literal; 64 bytes cover both.
 */
const TAIL_PADDING_BYTES = 64;

// Offsets inside a slot, as in wasm/line-walk.ts.
const RESULT_BYTES = 16;
const TIMESTAMP_MS = 112;
const LENGTH_MASKS = 128;
const KEY_BYTES = 256;
/** Maximum length of a member key the compiled walk matches, in bytes; a scanner with a longer key uses the JavaScript walk. */
export const MAX_WALK_KEY_BYTES = 63;

// Results of walkRecord besides the index after the object, as in wasm/line-walk.ts.
export const WALK_INVALID = -1;
export const WALK_TOO_DEEP = -2;
export const WALK_ESCAPED_KEY = -3;

/** The memory behind each buffer that acquireScanBuffers made, by the buffer's ArrayBuffer. */
const scanMemories = new WeakMap<ArrayBufferLike, WebAssembly.Memory>();

/** The compiled module; undefined until first needed, null when this runtime cannot compile it. */
let compiledModule: WebAssembly.Module | null | undefined;

function walkModule(): WebAssembly.Module | null {
  if (compiledModule === undefined) {
    try {
      compiledModule = new WebAssembly.Module(readFileSync(new URL('./line-walk.wasm', import.meta.url)));
    } catch {
      // A runtime without WebAssembly SIMD, or a build without the module: every line takes the JavaScript walk, a third as fast.
      compiledModule = null;
    }
  }
  return compiledModule;
}

/** True when the compiled walk is available in this process. */
export function lineWalkAvailable(): boolean {
  return walkModule() !== null;
}

/** Read buffers of one run, and the call that returns them when the run is over. */
export interface ScanBuffers {
  readonly buffers: Buffer[];
  /** Returns the buffers for the next run. No thread may read them afterwards. */
  release(): void;
}

interface IdleScanMemory {
  memory: WebAssembly.Memory;
  count: number;
  size: number;
}

const idleScanMemories: IdleScanMemory[] = [];

let addressSpaceLimited: boolean | undefined;

/**
 * True when the process has a finite address-space limit (`ulimit -v`). V8 reserves
 * about 10 GiB of address space for each WebAssembly memory, and under a limit that
 * reservation can leave too little for a worker thread, and V8 then aborts the process.
 */
export function addressSpaceIsLimited(): boolean {
  if (addressSpaceLimited === undefined) {
    try {
      const limits = readFileSync('/proc/self/limits', 'latin1');
      const line = limits.split('\n').find((text) => text.startsWith('Max address space')) ?? '';
      addressSpaceLimited = line !== '' && !/\sunlimited\s/.test(line);
    } catch {
      // Without /proc there is no limit to read, so none is assumed.
      addressSpaceLimited = false;
    }
  }
  return addressSpaceLimited;
}

/**
 * Takes `count` read buffers of `size` bytes in one shared scan memory: an idle one
 * of the same shape, or a new one. Where WebAssembly memory is not wanted (a finite
 * address-space limit, more than 2 GiB) or cannot be had, they are plain shared
 * buffers that the JavaScript walk reads.
 */
export function acquireScanBuffers(count: number, size: number): ScanBuffers {
  const plain = (): ScanBuffers => ({ buffers: Array.from({ length: count }, () => Buffer.from(new SharedArrayBuffer(size))), release: () => undefined });
  const usedBytes = RESERVED_BYTES + count * size + TAIL_PADDING_BYTES;
  if (usedBytes > MAX_SCAN_MEMORY_BYTES || addressSpaceIsLimited()) {
    return plain();
  }

  const idleIndex = idleScanMemories.findIndex((idle) => idle.count === count && idle.size === size);
  let memory: WebAssembly.Memory;
  if (idleIndex >= 0) {
    memory = idleScanMemories.splice(idleIndex, 1)[0]!.memory;
    // A new generation: walk instances of the last run are stale and their slots are free again.
    const header = new Int32Array(memory.buffer, 0, 2);
    Atomics.store(header, HEADER_SLOTS_TAKEN, 0);
    Atomics.add(header, HEADER_GENERATION, 1);
  } else {
    const pages = Math.ceil(usedBytes / WASM_PAGE_BYTES);
    try {
      memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    } catch {
      return plain();
    }
    registerScanMemory(memory);
  }

  let released = false;
  return {
    buffers: Array.from({ length: count }, (_, index) => Buffer.from(memory.buffer, RESERVED_BYTES + index * size, size)),
    release: () => {
      if (released) {
        return;
      }
      released = true;
      if (idleScanMemories.length < MAX_IDLE_SCAN_MEMORIES) {
        idleScanMemories.push({ memory, count, size });
      }
    },
  };
}

/** Makes the buffers of `memory` known on this thread, for a memory that another thread allocated. */
export function registerScanMemory(memory: WebAssembly.Memory): void {
  scanMemories.set(memory.buffer, memory);
}

/** Returns the scan memory that contains `buffer`, if any. */
export function scanMemoryOf(buffer: ArrayBufferLike): WebAssembly.Memory | undefined {
  return scanMemories.get(buffer);
}

/**
 * One instance of the compiled walk, bound to one scan memory and one slot in it.
 * Positions in and out are indexes into the whole memory.
 */
export class LineWalk {
  /** Results of the last walk: per member, type, first byte, end and escape flag. */
  readonly results: Int32Array;
  /** Element 0: the last timestamp string without escapes that the walk parsed, in epoch ms, or NaN. */
  readonly timestampMs: Float64Array;

  private constructor(
    private readonly walkRecordAt: (index: number) => number,
    results: Int32Array,
    timestampMs: Float64Array,
    private readonly header: Int32Array,
    private readonly generation: number,
  ) {
    this.results = results;
    this.timestampMs = timestampMs;
  }

  /** True while the run that created this instance still uses the memory; a later run may have given its slot to another. */
  current(): boolean {
    return this.header[HEADER_GENERATION] === this.generation;
  }

  /**
   * An instance for `memory` that matches `memberKeys` (index 0 unused), or null
   * when the module is not available, a key is too long for it, or the memory's
   * slots are taken (a run binds one instance per thread).
   */
  static create(memory: WebAssembly.Memory, memberKeys: readonly Uint8Array[]): LineWalk | null {
    const compiled = walkModule();
    if (compiled === null || memberKeys.some((key) => key.length > MAX_WALK_KEY_BYTES)) {
      return null;
    }

    // Threads share the memory, so each instance takes its own slot from the shared counter.
    const header = new Int32Array(memory.buffer, 0, 2);
    const generation = Atomics.load(header, HEADER_GENERATION);
    const slotIndex = Atomics.add(header, HEADER_SLOTS_TAKEN, 1);
    if (slotIndex >= SLOT_COUNT) {
      return null;
    }
    const slotAddress = SLOT_BYTES * (slotIndex + 1);
    const slot = new Uint8Array(memory.buffer, slotAddress, SLOT_BYTES);
    slot.fill(0);
    for (let member = 1; member < memberKeys.length; member++) {
      const key = memberKeys[member]!;
      slot[LENGTH_MASKS + key.length]! |= 1 << member;
      slot.set(key, KEY_BYTES + member * (MAX_WALK_KEY_BYTES + 1));
    }

    const instance = new WebAssembly.Instance(compiled, { env: { memory } });
    const exports = instance.exports as { bind: (address: number) => void; walkRecord: (index: number) => number };
    exports.bind(slotAddress);
    return new LineWalk(
      exports.walkRecord,
      new Int32Array(memory.buffer, slotAddress, (memberKeys.length * RESULT_BYTES) / 4),
      new Float64Array(memory.buffer, slotAddress + TIMESTAMP_MS, 1),
      header,
      generation,
    );
  }

  /**
   * Walks the object whose `{` is at `index` in the memory; its line must end with a
   * line feed. Returns the index after the object, or WALK_INVALID, WALK_TOO_DEEP or
   * WALK_ESCAPED_KEY.
   */
  walkRecord(index: number): number {
    return this.walkRecordAt(index);
  }
}
