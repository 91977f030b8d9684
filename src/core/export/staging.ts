/**
 * The export's pass over a log: classify every line with the cleanup engine's
 * LineScanner, count the lines, collect the column types of the records, and put the
 * records where DuckDB's JSON reader loads them in bulk.
 *
 * Lines are classified by the cleanup engine's LineScanner, so a line left out here
 * as malformed is exactly a line that a cleanup keeps as malformed. Blank lines,
 * malformed lines, a last line without a line feed (a write in progress) and lines
 * longer than MAX_LINE_BYTES are left out and counted. A UTF-8 byte order mark at the
 * start of a file is dropped.
 *
 * With `readInPlace`, a plain log file that no writer appends to and whose every line
 * is a record that DuckDB accepts is only scanned: DuckDB reads the file itself (see
 * in-place.ts). Every other file's record lines are copied byte for byte into staging
 * part files, except for lone UTF-16 surrogate escapes (see repairLoneSurrogates) and
 * lines with duplicate keys (see repairLineForDuckDB). A file turns out to need the
 * copy only where its first such line appears, so its lines before that point are
 * copied then, with one more read of the file.
 */

import { constants, type BigIntStats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { createGunzip } from 'node:zlib';

import { ErrorCode, RetentionError, fromFileSystemError } from '../errors.js';
import { DEFAULT_CHUNK_BYTES, MAX_LINE_BYTES } from '../file-cleanup.js';
import type { LogFile } from '../layout.js';
import { MIN_HELPER_TOTAL_BYTES, MIN_SPLIT_BYTES } from '../scan-helper.js';
import { LineScanner, type ScannerOptions } from '../scanner.js';
import { ColumnCollector, ColumnSchema, MAX_COLUMNS, type ObservedColumn } from './columns.js';
import { MAX_IN_PLACE_FILES, closeInPlaceFiles, copyLines, descriptorPath, inPlaceReadable, type InPlaceFile } from './in-place.js';
import { sameState } from '../scan-index.js';
import { repairLineForDuckDB } from './line-repair.js';
import { classifyRegion, type StageHelperInit, type StageHelperReply, type StageHelperRequest } from './stage-worker.js';
import { StagingWriter, type StagingFiles } from './staging-writer.js';

export { DEFAULT_PART_BYTES, StagingWriter, type StagingFiles } from './staging-writer.js';
export { repairLoneSurrogates } from './line-repair.js';

const LINE_FEED = 0x0a;

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
  /** The files for DuckDB to read, in log order: staging parts and the `readPath` of files read in place. */
  inputs: string[];
  /** Log files that DuckDB reads in place; the caller must close them with closeInPlaceFiles. */
  inPlace: InPlaceFile[];
  /** Length of the longest record line of all inputs, line feed included, in bytes. */
  longestLineBytes: number;
  /** Top-level keys of the records and their kinds of value, in order of first appearance; null unless `collectColumns`. */
  columns: ObservedColumn[] | null;
  /** Record lines with duplicate keys that the staging copy rewrote. */
  repairedRecords: number;
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
  /** Collect the column types of the records (see columns.ts), so that DuckDB need not detect them. */
  collectColumns?: boolean | undefined;
  /** Let DuckDB read suitable plain log files in place instead of copying them (see in-place.ts). Needs Linux. */
  readInPlace?: boolean | undefined;
}

/** A worker thread that classifies the second half of each chunk; see stage-worker.ts. */
class StageHelper {
  private readonly pending: { resolve: (reply: StageHelperReply) => void; reject: (error: Error) => void }[] = [];
  private failure: Error | null = null;

