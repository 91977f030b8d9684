/**
 * Cleanup of one log file: scan it in chunks, copy kept lines byte for byte into a
 * temporary file beside it, and replace the original atomically.
 *
 * Plain files are read once. Nothing is written until the first expired line turns
 * up, so a file with nothing expired costs one read and is never touched. A file
 * whose lines are all expired is unlinked without a rewrite. The bytes appended
 * while the scan ran are copied under the log's lock, just before the rename.
 *
 * Gzip files are read twice, once to decide and once to rewrite, because their
 * kept prefix cannot be copied without decompressing it again.
 */

import { constants } from 'node:fs';
import { lstat, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { PassThrough, Writable } from 'node:stream';
import { dirname } from 'node:path';

import { fsyncDirectory, temporaryPathFor, writeFully } from './durable.js';
import { ErrorCode, RetentionError, fromFileSystemError } from './errors.js';
import type { LogFile } from './layout.js';
import { FileTally, LineProcessor } from './line-processor.js';
import { fileState, sameState, type FileState } from './scan-index.js';
import { OpenWriters, describeWriters, type FileIdentity, type OpenWriter } from './open-writers.js';
import type { LogLock } from './lock.js';
import { MIN_SPLIT_BYTES, type ScanHelper } from './scan-helper.js';
import type { RetentionRules } from './retention.js';
import type { LineScanner } from './scanner.js';
import { DIRECT_WRITE_MIN_BYTES, StagedOutput } from './staged-output.js';

/** Size of each read, in bytes: large enough that per-call overhead vanishes, small enough to stay in L2/L3 cache. */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Maximum length of a line that the scanner decides on, in bytes. A longer line is kept as it is and
 * counted as malformed (`too_long`), so memory stays bounded on hostile input.
 */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

/**
 * Read buffers in the ring: while one is scanned, the next is being read and the one
 * before it may still be being written and hashed, so reads, scans and writes overlap.
 */
export const READ_BUFFER_COUNT = 3;

/** gzip level of rewritten `.gz` files; 6 is the default of gzip(1) and logrotate. */
const GZIP_LEVEL = 6;

const LINE_FEED = 0x0a;

export type FileAction = 'unchanged' | 'rewritten' | 'removed' | 'skipped' | 'failed';

/** Bytes at the start of a file compared again under the lock, to notice a file truncated and refilled during the scan. */
const HEAD_CHECK_BYTES = 4096;

export interface FileResult {
  file: LogFile;
  /** Action the run took on the file; for a dry run, the action a real run would take. */
  action: FileAction;
  tally: FileTally;
  bytesBefore: number;
  /** Size after the run; a dry run reports the size the real run would write. */
  bytesAfter: number;
  /** Why the file was left untouched, for `skipped`. */
  skipReason: string | null;
  /** True when the scan index decided the file, so it was not read. */
  fromIndex?: boolean;
  /** Bytes copied without deciding their lines, because the index showed that no expired record was left in them. */
  undecidedBytes?: number;
  /** Bytes of the rewrite that bypassed the page cache. */
  directBytes?: number;
  /**
   * State of the new file right after the rename, taken under the lock, for `rewritten`.
   * While the file still has this state, it contains exactly the kept lines of the tally.
   */
  replacement?: FileState | null;
  /** Time spent waiting for the log's lock, in ms, when the run took it. */
  lockWaitMs: number | null;
  error: RetentionError | null;
}

export interface FileCleanupOptions {
  dryRun: boolean;
  scanner: LineScanner;
  rules: RetentionRules;
  /** The writers' lock; required unless `dryRun`. */
  lock: LogLock | null;
  /** Size of each read, in bytes; DEFAULT_CHUNK_BYTES unless a test or benchmark tunes it. */
  chunkBytes?: number | undefined;
  /** Longest line that is scanned, in bytes; MAX_LINE_BYTES unless a test lowers it. */
  maxLineBytes?: number | undefined;
  /** READ_BUFFER_COUNT read buffers of `chunkBytes` to reuse across files, so a run of many files allocates them once. */
  readBuffers?: Buffer[] | undefined;
  /** Page-aligned buffers for direct writes of rewritten plain files, from allocateStagingBuffers. With null, writes go through the page cache. */
  stagingBuffers?: readonly Uint8Array[] | null | undefined;
  /** Smallest original, in bytes, whose rewrite uses the staging buffers; DIRECT_WRITE_MIN_BYTES unless a test lowers it. */
  directWriteMinBytes?: number | undefined;
  /** Count records by operation type, status and policy decision, for stats. */
  countFacets?: boolean | undefined;
  /** Second thread that scans half of each chunk; used when the read buffers are shared memory. */
  helper?: ScanHelper | null | undefined;
  /** Processes that write log files without the lock, as seen at the start of the run. */
  openWriters: OpenWriters;
  /** Real paths of the log directory and lock file, for the /proc check of writers that do not lock. */
  writerProbe: { directory: string; lockPath: string };
  /**
   * Receives the bytes of every deleted line of this file, in file order, in a real
   * run: a hash for the cleanup history, and the archive's staging file.
   */
  deletedLines?: DeletedLinesSink | null | undefined;
  /** Closes of replaced originals still in flight, which the run awaits before it ends. */
  pendingCloses?: Promise<void>[] | undefined;
}

/**
 * Index facts of a plain file that a real run rewrites: the file's state when its
 * entry was found fresh, and the entry's tally at this run's cutoffs.
 */
export interface IndexedFile {
  state: FileState;
  tally: FileTally;
}

/** Consumer of deleted lines; `flush` makes them durable before the file is replaced. */
export interface DeletedLinesSink {
  add(bytes: Uint8Array): void;
  flush(): Promise<void>;
  /** Waits while the sink lags behind; called once per chunk, so memory stays bounded. */
  drain?(): Promise<void>;
  /**
   * Takes the deleted ranges of a buffer in shared memory without copying them, for
   * a sink that reads them on another thread. The buffer is not refilled until the
   * returned promise settles.
   */
  addShared?(buffer: Buffer, ranges: readonly number[]): Promise<void>;
}

/** Hands the deleted lines of `bytes[start, end)`, the gaps between the kept runs, to the run's sink. */
function passDeletedLines(options: FileCleanupOptions, bytes: Buffer, keptRuns: readonly number[], start: number, end: number): Promise<void> | null {
  const sink = options.deletedLines;
  if (sink == null) {
    return null;
  }
  const gaps: number[] = [];
  let gapStart = start;
  for (let index = 0; index < keptRuns.length; index += 2) {
    if (keptRuns[index]! > gapStart) {
      gaps.push(gapStart, keptRuns[index]!);
    }
    gapStart = keptRuns[index + 1]!;
  }
  if (end > gapStart) {
    gaps.push(gapStart, end);
  }

  if (sink.addShared !== undefined && bytes.buffer instanceof SharedArrayBuffer) {
    return sink.addShared(bytes, gaps);
  }
  for (let index = 0; index < gaps.length; index += 2) {
    sink.add(bytes.subarray(gaps[index], gaps[index + 1]));
  }
  return null;
}

/** Weight of the newest chunk in the helper's share, so the share follows load changes within a few chunks. */
const SHARE_SMOOTHING = 0.2;

/** Moves the helper's share toward the split at which both threads finish a chunk at the same time. */
function balanceShare(helper: ScanHelper, localBytes: number, localMs: number, remoteBytes: number, remoteMs: number): void {
  if (localMs <= 0 || remoteMs <= 0) {
    return;
  }
  const localRate = localBytes / localMs;
  const remoteRate = remoteBytes / remoteMs;
  const balanced = localRate / (localRate + remoteRate);
  const share = helper.localShare * (1 - SHARE_SMOOTHING) + balanced * SHARE_SMOOTHING;
  // Bounded, so neither thread is starved by one odd measurement.
  helper.localShare = Math.min(0.8, Math.max(0.2, share));
}

/** Thrown inside a job when the file must be left untouched; not an error of the run. */
class FileSkipped extends Error {}

/**
 * Cleans one file. Failures come back as `action: 'failed'` with the error, never as a throw.
 * With `indexed`, a plain file's scan stops deciding lines once it has deleted every
 * expired record that the index counts, and copies the rest as it is.
 */
export async function cleanupFile(file: LogFile, options: FileCleanupOptions, indexed: IndexedFile | null = null): Promise<FileResult> {
  const processor = new LineProcessor(options.scanner, options.rules, options.countFacets ?? false);
  const job = file.gzip ? new GzipFileJob(file, options, processor) : new PlainFileJob(file, options, processor, indexed);
  try {
    const result = await job.run();
    // Another thread may still read the shared buffers; the next file must not refill them before it is done.
    await job.quiesce();
    return result;
  } catch (error) {
    await job.abort();
    const skipped = error instanceof FileSkipped;
    return {
      file,
      action: skipped ? 'skipped' : 'failed',
      tally: skipped ? new FileTally(false) : processor.tally,
      bytesBefore: job.bytesBefore,
      bytesAfter: job.bytesBefore,
      skipReason: skipped ? error.message : null,
      lockWaitMs: job.lockWaitMs,
      error: skipped ? null : fromFileSystemError(error, job.failedStage, file.path),
    };
  }
}

/** Verb for error messages about the temporary copy. */
const WRITE_STAGE = 'write a temporary copy of';

abstract class FileJob {
  bytesBefore = 0;
  lockWaitMs: number | null = null;
  /** Verb for error messages, updated as the job moves on. */
  stage = 'read';
  /**
   * True once a write to the temporary copy failed. A plain file's queued writes fail
   * while the job reads on, so their failure must not take the verb of the step that
   * awaits them, and its reads keep the verb `read`.
   */
  protected writeFailed = false;

  protected source: FileHandle | null = null;
  protected temporaryPath: string | null = null;
  protected output: FileHandle | null = null;
  private replacement: FileState | null = null;

  constructor(
    protected readonly file: LogFile,
    protected readonly options: FileCleanupOptions,
    protected processor: LineProcessor,
  ) {}

  abstract run(): Promise<FileResult>;

  /** Verb for the error message of the job's failure. */
  get failedStage(): string {
    return this.writeFailed ? WRITE_STAGE : this.stage;
  }

  /** Counts of the whole file as far as it was read. */
  protected get tally(): FileTally {
    return this.processor.tally;
  }

  protected result(action: FileAction, bytesAfter: number): FileResult {
    return {
      file: this.file,
      action,
      tally: this.tally,
      bytesBefore: this.bytesBefore,
      bytesAfter,
      skipReason: null,
      lockWaitMs: this.lockWaitMs,
      error: null,
      replacement: this.replacement,
    };
  }

  /** Leaves the file alone when a process writes it without the lock. */
  protected skipIfWrittenWithoutLock(writers: readonly OpenWriter[]): void {
    if (writers.length > 0) {
      throw new FileSkipped(
        `open for writing by ${describeWriters(writers)} without the lock file ${this.options.writerProbe.lockPath}; rewriting it would lose that process's later writes`,
      );
    }
  }

  /** Opens the file and skips it at once when a process writes it without the lock, in dry and real runs alike. */
  protected async openSource(): Promise<{ size: number; identity: FileIdentity; mode: number; uid: number; gid: number }> {
    this.source = await open(this.file.path, constants.O_RDONLY);
    const info = await this.source.stat();
    this.bytesBefore = info.size;
    const identity = { dev: info.dev, ino: info.ino };
    this.skipIfWrittenWithoutLock(this.options.openWriters.writersOf(identity));
    return { size: info.size, identity, mode: info.mode, uid: info.uid, gid: info.gid };
  }

  /** Creates the temporary file with the original's mode and owner, so the replacement keeps both. */
  protected async createOutput(mode: number, uid: number, gid: number): Promise<FileHandle> {
    this.temporaryPath = temporaryPathFor(this.file.path);
    const output = await open(
      this.temporaryPath,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      0o600,
    );
    this.output = output;
    await output.chmod(mode & 0o7777);
    if (uid !== process.getuid?.() || gid !== process.getgid?.()) {
      await output.chown(uid, gid).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== 'EPERM') {
          throw error;
        }
        // On Linux, only root (CAP_CHOWN) may give a file to another user, or to a group that the process is not in.
        throw new RetentionError(
          ErrorCode.PERMISSION_DENIED,
          `Permission denied: could not give the rewritten copy of ${this.file.path} its owner ${uid}:${gid} (EPERM, fchown). ` +
            `Run the cleanup as user ${uid} with group ${gid} among its groups, or as root.`,
          { cause: error },
        );
      });
    }
    return output;
  }

  /**
   * Under the lock: checks that the path still names the file that was scanned,
   * that the file did not shrink below the scanned bytes nor change its first bytes
   * (logrotate copytruncate), and that no process opened it for writing without the
   * lock meanwhile. A file that fails a check is left alone and reported skipped.
   */
  protected async checkStillInPlace(identity: FileIdentity, scannedBytes: number, head: Buffer | null): Promise<void> {
    const current = await stat(this.file.path).catch(() => null);
    if (current === null || current.dev !== identity.dev || current.ino !== identity.ino) {
      throw new FileSkipped('replaced or removed by another process during the cleanup, for example by log rotation; the next run cleans it');
    }

    const size = (await this.source!.stat()).size;
    if (size < scannedBytes) {
      throw new FileSkipped(`truncated from ${scannedBytes} to ${size} bytes during the cleanup, for example by logrotate copytruncate; the next run cleans it`);
    }
    if (head !== null) {
      const now = Buffer.alloc(head.length);
      await this.source!.read(now, 0, head.length, 0);
      if (!now.equals(head)) {
        throw new FileSkipped('rewritten by another process during the cleanup; the next run cleans it');
      }
    }

    const writers = OpenWriters.scan(this.options.writerProbe.directory, this.options.writerProbe.lockPath);
    this.skipIfWrittenWithoutLock(writers.writersOf(identity));
  }

  /** Checks, before the rename, that the temporary copy holds exactly the kept bytes. */
  protected async verifyOutputSize(expectedBytes: number): Promise<void> {
    const size = (await this.output!.stat()).size;
    if (size !== expectedBytes) {
      throw new RetentionError(
        ErrorCode.FILE_NOT_REWRITTEN,
        `Could not rewrite ${this.file.path}: its temporary copy has ${size} bytes instead of ${expectedBytes}. The original is unchanged.`,
      );
    }
  }

  /** Replaces the original with the finished temporary file, or removes it when nothing is kept. */
  protected async replaceOriginal(keepNothing: boolean): Promise<void> {
    // Deleted lines reach the archive's disk before the file that held them changes.
    await this.options.deletedLines?.flush();
    if (keepNothing) {
      this.stage = 'remove';
      await unlink(this.file.path);
      if (this.temporaryPath !== null) {
        await this.discardOutput();
      }
    } else {
      this.stage = 'rewrite';
      await this.output!.sync();
      const written = await this.output!.stat();
      await this.output!.close();
      this.output = null;
      // A file or symlink renamed over the temporary path would otherwise replace the log.
      const atTemporaryPath = await lstat(this.temporaryPath!).catch(() => null);
      if (atTemporaryPath === null || atTemporaryPath.dev !== written.dev || atTemporaryPath.ino !== written.ino) {
        throw new FileSkipped('its temporary copy was replaced or removed by another process during the cleanup; the original is unchanged');
      }
      await rename(this.temporaryPath!, this.file.path);
      this.temporaryPath = null;
    }
    await fsyncDirectory(dirname(this.file.path));
    if (!keepNothing) {
      // Still under the lock, so no writer that takes it has appended yet.
      this.replacement = await fileState(this.file.path);
    }
  }

  private async discardOutput(): Promise<void> {
    await this.output?.close().catch(() => undefined);
    this.output = null;
    if (this.temporaryPath !== null) {
      await unlink(this.temporaryPath).catch(() => undefined);
      this.temporaryPath = null;
    }
  }

  /** Waits until no read, write or other thread still uses the shared read buffers. */
  async quiesce(): Promise<void> {}

  /** Releases everything after a failure: the original stays, the temporary file goes. */
  async abort(): Promise<void> {
    await this.discardOutput();
    await this.closeSource();
  }

  /** Starts closing the source without waiting for it. The run waits for the close before it ends. */
  protected closeSourceLater(): void {
    const closing = this.closeSource();
    this.options.pendingCloses?.push(closing);
  }

  protected async closeSource(): Promise<void> {
    await this.source?.close().catch(() => undefined);
    this.source = null;
  }
}

