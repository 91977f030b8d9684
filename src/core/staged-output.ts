/**
 * Output of a rewrite that bypasses the page cache where the file system allows it.
 *
 * Kept bytes are copied into page-aligned staging buffers and written in whole
 * blocks through a second descriptor opened with O_DIRECT. A rewrite of gigabytes
 * then leaves no gigabytes of dirty pages for the kernel to write back. It neither
 * evicts the page cache that the service and the log's writer use nor allocates
 * new cache pages, which on some virtual machines costs more than the copy itself.
 * Durability does not change: the caller still fdatasyncs the file
 * before the rename. Where direct writes are refused (tmpfs before Linux 6.6,
 * some FUSE file systems, or memory that is not aligned), the same bytes go
 * through the page cache instead, so the result is identical either way.
 */

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

import { writeFully } from './durable.js';
import { addressSpaceIsLimited } from './line-walk.js';

/**
 * Alignment of a direct write's memory, file offset and length, in bytes. Linux
 * requires the logical block size of the device (512 or 4096); the page size
 * satisfies both.
 */
export const DIRECT_ALIGNMENT = 4096;

/**
 * Size of each staging buffer, in bytes, a multiple of DIRECT_ALIGNMENT. On the
 * virtio disk where this was measured, dd oflag=direct ran as fast with 1 MiB
 * blocks as with 4 MiB ones. Two buffers of 1 MiB add 2 MiB of memory.
 */
export const STAGING_BYTES = 1 * 1024 * 1024;

/** Staging buffers per run: one is filled while the other is written. */
export const STAGING_BUFFER_COUNT = 2;

/**
 * Smallest original, in bytes, whose rewrite is written directly. A smaller one, such
 * as a segment of the writer's default 50 MiB, goes through the page cache. Direct
 * writes wait for the disk one staging buffer at a time. On the benchmark's virtual
 * machine, copying 48 MiB took 80 to 100 ms with them and 12 to 14 ms through the
 * page cache. The fdatasync after it took 50 to 65 ms either way, and it
 * writes the copy's dirty pages back at once, so at most one file's worth is dirty
 * at a time. Its clean pages stay cached until the kernel reclaims them.
 */
export const DIRECT_WRITE_MIN_BYTES = 64 * 1024 * 1024;

/** Page size of WebAssembly memory, in bytes, fixed by the WebAssembly specification. */
const WASM_PAGE_BYTES = 64 * 1024;

/**
 * Allocates the staging buffers of a run, or returns null when they cannot be made.
 * Node.js has no aligned allocation, but V8 maps each WebAssembly.Memory straight
 * from the operating system, so its first byte starts a page. Nothing depends on
 * that: a misaligned buffer only makes the first direct write fail with EINVAL,
 * and the output then falls back to the page cache.
 */
export function allocateStagingBuffers(): Uint8Array[] | null {
  if (addressSpaceIsLimited()) {
    // Each WebAssembly memory reserves about 10 GiB of address space, which a limit may not leave for threads.
    return null;
  }
  const pages = STAGING_BYTES / WASM_PAGE_BYTES;
  try {
    return Array.from({ length: STAGING_BUFFER_COUNT }, () => new Uint8Array(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer));
  } catch {
    // V8 throws a RangeError when the address space is limited (ulimit -v). The page cache path needs no staging.
    return null;
  }
}

/**
 * Opens the file behind `output` again with O_DIRECT, or returns null where Linux's
 * /proc or O_DIRECT is not available. It goes through /proc/self/fd, which names the
 * open file itself: a file or symlink that another process renames over the
 * temporary path cannot redirect the writes to another file.
 */
async function openDirect(output: FileHandle): Promise<FileHandle | null> {
  if (constants.O_DIRECT === undefined) {
    return null;
  }
  const direct = await open(`/proc/self/fd/${output.fd}`, constants.O_WRONLY | constants.O_DIRECT).catch(() => null);
  if (direct === null) {
    return null;
  }

  const [expected, actual] = await Promise.all([output.stat(), direct.stat()]);
  if (expected.dev !== actual.dev || expected.ino !== actual.ino) {
    await direct.close();
    return null;
  }
  return direct;
}

/**
 * The kept bytes of one rewrite, appended in file order. `output` is the temporary
 * file's ordinary descriptor; it stays the caller's to sync and close.
 */