  constructor(scanner: ScannerOptions, collectColumns: boolean) {
    const init: StageHelperInit = { stageHelper: true, scanner, collectColumns };
    this.worker = new Worker(new URL('./stage-worker.js', import.meta.url), { workerData: init });
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
 * Reads `files` in order, classifies their lines, and stages the record lines of every
 * file that DuckDB does not read in place under `directory`. Throws a RetentionError
 * naming the file when one cannot be read. A file that disappeared after the layout
 * was listed (removed by a cleanup or by rotation) is reported in `filesVanished`.
 */
export async function stageLogFiles(files: readonly LogFile[], directory: string, options: StagingOptions): Promise<StagingResult> {
  // The staging copy is removed after the export, so it needs no fsync.
  const writer = await StagingWriter.create(directory, { partBytes: options.partBytes, durable: false });
  const collectColumns = options.collectColumns ?? false;
  const pass: LogPass = {
    writer,
    collector: collectColumns ? new ColumnCollector() : null,
    schema: collectColumns ? new ColumnSchema() : null,
    tally: { records: 0, malformed: 0, malformedByKind: {}, blankLines: 0, partialLastLines: [] },
    repairedRecords: 0,
  };
  const scanner = new LineScanner({ ...options.scanner, extractLabels: false, recordMembers: collectColumns });
  const readInPlace = (options.readInPlace ?? false) && inPlaceReadable();
  const filesRead: string[] = [];
  const filesVanished: string[] = [];
  // Files read in place, each with the number of staging parts that come before it.
  const inPlace: { file: InPlaceFile; partsBefore: number }[] = [];
  const totalBytes = files.reduce((sum, file) => sum + file.size, 0);
  const helper =
    (options.helper ?? (availableParallelism() > 1 && totalBytes >= MIN_HELPER_TOTAL_BYTES)) ? new StageHelper(options.scanner, collectColumns) : null;

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

      // A writer may append to the active file at any time, so DuckDB must not read it as it is.
      const candidate = readInPlace && !file.gzip && !file.active && inPlace.length < MAX_IN_PLACE_FILES;
      const stager = new FileStager(file.name, scanner, pass, options, helper, candidate ? handle : null);
      let keepOpen = false;
      try {
        if (file.gzip) {
          await stager.readGzip(handle);
        } else {
          await stager.readPlain(handle);
        }
        filesRead.push(file.name);
        const scanned = await stager.finishInPlace();
        if (scanned !== null) {
          await writer.endPart();
          inPlace.push({ file: scanned, partsBefore: writer.partCount });
          keepOpen = true;
        }
      } catch (error) {
        throw fromFileSystemError(error, 'read', file.path);
      } finally {
        if (!keepOpen) {
          await handle.close().catch(() => undefined);
        }
      }
    }
    const staging = await writer.close();

    if (pass.schema?.overflow === true) {
      throw new RetentionError(
        ErrorCode.EXPORT_FAILED,
        `Could not export the log: its records have more than ${MAX_COLUMNS} distinct top-level fields, more than an export writes as columns. Export a part of the log with filters, or convert it with other tools.`,
      );
    }
    return {
      ...pass.tally,
      staging,
      inputs: orderInputs(staging.paths, inPlace),
      inPlace: inPlace.map((entry) => entry.file),
      longestLineBytes: Math.max(staging.longestLineBytes, ...inPlace.map((entry) => entry.file.longestLineBytes)),
      columns: pass.schema?.columns() ?? null,
      repairedRecords: pass.repairedRecords,
      filesRead,
      filesVanished,
    };
  } catch (error) {
    await writer.abort();
    await closeInPlaceFiles(inPlace.map((entry) => entry.file));
    throw error;
  } finally {
    await helper?.close();
  }
}

/** Puts each file read in place after the staging parts written before it. */
function orderInputs(parts: readonly string[], inPlace: readonly { file: InPlaceFile; partsBefore: number }[]): string[] {
  const inputs: string[] = [];
  let nextPart = 0;
  for (const { file, partsBefore } of inPlace) {
    inputs.push(...parts.slice(nextPart, partsBefore));
    nextPart = Math.max(nextPart, partsBefore);
    inputs.push(file.readPath);
  }
  inputs.push(...parts.slice(nextPart));
  return inputs;
}

/** State of the pass that every file adds to. */
interface LogPass {
  writer: StagingWriter;
  collector: ColumnCollector | null;
  schema: ColumnSchema | null;
  tally: StagingTally;
  repairedRecords: number;
}