/**
 * A plain file, read through a ring of buffers: while one is scanned, the next read
 * fills the following one and the kept runs of the ones before are written.
 */
class PlainFileJob extends FileJob {
  private readonly buffers: Buffer[];
  private current = 0;
  /** Bytes at the start of the current buffer that belong to an incomplete line. */
  private carry = 0;
  /** File offset of the first byte of the current buffer. */
  private bufferOffset = 0;
  /** File offset where the next read starts. */
  private readPosition = 0;
  /** True while inside a line longer than MAX_LINE_BYTES, which is passed through as it is. */
  private inOverlongLine = false;

  /** First bytes of the file as scanned, compared again under the lock. */
  private head: Buffer | null = null;
  /** The read in flight, if any; awaited before the shared buffers go to the next file. */
  private pendingRead: Promise<number> = Promise.resolve(0);
  private outputStarted = false;
  /** The temporary file's writer, from the first queued write on. */
  private staged: StagedOutput | null = null;
  private writes: Promise<void> = Promise.resolve();
  /** Per buffer, the write chain as it stood after the buffer's last queued write; awaited before the buffer is refilled. */
  private readonly bufferWrites: Promise<void>[];
  private ownership = { mode: 0o644, uid: 0, gid: 0 };

  /** Count and bytes of the lines deleted so far, compared with the index's expired records. */
  private deletedLineCount = 0;
  private deletedByteCount = 0;
  /**
   * File offset up to which lines are copied without deciding them, 0 until every expired record
   * that the index counts is deleted. It is the file's indexed size, so appended lines are decided.
   */
  private undecidedEnd = 0;
  /** File offset where the undecided copy began. */
  private undecidedFrom = 0;
  /** Tally of the lines decided before the undecided copy began. */
  private prefixTally: FileTally | null = null;
  /** Index tally plus the counts of the lines decided after the undecided copy, computed once per scan. */
  private combinedTally: FileTally | null = null;

