/**
 * The staging copy of an export: the record lines of a log, byte for byte, in
 * NDJSON part files that DuckDB's JSON reader then loads in bulk.
 *
 * Lines are classified by the cleanup engine's LineScanner, so a line left out here
 * as malformed is exactly a line that a cleanup keeps as malformed. Blank lines,
 * malformed lines, a last line without a line feed (a write in progress) and lines
 * longer than MAX_LINE_BYTES are left out and counted. A UTF-8 byte order mark at the
 * start of a file is dropped. The rest of each record line is copied unchanged, except
 * for lone UTF-16 surrogate escapes (see repairLoneSurrogates).
 */

import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { createGunzip } from 'node:zlib';

import { fromFileSystemError } from '../errors.js';
import { DEFAULT_CHUNK_BYTES, MAX_LINE_BYTES } from '../file-cleanup.js';
import type { LogFile } from '../layout.js';
import { MIN_HELPER_TOTAL_BYTES, MIN_SPLIT_BYTES } from '../scan-helper.js';
import { LineScanner, type ScannerOptions } from '../scanner.js';
import { writeFully } from '../durable.js';
import { classifyRegion, type StageHelperReply, type StageHelperRequest } from './stage-worker.js';

const LINE_FEED = 0x0a;
const LINE_FEED_BYTES = Buffer.from([LINE_FEED]);

/** Size after which the staging writer starts a new part file, in bytes; DuckDB detects a schema faster over several files than over one. */
export const DEFAULT_PART_BYTES = 64 * 1024 * 1024;

/** Size of the copies that `add` collects before it writes them, in bytes. */
const ADD_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * A JSON escape of a UTF-16 surrogate, or an escaped backslash. Used to find lone
 * surrogates: JSON.parse, and so the scanner, accepts `"\ud800"`, but DuckDB's JSON
 * parser (yyjson) rejects the whole line.
 */
const SURROGATE_ESCAPES = /\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}/g;

/**
 * Replaces each lone surrogate escape in a JSON line with `\ufffd`, the character that
 * JSON.parse followed by UTF-8 encoding gives for it. Escaped backslashes and valid
 * surrogate pairs stay. Returns null when the line has no lone surrogate.
 */
export function repairLoneSurrogates(line: Uint8Array): Buffer | null {
  // latin1 maps bytes to code units one to one, so multi-byte UTF-8 passes through untouched.
  const text = Buffer.from(line.buffer, line.byteOffset, line.length).toString('latin1');
  let repaired = false;
  const result = text.replace(SURROGATE_ESCAPES, (escape) => {
    if (escape.length !== 6) {
      return escape;
    }
    repaired = true;
    return '\\ufffd';
  });
  return repaired ? Buffer.from(result, 'latin1') : null;
}

/** True when `bytes` may contain a surrogate escape; a cheap test before the per-line repair. */
function mayContainSurrogateEscape(bytes: Buffer): boolean {
  return bytes.includes('\\ud') || bytes.includes('\\uD');
}

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

/** Counts of the lines read from the log, by the cleanup engine's classification. */
export interface StagingTally {
  records: number;
  malformed: number;
  malformedByKind: Record<string, number>;
  blankLines: number;
  /** Files whose last line has no line feed; that line is left out as a write in progress. */
  partialLastLines: string[];
}

export interface StagingResult extends StagingTally {
  staging: StagingFiles;
  /** Log files read, oldest first, by name. */
  filesRead: string[];
  /** Log files listed by the layout but gone when the export opened them. */
  filesVanished: string[];
}

export interface StagingOptions {
  scanner: ScannerOptions;
  /** Longest line that is scanned, in bytes; MAX_LINE_BYTES unless a test lowers it. */
  maxLineBytes?: number | undefined;
  /** Size of each read, in bytes. */
  chunkBytes?: number | undefined;
  partBytes?: number | undefined;
  /** Forces the second classifying thread on or off. By default it runs for logs of 64 MiB or more on machines with two cores or more. */
  helper?: boolean | undefined;
}

/** A worker thread that classifies the second half of each chunk; see stage-worker.ts. */
class StageHelper {
  private readonly pending: { resolve: (reply: StageHelperReply) => void; reject: (error: Error) => void }[] = [];
  private failure: Error | null = null;

  constructor(scanner: ScannerOptions) {
    this.worker = new Worker(new URL('./stage-worker.js', import.meta.url), { workerData: { stageHelper: true, scanner } });
    this.worker.on('message', (reply: StageHelperReply) => this.pending.shift()?.resolve(reply));
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', (code) => this.fail(new Error(`staging helper thread exited with code ${code}`)));
  }