/**
 * Splits one file into lines, classifies them, and hands the record lines to the
 * writer. Lines are decided in the buffer they were read into; runs of consecutive
 * records are written as one slice. A file given a handle to read in place is only
 * classified until a line shows that DuckDB cannot read it as it is.
 */
class FileStager {
  private buffer: Buffer;
  private filled = 0;
  private atFileStart = true;
  /** True while skipping the rest of a line longer than maxLineBytes. */
  private inOverlongLine = false;
  private readonly maxLineBytes: number;
  /** Offset in the file of `buffer[0]`, while the file may still be read in place. */
  private bufferOffset = 0;
  private records = 0;
  private longestRecordBytes = 0;
  private openedAs: BigIntStats | null = null;

  /**
   * @param inPlaceHandle The file's handle when DuckDB may read the file in place;
   *   null once its records are copied to staging.
   */
  constructor(
    private readonly name: string,
    private readonly scanner: LineScanner,
    private readonly pass: LogPass,
    options: StagingOptions,
    private readonly helper: StageHelper | null,
    private inPlaceHandle: FileHandle | null,
  ) {
    this.maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
    this.buffer = this.allocate(Math.min(options.chunkBytes ?? DEFAULT_CHUNK_BYTES, this.maxLineBytes));
  }

  /** Allocates a buffer, in shared memory when the helper thread reads it too. */
  private allocate(size: number): Buffer {
    return this.helper === null ? Buffer.allocUnsafe(size) : Buffer.from(new SharedArrayBuffer(size));
  }

  async readPlain(handle: FileHandle): Promise<void> {
    if (this.inPlaceHandle !== null) {
      this.openedAs = await handle.stat({ bigint: true });
    }
    for (;;) {
      const { bytesRead } = await handle.read(this.buffer, this.filled, this.buffer.length - this.filled, null);
      if (bytesRead === 0) {
        break;
      }
      await this.commit(bytesRead);
    }
    await this.finish();
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
    await this.finish();
  }

  /**
   * Returns the file for DuckDB to read in place, or null when its records were staged.
   * A file that changed while it was scanned, as its size, mtime or ctime show, is
   * staged as far as it was scanned.
   */
  async finishInPlace(): Promise<InPlaceFile | null> {
    const handle = this.inPlaceHandle;
    if (handle === null || this.openedAs === null) {
      return null;
    }
    const scanned = await handle.stat({ bigint: true });
    if (!sameState(scanned, this.openedAs) || scanned.size !== BigInt(this.bufferOffset)) {
      await this.stageScannedPart(0);
      return null;
    }
    return { name: this.name, handle, readPath: descriptorPath(handle), scanned, records: this.records, longestLineBytes: this.longestRecordBytes };
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
      await this.keepIncompleteLine(start);
      return;
    }