  constructor(
    file: LogFile,
    options: FileCleanupOptions,
    processor: LineProcessor,
    private indexed: IndexedFile | null,
  ) {
    super(file, options, processor);
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.buffers = options.readBuffers !== undefined ? [...options.readBuffers] : Array.from({ length: READ_BUFFER_COUNT }, () => Buffer.allocUnsafe(chunkBytes));
    this.bufferWrites = this.buffers.map(() => Promise.resolve());
  }

  protected override result(action: FileAction, bytesAfter: number): FileResult {
    const undecidedBytes = this.prefixTally === null ? 0 : this.undecidedEnd - this.undecidedFrom;
    return { ...super.result(action, bytesAfter), undecidedBytes, directBytes: this.staged?.bytesWrittenDirectly ?? 0 };
  }

  protected override get tally(): FileTally {
    if (this.prefixTally === null) {
      return this.processor.tally;
    }
    this.combinedTally ??= combineTallies(this.indexed!.tally, this.prefixTally, this.processor.tally, this.options.rules);
    return this.combinedTally;
  }

  async run(): Promise<FileResult> {
    const { identity, mode, uid, gid } = await this.openSource();
    this.ownership = { mode, uid, gid };
    const { dryRun, lock } = this.options;
    await this.dropIndexedUnlessOpened(identity);

    await this.scanToEnd(dryRun);
    if (this.prefixTally !== null && this.readPosition < this.undecidedEnd) {
      throw new FileSkipped(`truncated from ${this.undecidedEnd} to ${this.readPosition} bytes during the cleanup; the next run cleans it`);
    }
    let tally = this.tally;

    if (tally.expired === 0) {
      // The real run stops here too, so it reports a last line without a line feed as the dry run does.
      if (!dryRun && this.carry > 0) {
        this.processor.finishTail(this.carry);
      }
      await this.closeSource();
      return this.result('unchanged', this.bytesBefore);
    }
    if (dryRun) {
      await this.closeSource();
      return this.result(tally.keptBytes === 0 ? 'removed' : 'rewritten', tally.keptBytes === 0 ? 0 : tally.keptBytes + tally.bomBytes);
    }

    // Make the bulk durable before taking the lock, so writers wait only for the tail.
    await this.finishOutput();
    await this.asWrite(async () => this.output?.datasync());

    return lock!.hold(this.file.path, async (waitedMs) => {
      this.lockWaitMs = waitedMs;
      await this.checkStillInPlace(identity, this.readPosition, this.head);

      this.stage = 'read';
      await this.scanToEnd(true);
      await this.finishOutput();
      tally = this.tally;

      const keepNothing = tally.keptBytes === 0;
      const bytesAfter = keepNothing ? 0 : this.staged!.position;
      if (!keepNothing) {
        await this.verifyOutputSize(tally.keptBytes + tally.bomBytes);
      }
      await this.replaceOriginal(keepNothing);
      // Closing the last descriptor of the replaced original frees its blocks, about 30 ms for 53 MB here.
      // So it closes in the background, and neither the writers waiting for the lock nor the next file wait.
      this.closeSourceLater();
      return this.result(keepNothing ? 'removed' : 'rewritten', bytesAfter);
    });
  }

