/**
 * The SHA-256 of a run's deleted lines, for the cleanup history, computed on the
 * main thread or, for large logs, on a worker thread.
 */

import { createHash, type Hash } from 'node:crypto';

import type { DeletedLinesSink } from './file-cleanup.js';

/** The digest of a run: lines go to the current file, which joins the run's digest only when committed. */
export interface RunDigest extends DeletedLinesSink {
  beginFile(): void;
  endFile(committed: boolean): void;
  digest(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Computes the digest on the calling thread. Each file hashes into a copy of the
 * run's state, which becomes the run's state only when the file's change is
 * committed, so a file that failed half way leaves no trace in the digest.
 */
export class DeletedLinesDigest implements RunDigest {
  private runHash: Hash = createHash('sha256');
  private fileHash: Hash | null = null;

  beginFile(): void {
    this.fileHash = this.runHash.copy();
  }

  add(bytes: Uint8Array): void {
    this.fileHash?.update(bytes);
  }

  async flush(): Promise<void> {}

  endFile(committed: boolean): void {
    if (committed && this.fileHash !== null) {
      this.runHash = this.fileHash;
    }
    this.fileHash = null;
  }

  async digest(): Promise<string> {
    return this.runHash.copy().digest('hex');
  }

  async close(): Promise<void> {}
}

export type DigestRequest =
  | { type: 'digest-begin' }
  | { type: 'digest-add'; bytes: ArrayBuffer }
  | { type: 'digest-shared'; memory: SharedArrayBuffer; offset: number; ranges: number[] }
  | { type: 'digest-end'; committed: boolean }
  | { type: 'digest-result' };

export type DigestReply =
  | { type: 'digest-added'; bytes: number }
  | { type: 'digest-shared' }
  | { type: 'digest-result'; hex: string };

export function isDigestRequest(message: { type: string }): message is DigestRequest {
  return message.type.startsWith('digest-');
}

export function isDigestReply(message: { type: string }): message is DigestReply {
  return message.type.startsWith('digest-');
}

/** The digest's state on the thread that hashes: the same commit rule as DeletedLinesDigest. */
export class DigestState {
  private runHash: Hash = createHash('sha256');
  private fileHash: Hash | null = null;

  handle(request: DigestRequest): DigestReply | null {
    switch (request.type) {
      case 'digest-begin':
        this.fileHash = this.runHash.copy();
        return null;
      case 'digest-add':
        this.fileHash?.update(new Uint8Array(request.bytes));
        return { type: 'digest-added', bytes: request.bytes.byteLength };
      case 'digest-shared':
        for (let index = 0; index < request.ranges.length; index += 2) {
          const start = request.ranges[index]!;
          this.fileHash?.update(new Uint8Array(request.memory, request.offset + start, request.ranges[index + 1]! - start));
        }
        return { type: 'digest-shared' };
      case 'digest-end':
        if (request.committed && this.fileHash !== null) {
          this.runHash = this.fileHash;
        }
        this.fileHash = null;
        return null;
      case 'digest-result':
        return { type: 'digest-result', hex: this.runHash.copy().digest('hex') };
    }
  }
}

/** Returns the total length of `[start, end)` pairs. */
function rangeBytes(ranges: readonly number[]): number {
  let total = 0;
  for (let index = 0; index < ranges.length; index += 2) {
    total += ranges[index + 1]! - ranges[index]!;
  }
  return total;
}

/** A message channel to the thread that hashes. */
export interface DigestChannel {
  /** True once the thread takes requests; before that, shared ranges are copied rather than waited for. */
  ready(): boolean;
  post(request: DigestRequest, transfer?: ArrayBuffer[]): void;
  onReply(handler: (reply: DigestReply) => void): void;
  onError(handler: (error: Error) => void): void;
}

/** Bytes collected before they are sent to the worker in one message. */
const BATCH_BYTES = 1024 * 1024;

/** Bytes sent but not yet hashed beyond which `drain` waits, so memory stays bounded when hashing lags. */
const MAX_OUTSTANDING_BYTES = 32 * 1024 * 1024;

/**
 * Bytes of shared ranges copied while the hashing thread is still starting; beyond
 * them the ranges wait for it in place. Enough for a small file. 4 MiB added 5 MiB
 * to peak RSS in the benchmark's next-day run, and a slow start could otherwise fill
 * MAX_OUTSTANDING_BYTES.
 */
const MAX_COPIED_BEFORE_READY_BYTES = 1024 * 1024;

/**
 * Computes the digest on another thread, the scan helper's. Deleted ranges of the
 * shared read buffers are hashed in place; other bytes are copied (a memcpy, about
 * ten times cheaper than SHA-256) and sent in batches.
 */
export class ThreadedDigest implements RunDigest {
  private batch = Buffer.allocUnsafe(BATCH_BYTES);
  private batchLength = 0;
  private outstanding = 0;
  private readonly drained: (() => void)[] = [];
  private pendingDigest: ((hex: string) => void) | null = null;
  /** Resolvers of `addShared` calls, in the order the worker replies to them. */
  private readonly sharedDone: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private failure: Error | null = null;
  /** Bytes of shared ranges copied so far while the hashing thread was starting. */
  private copiedBeforeReady = 0;

  constructor(private readonly channel: DigestChannel) {
    channel.onReply((reply) => {
      if (reply.type === 'digest-shared') {
        this.sharedDone.shift()?.resolve();
      } else if (reply.type === 'digest-added') {
        this.outstanding -= reply.bytes;
        if (this.outstanding <= MAX_OUTSTANDING_BYTES) {
          for (const resolve of this.drained.splice(0)) resolve();
        }
      } else {
        this.pendingDigest?.(reply.hex);
        this.pendingDigest = null;
      }
    });
    channel.onError((error) => {
      this.failure = error;
      for (const waiter of this.sharedDone.splice(0)) waiter.reject(error);
    });
  }

  private post(request: DigestRequest, transfer: ArrayBuffer[] = []): void {
    if (this.failure !== null) {
      throw this.failure;
    }
    this.channel.post(request, transfer);
  }

  beginFile(): void {
    this.post({ type: 'digest-begin' });
  }

  add(bytes: Uint8Array): void {
    this.addRange(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), 0, bytes.length);
  }

  /** Copies `bytes[start, end)` into the batch; Buffer#copy takes a range, so no view is made per line. */
  private addRange(bytes: Buffer, start: number, end: number): void {
    let offset = start;
    while (offset < end) {
      const copied = Math.min(end - offset, this.batch.length - this.batchLength);
      bytes.copy(this.batch, this.batchLength, offset, offset + copied);
      this.batchLength += copied;
      offset += copied;
      if (this.batchLength === this.batch.length) {
        this.sendBatch();
      }
    }
  }

  /** Hands ranges of a shared buffer to the worker, which hashes them in place; resolves when it has. */
  addShared(buffer: Buffer, ranges: readonly number[]): Promise<void> {
    const rangeLength = rangeBytes(ranges);
    if (!this.channel.ready() && this.copiedBeforeReady + rangeLength <= MAX_COPIED_BEFORE_READY_BYTES) {
      // A thread that is still starting would hold the read buffer for tens of milliseconds.
      this.copiedBeforeReady += rangeLength;
      for (let index = 0; index < ranges.length; index += 2) {
        this.addRange(buffer, ranges[index]!, ranges[index + 1]!);
      }
      return Promise.resolve();
    }

    // Bytes sent by `add` earlier come first, so the order of lines holds.
    this.sendBatch();
    return new Promise<void>((resolve, reject) => {
      this.sharedDone.push({ resolve, reject });
      this.post({ type: 'digest-shared', memory: buffer.buffer as SharedArrayBuffer, offset: buffer.byteOffset, ranges: [...ranges] });
    });
  }

  private sendBatch(): void {
    if (this.batchLength === 0) {
      return;
    }
    const bytes = this.batch.buffer.slice(this.batch.byteOffset, this.batch.byteOffset + this.batchLength);
    this.outstanding += this.batchLength;
    this.batchLength = 0;
    this.post({ type: 'digest-add', bytes }, [bytes]);
  }

  /** Sends what was collected and waits while too many bytes await hashing. */
  async drain(): Promise<void> {
    this.sendBatch();
    while (this.outstanding > MAX_OUTSTANDING_BYTES && this.failure === null) {
      await new Promise<void>((resolve) => this.drained.push(resolve));
    }
  }

  async flush(): Promise<void> {}

  endFile(committed: boolean): void {
    this.sendBatch();
    this.post({ type: 'digest-end', committed });
  }

  async digest(): Promise<string> {
    this.sendBatch();
    const hex = new Promise<string>((resolve) => {
      this.pendingDigest = resolve;
    });
    this.post({ type: 'digest-result' });
    return hex;
  }

  /** Nothing to release: the thread belongs to the scan helper. */
  async close(): Promise<void> {}
}