    await this.stageLines(start, lastLineFeed + 1);
    this.buffer.copy(this.buffer, 0, lastLineFeed + 1, this.filled);
    this.filled -= lastLineFeed + 1;
    this.bufferOffset += lastLineFeed + 1;
  }

  /**
   * Keeps the bytes from `start` on, which contain no line feed, at the start of the
   * buffer. A full buffer doubles up to maxLineBytes, as in the cleanup engine. A line
   * longer than that is counted as `too_long` and skipped up to its line feed.
   */
  private async keepIncompleteLine(start: number): Promise<void> {
    if (start > 0) {
      this.buffer.copy(this.buffer, 0, start, this.filled);
      this.filled -= start;
      this.bufferOffset += start;
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
    await this.stageScannedPart(0);
    const tally = this.pass.tally;
    tally.malformed++;
    tally.malformedByKind['too_long'] = (tally.malformedByKind['too_long'] ?? 0) + 1;
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
        // DuckDB rejects a file that starts with one, so such a file is staged.
        await this.stageScannedPart(start);
        start += 3;
      }
    }

    const collector = this.pass.collector;
    const memory = bytes.buffer;
    let replies: StageHelperReply[];
    if (this.helper === null || !(memory instanceof SharedArrayBuffer) || bytes.byteOffset !== 0 || end - start < MIN_SPLIT_BYTES) {
      replies = [classifyRegion(this.scanner, bytes, start, end, collector)];
    } else {
      const split = bytes.indexOf(LINE_FEED, start + ((end - start) >>> 1)) + 1;
      const remote = this.helper.classify(memory, split, end);
      remote.catch(() => undefined);
      const local = classifyRegion(this.scanner, bytes, start, split, collector);
      replies = [local, await remote];
    }

    // Runs as start/end pairs; the first half's last run and the second half's first run join when they touch.
    const runs: number[] = [];
    const duplicateKeyLines: number[] = [];
    let loneSurrogateLines = 0;
    for (const reply of replies) {
      this.addCounts(reply);
      for (let index = 0; index < reply.runs.length; index += 2) {
        if (runs.length > 0 && runs[runs.length - 1] === reply.runs[index]) {
          runs[runs.length - 1] = reply.runs[index + 1]!;
        } else {
          runs.push(reply.runs[index]!, reply.runs[index + 1]!);
        }
      }
      duplicateKeyLines.push(...reply.duplicateKeyLines);
      loneSurrogateLines += reply.loneSurrogateLines;
    }

    if (this.inPlaceHandle !== null) {
      const allRecords = runs.length === 2 && runs[0] === start && runs[1] === end;
      if (allRecords && duplicateKeyLines.length === 0 && loneSurrogateLines === 0) {
        return;
      }
      await this.stageScannedPart(start);
    }
    await this.pass.writer.writeLines(this.recordSlices(runs, duplicateKeyLines));
  }

  /** Cuts the runs of record lines into slices, with each line that repeats a key rewritten. */
  private recordSlices(runs: readonly number[], duplicateKeyLines: readonly number[]): Uint8Array[] {
    const bytes = this.buffer;
    const slices: Uint8Array[] = [];
    let next = 0;
    for (let index = 0; index < runs.length; index += 2) {
      let sliceStart = runs[index]!;
      const runEnd = runs[index + 1]!;
      while (next < duplicateKeyLines.length && duplicateKeyLines[next]! < runEnd) {
        const lineStart = duplicateKeyLines[next++]!;
        const lineEnd = bytes.indexOf(LINE_FEED, lineStart) + 1;
        const repaired = repairLineForDuckDB(bytes.subarray(lineStart, lineEnd));
        if (repaired === null) {
          continue;
        }
        slices.push(bytes.subarray(sliceStart, lineStart), repaired);
        sliceStart = lineEnd;
        this.pass.repairedRecords++;
      }
      slices.push(bytes.subarray(sliceStart, runEnd));
    }
    return slices.filter((slice) => slice.length > 0);
  }

  /**
   * Ends reading the file in place: copies its lines before `buffer[bufferIndex]`, all
   * of them records, into staging, so that the lines from there on can follow.
   */
  private async stageScannedPart(bufferIndex: number): Promise<void> {
    const handle = this.inPlaceHandle;
    if (handle === null) {
      return;
    }
    this.inPlaceHandle = null;
    await copyLines(handle, 0, this.bufferOffset + bufferIndex, this.pass.writer, this.name);
  }

  private addCounts(reply: StageHelperReply): void {
    const tally = this.pass.tally;
    tally.records += reply.records;
    tally.blankLines += reply.blankLines;
    for (const [kind, count] of Object.entries(reply.malformedByKind)) {
      tally.malformed += count;
      tally.malformedByKind[kind] = (tally.malformedByKind[kind] ?? 0) + count;
    }
    this.records += reply.records;
    this.longestRecordBytes = Math.max(this.longestRecordBytes, reply.longestRecordBytes);
    if (reply.columns !== null) {
      this.pass.schema?.merge(reply.columns);
    }
  }

  /** Handles the end of the file: a last line without a line feed is a write in progress and is left out. */
  private async finish(): Promise<void> {
    if (this.filled > 0 && !this.inOverlongLine) {
      this.pass.tally.partialLastLines.push(this.name);
      // DuckDB would read the last line too if it is a complete object, so the file is staged.
      await this.stageScannedPart(0);
    }
    this.bufferOffset += this.filled;
    this.filled = 0;
  }
}