  /** Counts bytes of an overlong line as kept, unless the index's tally already counts them. */
  private countKeptUnscanned(bytes: number): void {
    if (this.bufferOffset >= this.undecidedEnd) {
      this.processor.tally.keptBytes += bytes;
    }
  }

  /** Forgets the index's tally unless the opened file is still in the state that the index saw. */
  private async dropIndexedUnlessOpened(identity: FileIdentity): Promise<void> {
    if (this.indexed === null) {
      return;
    }
    const now = await fileState(this.file.path);
    if (now === null || now.dev !== identity.dev || now.ino !== identity.ino || !sameState(now, this.indexed.state)) {
      this.indexed = null;
    }
  }

  /**
   * Counts the deletions of the region `[start, end)` of the current buffer, just decided.
   * Once they match the index's expired records and bytes in every schema, no expired
   * record is left before the indexed end, so the undecided copy starts after the region.
   */
  private async countDeletions(deleted: number, start: number, end: number, keptRuns: readonly number[]): Promise<void> {
    const indexed = this.indexed;
    if (indexed === null || this.prefixTally !== null) {
      return;
    }
    this.deletedLineCount += deleted;
    this.deletedByteCount += end - start - runBytes(keptRuns);
    if (this.deletedLineCount !== indexed.tally.expired || this.deletedByteCount !== indexed.tally.expiredBytes) {
      return;
    }

    await this.collectHelperTally();
    if (!sameExpired(this.processor.tally, indexed.tally)) {
      // The index disagrees with the file, so the scan goes on and decides every line.
      this.indexed = null;
      return;
    }
    this.prefixTally = this.processor.tally;
    this.processor = new LineProcessor(this.options.scanner, this.options.rules, this.options.countFacets ?? false);
    this.processor.continueFile();
    this.undecidedFrom = this.bufferOffset + end;
    this.undecidedEnd = indexed.state.size;
  }