export class StagedOutput {
  /** Bytes appended so far; the size of the file once `finish` has returned. */
  position = 0;
  /** Bytes that reached the file by direct writes; the rest went through the page cache. */
  bytesWrittenDirectly = 0;

  private direct: FileHandle | null;
  private staging: readonly Uint8Array[] | null;
  private current = 0;
  /** Bytes staged in the current buffer. */
  private fill = 0;
  /** File offset of the current buffer's first byte; a multiple of DIRECT_ALIGNMENT until `finish`. */
  private bufferOffset = 0;
  /** Per staging buffer, its write in flight; awaited before the buffer is filled again. */
  private readonly inFlight: Promise<void>[];

  private constructor(
    private readonly output: FileHandle,
    direct: FileHandle | null,
    staging: readonly Uint8Array[] | null,
  ) {
    this.direct = direct;
    this.staging = direct === null ? null : staging;
    this.inFlight = (staging ?? []).map(() => Promise.resolve());
  }

  /**
   * Wraps `output`, opening its file a second time for direct writes when staging
   * buffers are given. Without them, or where the direct descriptor cannot be had,
   * every append is written through `output` at once.
   */
  static async open(output: FileHandle, staging: readonly Uint8Array[] | null): Promise<StagedOutput> {
    const direct = staging === null ? null : await openDirect(output);
    return new StagedOutput(output, direct, staging);
  }

  /**
   * Appends `slices`. Resolves once their bytes are copied or written, so the
   * caller may reuse their memory; a failed write surfaces in a later call.
   */
  async append(slices: readonly Uint8Array[]): Promise<void> {
    const staging = this.staging;
    if (staging === null) {
      this.position += await writeFully(this.output, slices, this.position);
      return;
    }

    for (const slice of slices) {
      let copied = 0;
      while (copied < slice.length) {
        const buffer = staging[this.current]!;
        const count = Math.min(slice.length - copied, buffer.length - this.fill);
        buffer.set(slice.subarray(copied, copied + count), this.fill);
        this.fill += count;
        this.position += count;
        copied += count;
        if (this.fill === buffer.length) {
          this.submitCurrent();
          await this.inFlight[this.current];
        }
      }
    }
  }

  /**
   * Writes out what is staged and waits for every write. Later appends, such as the
   * lines added during the scan, go through the page cache at once.
   */
  async finish(): Promise<void> {
    if (this.staging !== null && this.fill > 0) {
      this.submitCurrent();
    }
    this.staging = null;
    await Promise.all(this.inFlight);
    await this.closeDirect();
  }

  /** Waits for the writes in flight and closes the direct descriptor, ignoring write errors; for a job that failed. */
  async close(): Promise<void> {
    this.staging = null;
    await Promise.all(this.inFlight.map((write) => write.catch(() => undefined)));
    await this.closeDirect();
  }

  /** Starts the write of the current buffer and moves on to the next one. */
  private submitCurrent(): void {
    const index = this.current;
    const write = this.writeBlock(this.staging![index]!.subarray(0, this.fill), this.bufferOffset);
    // Marks the write as handled here; its failure is rethrown when it is awaited.
    write.catch(() => undefined);
    this.inFlight[index] = write;

    this.bufferOffset += this.fill;
    this.fill = 0;
    this.current = (index + 1) % this.inFlight.length;
  }

  /**
   * Writes `bytes` at `position`: the whole blocks directly, and the rest, if any,
   * through the page cache. A short direct write, which the kernel returns when the
   * disk fills, is completed through the page cache too, where the next write
   * reports the real cause (ENOSPC) and no byte is skipped.
   */
  private async writeBlock(bytes: Uint8Array, position: number): Promise<void> {
    const alignedLength = bytes.length - (bytes.length % DIRECT_ALIGNMENT);
    let written = 0;
    if (this.direct !== null && alignedLength > 0 && position % DIRECT_ALIGNMENT === 0) {
      try {
        written = (await this.direct.write(bytes, 0, alignedLength, position)).bytesWritten;
        this.bytesWrittenDirectly += written;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EINVAL') {
          throw error;
        }
        // The file system or the buffer's alignment rules out direct writes; a refused direct write writes nothing.
        await this.closeDirect();
      }
    }
    if (written < bytes.length) {
      await writeFully(this.output, [bytes.subarray(written)], position + written);
    }
  }

  private async closeDirect(): Promise<void> {
    const direct = this.direct;
    this.direct = null;
    // FileHandle#close waits for the operations in flight on it.
    await direct?.close().catch(() => undefined);
  }
}
