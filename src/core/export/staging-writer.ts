/**
 * The staging writer: record lines of a log in numbered NDJSON part files, which
 * DuckDB's JSON reader loads in bulk. Used by the export's staging copy and by the
 * cleanup's archive of deleted lines.
 */

import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { writeFully } from '../durable.js';
import { mayContainSurrogateEscape, repairLoneSurrogates } from './line-repair.js';

const LINE_FEED = 0x0a;
const LINE_FEED_BYTES = Buffer.from([LINE_FEED]);

/** Size after which the staging writer starts a new part file, in bytes; DuckDB detects a schema faster over several files than over one. */
export const DEFAULT_PART_BYTES = 64 * 1024 * 1024;

/** Size of the copies that `add` collects before it writes them, in bytes. */
const ADD_BATCH_BYTES = 4 * 1024 * 1024;

/** The finished staging copy. */
export interface StagingFiles {
  /** Part files in record order. */
  paths: string[];
  records: number;
  bytes: number;
  /** Length of the longest record line, line feed included, in bytes; DuckDB's maximum_object_size must exceed it. */
  longestLineBytes: number;
  /** Record lines whose lone surrogate escapes were replaced with `\ufffd`. */
  repairedRecords: number;
}

/**
 * Writes record lines into numbered part files `records-NNNN.jsonl` in a directory.
 * Every line handed to it must be one complete record line ending with a line feed.
 *
 * `writeLines` writes without copying and must be awaited before its buffers are reused.
 * `add` and `flush` serve callers that hand over lines synchronously from a buffer they
 * reuse, such as the cleanup's deleted-line sink: `add` copies, `flush` writes and fsyncs.
 */
export class StagingWriter {
  private readonly paths: string[] = [];
  private handle: FileHandle | null = null;
  private partPosition = 0;
  private records = 0;
  private bytes = 0;
  private longestLineBytes = 0;
  private repairedRecords = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writes: Promise<void> = Promise.resolve();

  private constructor(
    private readonly directory: string,
    private readonly partBytes: number,
    private readonly durable: boolean,
  ) {}

  /**
   * Creates `directory` when missing and returns a writer whose part files go there.
   * With `durable`, every part is fsynced when it is closed, so that a `flush` makes
   * all lines so far durable. An export's own staging copy skips that cost.
   */
  static async create(directory: string, options: { partBytes?: number | undefined; durable?: boolean | undefined } = {}): Promise<StagingWriter> {
    await mkdir(directory, { recursive: true });
    return new StagingWriter(directory, options.partBytes ?? DEFAULT_PART_BYTES, options.durable ?? true);
  }

  /** Writes complete record lines; each slice contains one or more whole lines. */
  async writeLines(slices: readonly Uint8Array[]): Promise<void> {
    if (slices.length === 0) {
      return;
    }
    const output: Uint8Array[] = [];
    for (const slice of slices) {
      this.countLines(slice, output);
    }
    await this.writeSlices(output);
  }

  /** Copies one or more complete record lines for a later write; see `flush`. */
  add(bytes: Uint8Array): void {
    const copy = Buffer.from(bytes);
    this.pending.push(copy);
    this.pendingBytes += copy.length;
    if (this.pendingBytes >= ADD_BATCH_BYTES) {
      this.startPendingWrite();
    }
  }

  /** Writes every line handed to `add` so far and, for a durable writer, fsyncs the current part file. */
  async flush(): Promise<void> {
    this.startPendingWrite();
    await this.writes;
    if (this.durable) {
      await this.handle?.sync();
    }
  }

  /** Writes what is pending, closes the current part (fsynced when durable), and returns the parts. */
  async close(): Promise<StagingFiles> {
    await this.flush();
    if (this.paths.length === 0) {
      // An empty part, so that readers always get at least one file.
      await this.openPart();
    }
    await this.closePart();
    return {
      paths: [...this.paths],
      records: this.records,
      bytes: this.bytes,
      longestLineBytes: this.longestLineBytes,
      repairedRecords: this.repairedRecords,
    };
  }

  /** Number of part files so far. */
  get partCount(): number {
    return this.paths.length;
  }

  /**
   * Closes the current part, so that the next line starts a new one. A caller that
   * reads other files between the parts calls it to keep the lines in log order.
   */
  async endPart(): Promise<void> {
    await this.flush();
    await this.closePart();
  }

  /** Closes the current part without a final write, after a failure. */
  async abort(): Promise<void> {
    await this.writes.catch(() => undefined);
    await this.handle?.close().catch(() => undefined);
    this.handle = null;
  }

  private startPendingWrite(): void {
    if (this.pending.length === 0) {
      return;
    }
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.writes = this.writes.then(() => this.writeLines(batch));
    // The failure is rethrown by the next flush; this only marks it handled meanwhile.
    this.writes.catch(() => undefined);
  }

  /** Counts the lines of `slice` and appends it, or its repaired lines, to `output`. */
  private countLines(slice: Uint8Array, output: Uint8Array[]): void {
    const bytes = Buffer.from(slice.buffer, slice.byteOffset, slice.length);
    const repair = mayContainSurrogateEscape(bytes);
    let runStart = 0;
    let lineStart = 0;
    while (lineStart < bytes.length) {
      let lineFeed = bytes.indexOf(LINE_FEED, lineStart);
      if (lineFeed < 0) {
        lineFeed = bytes.length - 1;
      }
      const lineBytes = lineFeed + 1 - lineStart + (bytes[lineFeed] === LINE_FEED ? 0 : 1);
      this.records++;
      if (lineBytes > this.longestLineBytes) {
        this.longestLineBytes = lineBytes;
      }
      if (repair) {
        const repaired = repairLoneSurrogates(bytes.subarray(lineStart, lineFeed + 1));
        if (repaired !== null) {
          if (lineStart > runStart) {
            output.push(bytes.subarray(runStart, lineStart));
          }
          output.push(repaired);
          runStart = lineFeed + 1;
          this.repairedRecords++;
        }
      }
      lineStart = lineFeed + 1;
    }
    if (bytes.length > runStart) {
      output.push(bytes.subarray(runStart));
    }
    // A last line without a line feed would run into the next one in the part file.
    if (bytes.length > 0 && bytes[bytes.length - 1] !== LINE_FEED) {
      output.push(LINE_FEED_BYTES);
    }
  }

  private async writeSlices(slices: Uint8Array[]): Promise<void> {
    const handle = this.handle ?? (await this.openPart());
    const written = await writeFully(handle, slices, this.partPosition);
    this.partPosition += written;
    this.bytes += written;
    if (this.partPosition >= this.partBytes) {
      await this.closePart();
    }
  }

  private async openPart(): Promise<FileHandle> {
    const path = join(this.directory, `records-${String(this.paths.length + 1).padStart(4, '0')}.jsonl`);
    const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    this.handle = handle;
    this.paths.push(path);
    this.partPosition = 0;
    return handle;
  }

  private async closePart(): Promise<void> {
    if (this.handle !== null) {
      if (this.durable) {
        await this.handle.sync();
      }
      await this.handle.close();
      this.handle = null;
    }
  }
}