  /**
   * Reads and decides everything up to the current end of the file. With `final`,
   * a last line without a line feed is treated as the file's tail and kept.
   */
  private async scanToEnd(final: boolean): Promise<void> {
    this.combinedTally = null;
    let pendingRead = this.readInto(this.current, this.carry);
    this.pendingRead = pendingRead;

    for (;;) {
      const bytesRead = await pendingRead;
      const buffer = this.buffers[this.current]!;
      const filled = this.carry + bytesRead;
      this.readPosition += bytesRead;

      if (bytesRead === 0) {
        if (final && this.carry > 0) {
          this.finishTail(buffer);
        }
        await this.collectHelperTally();
        return;
      }

      const lastLineFeed = buffer.lastIndexOf(LINE_FEED, filled - 1);
      if (lastLineFeed < 0) {
        // No complete line in the buffer: grow it, or pass an overlong line through.
        pendingRead = this.handleLongLine(filled);
        this.pendingRead = pendingRead;
        continue;
      }

      if (this.head === null && this.bufferOffset === 0) {
        this.head = Buffer.from(buffer.subarray(0, Math.min(HEAD_CHECK_BYTES, filled)));
      }

      const nextCarry = filled - lastLineFeed - 1;
      const other = (this.current + 1) % this.buffers.length;
      await this.bufferWrites[other];
      if (nextCarry > this.buffers[other]!.length) {
        this.buffers[other] = Buffer.allocUnsafe(this.buffers[this.current]!.length);
      }
      buffer.copy(this.buffers[other]!, 0, lastLineFeed + 1, filled);
      const nextBufferOffset = this.bufferOffset + lastLineFeed + 1;
      pendingRead = this.readInto(other, nextCarry);
      this.pendingRead = pendingRead;

      let start = 0;
      if (this.inOverlongLine) {
        // The rest of an overlong line runs up to the first line feed; it is kept as it is.
        start = buffer.indexOf(LINE_FEED) + 1;
        this.countKeptUnscanned(start);
        this.inOverlongLine = false;
        if (this.outputStarted) {
          this.queueRuns(buffer, [0, start], this.bufferOffset, 0);
        }
      }
      while (start <= lastLineFeed) {
        start = await this.handleLines(buffer, start, lastLineFeed + 1);
      }

      this.current = other;
      this.carry = nextCarry;
      this.bufferOffset = nextBufferOffset;
    }
  }

  /**
   * Copies or decides the complete lines of `buffer[start, end)` up to the next point where
   * their handling changes, and returns that point. It is the indexed end, where both the
   * undecided copy and the counting against the index stop, or else `end`.
   */
  private async handleLines(buffer: Buffer, start: number, end: number): Promise<number> {
    const fileStart = this.bufferOffset + start;
    if (fileStart < this.undecidedEnd) {
      // Lines before the indexed end contain no expired record any more, so they are kept as they are.
      const undecidedTo = Math.min(end, this.undecidedEnd - this.bufferOffset);
      this.queueRuns(buffer, [start, undecidedTo], this.bufferOffset, start);
      return undecidedTo;
    }

    let decideTo = end;
    if (this.indexed !== null && this.prefixTally === null) {
      // Lines appended after the indexed end are not in the index's counts, so they are decided after the switch of tallies.
      const indexedEnd = this.indexed.state.size - this.bufferOffset;
      if (indexedEnd <= start || (indexedEnd < end && buffer[indexedEnd - 1] !== LINE_FEED)) {
        // The index disagrees with the file when the scan reaches the indexed end before the index's deletions, or no line ends there.
        this.indexed = null;
      } else {
        decideTo = Math.min(end, indexedEnd);
      }
    }

    const { deleted, keptRuns } = await this.decideLines(buffer, start, decideTo);
    if (deleted > 0 || this.outputStarted) {
      this.queueRuns(buffer, keptRuns, this.bufferOffset, start);
    }
    if (deleted > 0) {
      const passed = passDeletedLines(this.options, buffer, keptRuns, start, decideTo);
      if (passed !== null) {
        passed.catch(() => undefined);
        this.bufferWrites[this.current] = Promise.all([this.bufferWrites[this.current], passed]).then(() => undefined);
      }
      await this.options.deletedLines?.drain?.();
    }
    await this.countDeletions(deleted, start, decideTo, keptRuns);
    return decideTo;
  }

  /**
   * Decides the complete lines in `buffer[start, end)`. A large region in shared
   * memory is split at a line feed near its middle: the helper thread takes the
   * second half while this thread scans the first.
   */
  private async decideLines(buffer: Buffer, start: number, end: number): Promise<{ deleted: number; keptRuns: readonly number[] }> {
    const helper = this.options.helper;
    const memory = buffer.buffer;
    if (helper == null || !helper.ready || !(memory instanceof SharedArrayBuffer) || end - start < MIN_SPLIT_BYTES) {
      const deleted = this.processor.processLines(buffer, start, end);
      return { deleted, keptRuns: this.processor.keptRuns };
    }

    const split = buffer.indexOf(LINE_FEED, start + Math.floor((end - start) * helper.localShare)) + 1;
    if (split <= start || split >= end) {
      const deleted = this.processor.processLines(buffer, start, end);
      return { deleted, keptRuns: this.processor.keptRuns };
    }
    // The helper indexes the whole shared memory; the buffer may start anywhere in it.
    const offset = buffer.byteOffset;
    const remote = helper.scanLines(memory, offset + split, offset + end);
    remote.catch(() => undefined);
    const localStartedAt = performance.now();
    const localDeleted = this.processor.processLines(buffer, start, split);
    const localMs = performance.now() - localStartedAt;
    const keptRuns = this.processor.keptRuns.slice();
    // The helper's time includes the hashing it did between scans, so the split also moves hashing load off it.
    const { deleted: remoteDeleted, keptRuns: remoteRuns, busyMs: remoteMs } = await remote;
    balanceShare(helper, split - start, localMs, end - split, remoteMs);

    // Join the two halves' runs where the first ends exactly where the second starts.
    let next = 0;
    if (keptRuns.length > 0 && remoteRuns.length > 0 && keptRuns[keptRuns.length - 1] === remoteRuns[0]! - offset) {
      keptRuns[keptRuns.length - 1] = remoteRuns[1]! - offset;
      next = 2;
    }
    for (; next < remoteRuns.length; next++) {
      keptRuns.push(remoteRuns[next]! - offset);
    }
    return { deleted: localDeleted + remoteDeleted, keptRuns };
  }

  /** Adds what the helper thread counted for this file since the last call. */
  private async collectHelperTally(): Promise<void> {
    const helper = this.options.helper;
    if (helper != null) {
      const helperTally = await helper.takeTally();
      if (helperTally !== null) {
        this.processor.tally.merge(helperTally, this.options.rules);
      }
    }
  }

  private readInto(bufferIndex: number, offset: number): Promise<number> {
    const buffer = this.buffers[bufferIndex]!;
    return this.source!.read(buffer, offset, buffer.length - offset, this.readPosition).then((result) => result.bytesRead);
  }