  private readonly worker: Worker;

  classify(memory: SharedArrayBuffer, start: number, end: number): Promise<StageHelperReply> {
    if (this.failure !== null) {
      return Promise.reject(this.failure);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      const request: StageHelperRequest = { memory, start, end };
      this.worker.postMessage(request);
    });
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }

  private fail(error: Error): void {
    this.failure = error;
    for (const waiter of this.pending.splice(0)) {
      waiter.reject(error);
    }
  }
}

/**
 * Copies the record lines of `files` into part files under `directory`. Throws a
 * RetentionError naming the file when one cannot be read. A file that disappeared
 * after the layout was listed (removed by a cleanup or by rotation) is reported in
 * `filesVanished`.
 */
export async function stageLogFiles(files: readonly LogFile[], directory: string, options: StagingOptions): Promise<StagingResult> {
  // The staging copy is removed after the export, so it needs no fsync.
  const writer = await StagingWriter.create(directory, { partBytes: options.partBytes, durable: false });
  const scanner = new LineScanner({ ...options.scanner, extractLabels: false });
  const tally: StagingTally = { records: 0, malformed: 0, malformedByKind: {}, blankLines: 0, partialLastLines: [] };
  const filesRead: string[] = [];
  const filesVanished: string[] = [];
  const totalBytes = files.reduce((sum, file) => sum + file.size, 0);
  const helper =
    (options.helper ?? (availableParallelism() > 1 && totalBytes >= MIN_HELPER_TOTAL_BYTES)) ? new StageHelper(options.scanner) : null;

  try {
    for (const file of files) {
      let handle: FileHandle;
      try {
        handle = await open(file.path, constants.O_RDONLY);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          filesVanished.push(file.name);
          continue;
        }
        throw fromFileSystemError(error, 'read', file.path);
      }

      const stager = new FileStager(file.name, scanner, writer, tally, options, helper);
      try {
        if (file.gzip) {
          await stager.readGzip(handle);
        } else {
          await stager.readPlain(handle);
        }
        filesRead.push(file.name);
      } catch (error) {
        throw fromFileSystemError(error, 'read', file.path);
      } finally {
        await handle.close().catch(() => undefined);
      }
    }
    const staging = await writer.close();
    return { ...tally, staging, filesRead, filesVanished };
  } catch (error) {
    await writer.abort();
    throw error;
  } finally {
    await helper?.close();
  }
}

/**
 * Splits one file into lines and hands its record lines to the writer. Lines are
 * decided in the buffer they were read into; runs of consecutive records are written
 * as one slice.
 */
class FileStager {
  private buffer: Buffer;
  private filled = 0;
  private atFileStart = true;
  /** True while skipping the rest of a line longer than maxLineBytes. */
  private inOverlongLine = false;
  private readonly maxLineBytes: number;

  constructor(
    private readonly name: string,
    private readonly scanner: LineScanner,
    private readonly writer: StagingWriter,
    private readonly tally: StagingTally,
    options: StagingOptions,
    private readonly helper: StageHelper | null,
  ) {
    this.maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
    this.buffer = this.allocate(Math.min(options.chunkBytes ?? DEFAULT_CHUNK_BYTES, this.maxLineBytes));
  }

  /** Allocates a buffer, in shared memory when the helper thread reads it too. */
  private allocate(size: number): Buffer {
    return this.helper === null ? Buffer.allocUnsafe(size) : Buffer.from(new SharedArrayBuffer(size));
  }

  async readPlain(handle: FileHandle): Promise<void> {
    for (;;) {
      const { bytesRead } = await handle.read(this.buffer, this.filled, this.buffer.length - this.filled, null);
      if (bytesRead === 0) {
        break;
      }
      await this.commit(bytesRead);
    }
    this.finish();
  }

  async readGzip(handle: FileHandle): Promise<void> {
    const decompressed = createGunzip();
    const reading = pipeline(handle.createReadStream({ autoClose: false, start: 0 }), decompressed);
    reading.catch(() => undefined);
    for await (const piece of decompressed as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < piece.length) {
        const copied = Math.min(this.buffer.length - this.filled, piece.length - offset);
        piece.copy(this.buffer, this.filled, offset, offset + copied);
        offset += copied;
        await this.commit(copied);
      }
    }
    await reading;
    this.finish();
  }

  /** Accounts for `bytesRead` new bytes at the end of the buffer and stages every complete line. */
  private async commit(bytesRead: number): Promise<void> {
    this.filled += bytesRead;
    let start = 0;

    if (this.inOverlongLine) {
      const lineFeed = this.buffer.indexOf(LINE_FEED);
      if (lineFeed < 0 || lineFeed >= this.filled) {
        this.filled = 0;
        return;
      }
      this.inOverlongLine = false;
      start = lineFeed + 1;
    }

    const lastLineFeed = this.filled === start ? -1 : this.buffer.lastIndexOf(LINE_FEED, this.filled - 1);
    if (lastLineFeed < start) {
      this.keepIncompleteLine(start);
      return;
    }

    await this.stageLines(start, lastLineFeed + 1);
    this.buffer.copy(this.buffer, 0, lastLineFeed + 1, this.filled);
    this.filled -= lastLineFeed + 1;
  }

  /**
   * Keeps the bytes from `start` on, which contain no line feed, at the start of the
   * buffer. A full buffer doubles up to maxLineBytes, as in the cleanup engine. A line
   * longer than that is counted as `too_long` and skipped up to its line feed.
   */
  private keepIncompleteLine(start: number): void {
    if (start > 0) {
      this.buffer.copy(this.buffer, 0, start, this.filled);
      this.filled -= start;
      this.atFileStart = false;
    }
    if (this.filled < this.buffer.length) {
      return;
    }
    if (this.buffer.length * 2 <= this.maxLineBytes) {
      const larger = this.allocate(this.buffer.length * 2);
      this.buffer.copy(larger, 0, 0, this.filled);
      this.buffer = larger;
      return;
    }
    this.tally.malformed++;
    this.tally.malformedByKind['too_long'] = (this.tally.malformedByKind['too_long'] ?? 0) + 1;
    this.inOverlongLine = true;
    this.atFileStart = false;
    this.filled = 0;
  }

  /**
   * Decides the complete lines in `buffer[start, end)` and writes the records among
   * them. A large region in shared memory is split at a line feed near its middle:
   * the helper thread takes the second half while this thread decides the first.
   */
  private async stageLines(start: number, end: number): Promise<void> {
    const bytes = this.buffer;
    // A byte order mark belongs to the file, not to its first line, so it is left out of the staging copy.
    if (this.atFileStart) {
      this.atFileStart = false;
      if (bytes[start] === 0xef && bytes[start + 1] === 0xbb && bytes[start + 2] === 0xbf) {
        start += 3;
      }
    }

    const memory = bytes.buffer;
    let replies: StageHelperReply[];
    if (this.helper === null || !(memory instanceof SharedArrayBuffer) || bytes.byteOffset !== 0 || end - start < MIN_SPLIT_BYTES) {
      replies = [classifyRegion(this.scanner, bytes, start, end)];
    } else {
      const split = bytes.indexOf(LINE_FEED, start + ((end - start) >>> 1)) + 1;
      const remote = this.helper.classify(memory, split, end);
      remote.catch(() => undefined);
      const local = classifyRegion(this.scanner, bytes, start, split);
      replies = [local, await remote];
    }

    // Runs as start/end pairs; the first half's last run and the second half's first run join when they touch.
    const runs: number[] = [];
    for (const reply of replies) {
      this.addCounts(reply);
      for (let index = 0; index < reply.runs.length; index += 2) {
        if (runs.length > 0 && runs[runs.length - 1] === reply.runs[index]) {
          runs[runs.length - 1] = reply.runs[index + 1]!;
        } else {
          runs.push(reply.runs[index]!, reply.runs[index + 1]!);
        }
      }
    }
    const slices: Buffer[] = [];
    for (let index = 0; index < runs.length; index += 2) {
      slices.push(bytes.subarray(runs[index], runs[index + 1]));
    }
    await this.writer.writeLines(slices);
  }

  private addCounts(reply: StageHelperReply): void {
    const tally = this.tally;
    tally.records += reply.records;
    tally.blankLines += reply.blankLines;
    for (const [kind, count] of Object.entries(reply.malformedByKind)) {
      tally.malformed += count;
      tally.malformedByKind[kind] = (tally.malformedByKind[kind] ?? 0) + count;
    }
  }

  /** Handles the end of the file: a last line without a line feed is a write in progress and is left out. */
  private finish(): void {
    if (this.filled > 0 && !this.inOverlongLine) {
      this.tally.partialLastLines.push(this.name);
    }
    this.filled = 0;
  }
}