  /** Grows the buffers for a line longer than them, or passes an overlong line through unscanned. */
  private async handleLongLine(filled: number): Promise<number> {
    const buffer = this.buffers[this.current]!;
    if (filled < buffer.length) {
      // A short read without a line feed: read on into the same buffer.
      this.carry = filled;
      return this.readInto(this.current, filled);
    }

    if (buffer.length * 2 <= (this.options.maxLineBytes ?? MAX_LINE_BYTES)) {
      const larger = Buffer.allocUnsafe(buffer.length * 2);
      buffer.copy(larger, 0, 0, filled);
      this.buffers[this.current] = larger;
      this.carry = filled;
      return this.readInto(this.current, filled);
    }

    // The line exceeds MAX_LINE_BYTES: keep it unscanned, counted once as malformed.
    if (!this.inOverlongLine) {
      this.inOverlongLine = true;
      if (this.bufferOffset >= this.undecidedEnd) {
        this.processor.countOverlongLine();
      }
    }
    this.countKeptUnscanned(filled);
    if (this.outputStarted) {
      await this.settleWrites();
      this.queueRuns(buffer, [0, filled], this.bufferOffset, 0);
      await this.settleWrites();
    }
    this.bufferOffset += filled;
    this.carry = 0;
    return this.readInto(this.current, 0);
  }

  private finishTail(buffer: Buffer): void {
    const length = this.carry;
    if (this.inOverlongLine) {
      this.countKeptUnscanned(length);
    } else {
      this.processor.finishTail(length);
    }
    if (this.outputStarted) {
      this.queueRuns(buffer, [0, length], this.bufferOffset, 0);
    }
    this.bufferOffset += length;
    this.carry = 0;
  }

  /**
   * Queues the writes of kept runs from `buffer`, whose first byte is at file offset
   * `bufferOffset`; the runs cover the buffer from index `decidedFrom` on. The first
   * call of a real run creates the temporary file and copies the original's bytes
   * before `bufferOffset + decidedFrom`, all kept, into it.
   */
  private queueRuns(buffer: Buffer, runs: readonly number[], bufferOffset: number, decidedFrom: number): void {
    if (this.options.dryRun) {
      return;
    }
    const slices: Buffer[] = [];
    for (let index = 0; index < runs.length; index += 2) {
      slices.push(buffer.subarray(runs[index], runs[index + 1]));
    }

    const startOutput = !this.outputStarted;
    this.outputStarted = true;
    this.writes = this.writes.then(async () => {
      if (startOutput) {
        await this.asWrite(async () => {
          const { mode, uid, gid } = this.ownership;
          const output = await this.createOutput(mode, uid, gid);
          const writeDirectly = this.bytesBefore >= (this.options.directWriteMinBytes ?? DIRECT_WRITE_MIN_BYTES);
          this.staged = await StagedOutput.open(output, writeDirectly ? (this.options.stagingBuffers ?? null) : null);
        });
        await this.copyPrefix(bufferOffset + decidedFrom);
      }
      if (slices.length === 0) {
        return;
      }
      // Resolves once the slices are copied to staging, so the read buffer is free long before the disk write ends.
      await this.asWrite(() => this.staged!.append(slices));
    });
    // Marks the chain as handled; the failure is rethrown by the next settleWrites().
    this.writes.catch(() => undefined);
    const index = this.buffers.indexOf(buffer);
    if (index >= 0) {
      this.bufferWrites[index] = this.writes;
    }
  }

  /** Copies the original's bytes [0, end) to the start of the output; they precede the first deletion. */
  private async copyPrefix(end: number): Promise<void> {
    if (end === 0) {
      return;
    }
    const buffer = Buffer.allocUnsafe(Math.min(end, DEFAULT_CHUNK_BYTES));
    let position = 0;
    while (position < end) {
      const { bytesRead } = await this.source!.read(buffer, 0, Math.min(buffer.length, end - position), position);
      if (bytesRead === 0) {
        throw new Error(`unexpected end of file at byte ${position} while copying`);
      }
      await this.asWrite(() => this.staged!.append([buffer.subarray(0, bytesRead)]));
      position += bytesRead;
    }
  }

  private async settleWrites(): Promise<void> {
    await this.writes;
  }

  /** Waits for every queued write to reach the temporary file; appends after it are written at once. */
  private async finishOutput(): Promise<void> {
    await this.settleWrites();
    await this.asWrite(async () => this.staged?.finish());
  }

  /** Runs `write`, a step that only writes the temporary copy, so that its failure is reported as a write. */
  private async asWrite(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      this.writeFailed = true;
      throw error;
    }
  }

  override async quiesce(): Promise<void> {
    await this.pendingRead.catch(() => undefined);
    await this.writes.catch(() => undefined);
    await Promise.all(this.bufferWrites.map((pending) => pending.catch(() => undefined)));
    // The staging buffers go to the next file too.
    await this.staged?.close();
  }

  /** Waits for every read, write and hash that still uses the shared buffers, then releases the files. */
  override async abort(): Promise<void> {
    await this.quiesce();
    await super.abort();
  }
}

/** Sums the lengths of start/end pairs. */
function runBytes(runs: readonly number[]): number {
  let bytes = 0;
  for (let index = 0; index < runs.length; index += 2) {
    bytes += runs[index + 1]! - runs[index]!;
  }
  return bytes;
}

/** Returns true when both tallies have the same expired records and bytes in every schema. */
function sameExpired(scanned: FileTally, indexed: FileTally): boolean {
  const withExpired = (tally: FileTally): string[] => [...tally.schemas.keys()].filter((key) => tally.schemas.get(key)!.expired > 0);
  const keys = withExpired(scanned);
  if (keys.length !== withExpired(indexed).length) {
    return false;
  }

  for (const key of keys) {
    const left = scanned.schemas.get(key)!;
    const right = indexed.schemas.get(key);
    if (right === undefined || left.expired !== right.expired || left.expiredBytes !== right.expiredBytes) {
      return false;
    }
  }
  return true;
}

/**
 * Adds the counts of the lines appended after the indexed end to the index's counts of
 * the file as indexed. Where the first line went and whether the file ends in a partial
 * line are facts of the scan, so they come from `prefix` and `appended`.
 */
function combineTallies(indexed: FileTally, prefix: FileTally, appended: FileTally, rules: RetentionRules): FileTally {
  const combined = new FileTally(false);
  combined.merge(indexed.serialize(), rules);
  combined.merge(appended.serialize(), rules);
  combined.bomBytes = indexed.bomBytes;
  combined.partialTailBytes = appended.partialTailBytes;
  combined.firstLineDeleted = prefix.firstLineDeleted;
  return combined;
}

/**
 * Creates a writable stream that appends to a FileHandle from offset 0. FileHandle's own
 * createWriteStream would keep a reference that makes a later close() wait forever
 * when the stream is not set to close the handle itself (seen on Node 20.20).
 */
function fileHandleSink(handle: FileHandle): Writable {
  let position = 0;
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      writeFully(handle, [chunk], position).then(
        (bytesWritten) => {
          position += bytesWritten;
          callback();
        },
        (error: Error) => callback(error),
      );
    },
  });
}

/** Returns a sink that discards its input: the dry run of a gzip file compresses only to learn the size. */
function discardSink(): Writable {
  return new Writable({
    write(_chunk: Buffer, _encoding, callback) {
      callback();
    },
  });
}

/** A gzip file: one pass to decide, a second to rewrite (or, in a dry run, to size the rewrite) when anything is expired. */
class GzipFileJob extends FileJob {
  /** State of the file when it was opened; a rotated .gz file never grows, so any change skips it. */
  private openedState: FileState | null = null;

  async run(): Promise<FileResult> {
    const { identity, mode, uid, gid } = await this.openSource();
    this.openedState = await fileState(this.file.path);
    const tally = this.processor.tally;

    await this.decompressLines(this.processor, null);
    if (tally.expired === 0) {
      await this.closeSource();
      return this.result('unchanged', this.bytesBefore);
    }
    if (this.options.dryRun) {
      // The compressed size is known only by compressing, so the dry run reports what the real run will write.
      const bytesAfter = tally.keptBytes === 0 ? 0 : await this.compressKeptLines(discardSink());
      await this.closeSource();
      return this.result(tally.keptBytes === 0 ? 'removed' : 'rewritten', bytesAfter);
    }

    if (tally.keptBytes === 0) {
      return this.options.lock!.hold(this.file.path, async (waitedMs) => {
        this.lockWaitMs = waitedMs;
        await this.checkUnchanged(identity);
        if (this.options.deletedLines != null) {
          await readContentInto(this.file, tally.bomBytes, this.options.deletedLines);
        }
        await this.replaceOriginal(true);
        await this.closeSource();
        return this.result('removed', 0);
      });
    }

    // The second pass repeats every decision on the same descriptor, so its tally is the same.
    this.stage = WRITE_STAGE;
    const output = await this.createOutput(mode, uid, gid);
    await this.compressKeptLines(fileHandleSink(output));
    const bytesAfter = (await output.stat()).size;
    await output.datasync();

    return this.options.lock!.hold(this.file.path, async (waitedMs) => {
      this.lockWaitMs = waitedMs;
      await this.checkUnchanged(identity);
      await this.replaceOriginal(false);
      await this.closeSource();
      return this.result('rewritten', bytesAfter);
    });
  }

  /** Under the lock: skips the file unless it is, in every identity field, the file that was read. */
  private async checkUnchanged(identity: FileIdentity): Promise<void> {
    await this.checkStillInPlace(identity, this.bytesBefore, null);
    const now = await fileState(this.file.path);
    if (now === null || this.openedState === null || !sameState(now, this.openedState)) {
      throw new FileSkipped('rewritten by another process during the cleanup; the next run cleans it');
    }
  }

  /**
   * Decides every line again and writes the kept ones, gzip-compressed, to `sink`.
   * Returns the number of compressed bytes.
   */
  private async compressKeptLines(sink: Writable): Promise<number> {
    const { createGzip } = await import('node:zlib');
    const compressor = createGzip({ level: GZIP_LEVEL });
    let compressedBytes = 0;
    compressor.on('data', (chunk: Buffer) => {
      compressedBytes += chunk.length;
    });
    const keptLines = new PassThrough();
    const writing = pipeline(keptLines, compressor, sink);
    writing.catch(() => undefined);

    const rewrite = new LineProcessor(this.processorScanner(), this.options.rules);
    await this.decompressLines(rewrite, keptLines);
    keptLines.end();
    await writing;
    return compressedBytes;
  }

  private processorScanner(): LineScanner {
    return this.options.scanner;
  }

  /**
   * Decompresses the file from its start and decides every line with `processor`.
   * With `kept`, writes the kept bytes to it, respecting its back-pressure.
   */
  private async decompressLines(processor: LineProcessor, kept: PassThrough | null): Promise<void> {
    this.stage = kept === null ? 'read' : WRITE_STAGE;
    const maxLineBytes = this.options.maxLineBytes ?? MAX_LINE_BYTES;
    let buffer = Buffer.allocUnsafe(Math.min(this.options.chunkBytes ?? DEFAULT_CHUNK_BYTES, maxLineBytes));
    let filled = 0;
    let inOverlongLine = false;

    const emit = async (slices: Buffer[]): Promise<void> => {
      if (kept === null || slices.length === 0) {
        return;
      }
      // A copy, because `buffer` is reused before the compressor has consumed it.
      if (!kept.write(Buffer.concat(slices))) {
        await new Promise<void>((resolve) => kept.once('drain', () => resolve()));
      }
    };

    /** Decides the complete lines in the buffer and moves the incomplete last line to its start. */
    const decideCompleteLines = async (): Promise<void> => {
      const lastLineFeed = filled === 0 ? -1 : buffer.lastIndexOf(LINE_FEED, filled - 1);
      if (lastLineFeed < 0) {
        return;
      }
      const deleted = processor.processLines(buffer, 0, lastLineFeed + 1);
      const runs = processor.keptRuns;
      if (kept !== null && deleted > 0 && !this.options.dryRun) {
        passDeletedLines(this.options, buffer, runs, 0, lastLineFeed + 1);
      }
      const slices: Buffer[] = [];
      for (let index = 0; index < runs.length; index += 2) {
        slices.push(buffer.subarray(runs[index], runs[index + 1]));
      }
      await emit(slices);
      buffer.copy(buffer, 0, lastLineFeed + 1, filled);
      filled -= lastLineFeed + 1;
    };

    const { createGunzip } = await import('node:zlib');
    const decompressed = createGunzip();
    const reading = pipeline(this.source!.createReadStream({ autoClose: false, start: 0 }), decompressed);
    reading.catch(() => undefined);
    for await (const piece of decompressed as AsyncIterable<Buffer>) {
      let data = piece;
      while (data.length > 0) {
        if (inOverlongLine) {
          // The rest of a line too long to scan passes through up to its line feed.
          const lineFeed = data.indexOf(LINE_FEED);
          const end = lineFeed < 0 ? data.length : lineFeed + 1;
          processor.tally.keptBytes += end;
          await emit([data.subarray(0, end)]);
          data = data.subarray(end);
          inOverlongLine = lineFeed < 0;
          continue;
        }

        if (filled === buffer.length) {
          await decideCompleteLines();
          if (filled === buffer.length) {
            if (buffer.length < maxLineBytes) {
              const larger = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxLineBytes));
              buffer.copy(larger, 0, 0, filled);
              buffer = larger;
            } else {
              // A full buffer without a line feed: the line is longer than maxLineBytes and is kept unscanned.
              processor.countOverlongLine();
              processor.tally.keptBytes += filled;
              await emit([buffer.subarray(0, filled)]);
              filled = 0;
              inOverlongLine = true;
            }
            continue;
          }
        }

        const taken = Math.min(buffer.length - filled, data.length);
        data.copy(buffer, filled, 0, taken);
        filled += taken;
        data = data.subarray(taken);
      }
    }

    await decideCompleteLines();
    if (filled > 0) {
      if (inOverlongLine) {
        processor.tally.keptBytes += filled;
      } else {
        processor.finishTail(filled);
      }
      await emit([buffer.subarray(0, filled)]);
    }
    await reading.catch((error: unknown) => {
      // Gunzip stops at bytes that do not start another gzip member and aborts the read of the rest.
      throw (error as NodeJS.ErrnoException).code === 'ABORT_ERR' ? this.trailingBytesError(error) : error;
    });

    // bytesWritten counts the compressed bytes that gunzip consumed. Whether the read was
    // aborted depends on timing, so this comparison is the check that always holds.
    if (decompressed.bytesWritten < this.bytesBefore) {
      throw this.trailingBytesError(null);
    }
  }

  private trailingBytesError(cause: unknown): RetentionError {
    return new RetentionError(
      ErrorCode.FILE_UNREADABLE,
      `Could not read ${this.file.path}: it has bytes after the end of its gzip data, which a rewrite would drop. Check it with 'gzip -t', then repair it or move it out of the log directory.`,
      { cause },
    );
  }
}

/**
 * Applies a tally that the scan index computed, without reading the file. A file with
 * nothing expired stays as it is; a dry run reports the tally; a real run removes a
 * file whose content is all expired records, after checking under the lock that it is
 * still the indexed file. Returns null when the file must be read after all.
 */
export async function applyCachedTally(file: LogFile, state: FileState, tally: FileTally, options: FileCleanupOptions): Promise<FileResult | null> {
  const result = (action: FileAction, bytesAfter: number): FileResult => ({
    file,
    action,
    tally,
    bytesBefore: state.size,
    bytesAfter,
    skipReason: null,
    fromIndex: true,
    lockWaitMs: null,
    error: null,
  });

  const writers = options.openWriters.writersOf(state);
  if (writers.length > 0) {
    return {
      ...result('skipped', state.size),
      tally: new FileTally(false),
      skipReason: `open for writing by ${describeWriters(writers)} without the lock file ${options.writerProbe.lockPath}; rewriting it would lose that process's later writes`,
    };
  }
  if (tally.expired === 0) {
    return result('unchanged', state.size);
  }
  if (options.dryRun) {
    if (tally.keptBytes === 0) {
      return result('removed', 0);
    }
    if (file.gzip) {
      // The size of the rewritten .gz file is known only by compressing the kept lines.
      return null;
    }
    return result('rewritten', tally.keptBytes + tally.bomBytes);
  }
  if (tally.keptBytes !== 0) {
    return null;
  }

  try {
    return await options.lock!.hold(file.path, async (waitedMs) => {
      // Anything but the indexed file, untouched and unshared, goes back to a scan. The
      // ctime catches an edit in place whose writer restored the mtime.
      const now = await fileState(file.path);
      if (now === null || !sameState(now, state)) {
        return null;
      }
      const writersNow = OpenWriters.scan(options.writerProbe.directory, options.writerProbe.lockPath);
      if (writersNow.writersOf(state).length > 0) {
        return null;
      }
      if (options.deletedLines != null) {
        // Every line of this file is an expired record, so its content, the mark excluded, is the deleted lines.
        await readContentInto(file, tally.bomBytes, options.deletedLines);
        await options.deletedLines.flush();
      }
      await unlink(file.path);
      await fsyncDirectory(dirname(file.path));
      return { ...result('removed', 0), lockWaitMs: waitedMs };
    });
  } catch (error) {
    return { ...result('failed', state.size), error: fromFileSystemError(error, 'remove', file.path) };
  }
}

/** Feeds the decompressed content of `file` after its first `skipBytes` to `sink`. */
async function readContentInto(file: LogFile, skipBytes: number, sink: DeletedLinesSink): Promise<void> {
  const handle = await open(file.path, 'r');
  try {
    const raw = handle.createReadStream({ autoClose: false, start: 0 });
    let stream: NodeJS.ReadableStream = raw;
    if (file.gzip) {
      const { createGunzip } = await import('node:zlib');
      stream = raw.pipe(createGunzip());
    }
    let skip = skipBytes;
    for await (const piece of stream as AsyncIterable<Buffer>) {
      if (skip >= piece.length) {
        skip -= piece.length;
        continue;
      }
      sink.add(piece.subarray(skip));
      skip = 0;
    }
  } finally {
    await handle.close();
  }
}
