/**
 * The per-file index that cleanup, dry run and stats share: what a scan found in
 * each log file, remembered with the file's identity so that an unchanged file need
 * not be read again, and an appended one only from where the last scan stopped.
 *
 * An entry is trusted only while the file is provably the one scanned: same device,
 * inode, size, mtime and ctime (ctime changes on every write and cannot be set by a
 * user). A file that only grew, with the same SHA-256 of its first 4 KiB and of the
 * 4 KiB that ended it, counts as appended. Anything else makes the caller scan
 * again; a cache that can be wrong is worse than none.
 */

import { createHash, randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { open, readFile, rename, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { FileTally } from './line-processor.js';
import type { RetentionRules } from './retention.js';

/** Bytes hashed at each end of a file to recognize it. */
const EDGE_BYTES = 4096;

/**
 * Version of the on-disk format; an index of another version is ignored and rebuilt.
 * NOTE: entries do not record the version of audit-retention, so a change to the
 * scanner's verdicts must bump this number too.
 */
const INDEX_FORMAT = 4;

/**
 * Settings that change what a scan finds in the same bytes. An index saved under other
 * settings is ignored, since its counts would be read with the wrong timestamp field.
 */
export interface ScanSettings {
  timestampField: string;
  timestampUnit: 'ms' | 's';
}

/** Counts of one schema key in one file, found by a scan at the cutoff it used. */
export interface SchemaSummary {
  schemaName: string | null;
  schemaVersion: number;
  records: number;
  /** Bytes of these records' lines, line feeds included. */
  bytes: number;
  earliestMs: number;
  latestMs: number;
  /** Cutoff of the scan; `expiredAtCutoff` records lay strictly before it. */
  cutoffMs: number;
  expiredAtCutoff: number;
  expiredBytesAtCutoff: number;
  /** Instants and line sizes of the records in [cutoffMs, windowEndMs), sorted by instant. */
  window: [instantMs: number, lineBytes: number][];
  windowEndMs: number;
}

/** Counts by operation type, status and policy decision. */
export interface FacetCounts {
  byType: Record<string, number>;
  byStatus: Record<string, number>;
  byPolicy: Record<string, number>;
}

export interface FileSummary {
  name: string;
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  headHash: string;
  tailHash: string;
  /** Bytes of content scanned: the file's size, or the decompressed size of a .gz file. */
  contentBytes: number;
  records: number;
  malformed: number;
  malformedByKind: Record<string, number>;
  blankLines: number;
  partialTailBytes: number;
  bomBytes: number;
  schemas: SchemaSummary[];
  /** Null when the scan did not count facets (real cleanups skip them for speed). */
  facets: FacetCounts | null;
  /**
   * True when one complete scan made the entry. Stats extends entries with appended
   * bytes and trusts the edge hashes for the rest. A cleanup decides a file from an
   * entry only when this is true, so an edit in the middle of a file never removes it.
   */
  fullScan: boolean;
}

/** Identity of a file now, with the bigint times that make mtime and ctime exact. */
export interface FileState {
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
}

export type Freshness = 'fresh' | 'appended' | 'stale';

/** The identity fields of a file, as FileState keeps them or as a bigint stat(2) gives them. */
type IdentityFields = Pick<FileState, 'dev' | 'ino' | 'size' | 'mtimeNs' | 'ctimeNs'> | Pick<BigIntStats, 'dev' | 'ino' | 'size' | 'mtimeNs' | 'ctimeNs'>;

/** True when two states of a file are the same in every identity field, ctime included. */
export function sameState<T extends IdentityFields>(left: T, right: T): boolean {
  return (
    left.dev === right.dev &&
    left.ino === right.ino &&
    left.size === right.size &&
    left.mtimeNs === right.mtimeNs &&
    left.ctimeNs === right.ctimeNs
  );
}

export async function fileState(path: string): Promise<FileState | null> {
  const info = await stat(path, { bigint: true }).catch(() => null);
  if (info === null) {
    return null;
  }
  return {
    dev: Number(info.dev),
    ino: Number(info.ino),
    size: Number(info.size),
    mtimeNs: info.mtimeNs.toString(),
    ctimeNs: info.ctimeNs.toString(),
  };
}

async function hashRange(handle: FileHandle, start: number, end: number): Promise<string> {
  const length = Math.max(0, end - start);
  const bytes = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(bytes, filled, length - filled, start + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return createHash('sha256').update(bytes.subarray(0, filled)).digest('hex');
}

/** Hashes the first and last EDGE_BYTES of `path` within its first `size` bytes. */
export async function edgeHashes(path: string, size: number): Promise<{ headHash: string; tailHash: string }> {
  const handle = await open(path, 'r');
  try {
    return {
      headHash: await hashRange(handle, 0, Math.min(EDGE_BYTES, size)),
      tailHash: await hashRange(handle, Math.max(0, size - EDGE_BYTES), size),
    };
  } finally {
    await handle.close();
  }
}

/**
 * Compares an entry with the file now. `fresh` needs every identity field equal,
 * ctime included, which every write and every utimes(2) call moves; so a fresh
 * entry describes the file's bytes exactly. `appended` means the file only grew:
 * same inode, same first 4 KiB, and the 4 KiB that ended it at the scan are still
 * in place; only stats relies on it, to read just the new bytes.
 */
export async function freshness(summary: FileSummary, path: string, now: FileState): Promise<Freshness> {
  if (summary.dev !== now.dev || summary.ino !== now.ino) {
    return 'stale';
  }
  if (now.size === summary.size && now.mtimeNs === summary.mtimeNs && now.ctimeNs === summary.ctimeNs) {
    return 'fresh';
  }
  if (now.size <= summary.size) {
    return 'stale';
  }

  const handle = await open(path, 'r').catch(() => null);
  if (handle === null) {
    return 'stale';
  }
  try {
    const headHash = await hashRange(handle, 0, Math.min(EDGE_BYTES, summary.size));
    const tailHash = await hashRange(handle, Math.max(0, summary.size - EDGE_BYTES), summary.size);
    return headHash === summary.headHash && tailHash === summary.tailHash ? 'appended' : 'stale';
  } finally {
    await handle.close();
  }
}

function sortedWindow(instants: readonly number[], bytes: readonly number[]): [number, number][] {
  const pairs = instants.map((instant, index): [number, number] => [instant, bytes[index]!]);
  return pairs.sort((left, right) => left[0] - right[0]);
}

/** True when the file at `path` starts with the bytes of a UTF-8 byte order mark. */
async function startsWithMark(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(3);
    const { bytesRead } = await handle.read(head, 0, 3, 0);
    return bytesRead === 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf;
  } finally {
    await handle.close();
  }
}

/**
 * Builds the entry of a file that a cleanup has just rewritten, in state `state`, from
 * the tally of the complete scan behind the rewrite: the kept records only. Returns
 * null where a scan of the new file could judge a line otherwise, or where the tally
 * cannot tell the earliest kept instant of a schema, so the next run reads the file.
 */
export async function summaryAfterRewrite(name: string, path: string, gzip: boolean, state: FileState, tally: FileTally): Promise<FileSummary | null> {
  // A byte order mark counts only at the start of a file, and the first line's length includes it. A line
  // that moved to the start may therefore be judged otherwise: its leading mark is stripped, or it is too long.
  if (tally.firstLineDeleted && (gzip || tally.bomBytes > 0 || (await startsWithMark(path)))) {
    return null;
  }

  const schemas: SchemaSummary[] = [];
  for (const schema of tally.schemas.values()) {
    const keptRecords = schema.records - schema.expired;
    if (keptRecords === 0) {
      continue;
    }

    const window = sortedWindow(schema.window, schema.windowBytes);
    let earliestMs = schema.earliestMs;
    if (schema.expired > 0) {
      // Kept records lie at or after the cutoff, and the window lists every one before windowEndMs, so its first is the earliest kept.
      if (window.length === 0) {
        return null;
      }
      earliestMs = window[0]![0];
    }
    // The latest record is kept whenever any is, because it is not older than a kept one.
    schemas.push({
      schemaName: schema.rule.schemaName,
      schemaVersion: schema.schemaVersion,
      records: keptRecords,
      bytes: schema.bytes - schema.expiredBytes,
      earliestMs,
      latestMs: schema.latestMs,
      cutoffMs: schema.rule.cutoffMs,
      expiredAtCutoff: 0,
      expiredBytesAtCutoff: 0,
      window,
      windowEndMs: schema.windowEndMs,
    });
  }

  const { headHash, tailHash } = await edgeHashes(path, state.size);
  return {
    name,
    ...state,
    headHash,
    tailHash,
    contentBytes: tally.keptBytes + tally.bomBytes,
    records: tally.records - tally.expired,
    malformed: tally.malformed,
    malformedByKind: { ...tally.malformedByKind },
    blankLines: tally.blankLines,
    partialTailBytes: tally.partialTailBytes,
    bomBytes: tally.bomBytes,
    schemas,
    // Facet counts of the tally include the deleted records.
    facets: null,
    fullScan: true,
  };
}

/** Builds an entry from the tally of a complete scan of a file in state `state`. */
export async function summaryFromScan(name: string, path: string, state: FileState, tally: FileTally): Promise<FileSummary> {
  const { headHash, tailHash } = await edgeHashes(path, state.size);
  const facets = tally.facets;
  return {
    name,
    ...state,
    headHash,
    tailHash,
    contentBytes: tally.keptBytes + tally.expiredBytes + tally.bomBytes,
    records: tally.records,
    malformed: tally.malformed,
    malformedByKind: { ...tally.malformedByKind },
    blankLines: tally.blankLines,
    partialTailBytes: tally.partialTailBytes,
    bomBytes: tally.bomBytes,
    schemas: [...tally.schemas.values()].map((schema) => ({
      schemaName: schema.rule.schemaName,
      schemaVersion: schema.schemaVersion,
      records: schema.records,
      bytes: schema.bytes,
      earliestMs: schema.earliestMs,
      latestMs: schema.latestMs,
      cutoffMs: schema.rule.cutoffMs,
      expiredAtCutoff: schema.expired,
      expiredBytesAtCutoff: schema.expiredBytes,
      window: sortedWindow(schema.window, schema.windowBytes),
      windowEndMs: schema.windowEndMs,
    })),
    facets:
      facets === null
        ? null
        : {
            byType: Object.fromEntries(facets.byType),
            byStatus: Object.fromEntries(facets.byStatus),
            byPolicy: Object.fromEntries(facets.byPolicy),
          },
    fullScan: true,
  };
}

/** Expired records and their bytes of one schema summary at `cutoffMs`, or null when only a scan can tell. */
export function expiredAt(summary: SchemaSummary, cutoffMs: number): { records: number; bytes: number } | null {
  if (cutoffMs <= summary.earliestMs) {
    return { records: 0, bytes: 0 };
  }
  if (cutoffMs > summary.latestMs) {
    return { records: summary.records, bytes: summary.bytes };
  }
  if (cutoffMs < summary.cutoffMs || cutoffMs > summary.windowEndMs) {
    return null;
  }
  let records = summary.expiredAtCutoff;
  let bytes = summary.expiredBytesAtCutoff;
  for (const [instantMs, lineBytes] of summary.window) {
    if (instantMs >= cutoffMs) break;
    records++;
    bytes += lineBytes;
  }
  return { records, bytes };
}

interface IndexDocument {
  format: number;
  logPath: string;
  scanSettings: ScanSettings;
  files: FileSummary[];
}

function sameScanSettings(left: ScanSettings | undefined, right: ScanSettings): boolean {
  return left?.timestampField === right.timestampField && left.timestampUnit === right.timestampUnit;
}

const INDEX_SUFFIX = '.audit-retention-index.json';

/**
 * Name of an index save's temporary file: the index's name, the saving process's PID
 * and 6 random bytes in hex, `.tmp`. Versions before the random part wrote PID only.
 */
const INDEX_TEMPORARY_NAME = /^\..+\.audit-retention-index\.json\.\d+(?:-[0-9a-f]{12})?\.tmp$/;

/** True when `name` is the temporary file of an index save, which a crash during the save leaves behind. */
export function isIndexTemporaryName(name: string): boolean {
  return INDEX_TEMPORARY_NAME.test(name);
}

/**
 * Returns a new temporary path for a save of the index at `indexPath`. It is unique per
 * save, so two saves of one process, or a save and a leftover of an earlier process
 * with the same PID, never share it.
 */
function indexTemporaryPathFor(indexPath: string): string {
  return `${indexPath}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
}

/** The index of one log, kept in memory and saved beside the log as a hidden file. */
export class ScanIndex {
  private readonly entries = new Map<string, FileSummary>();
  private dirty = false;

  private constructor(
    readonly logPath: string,
    /** Path of the saved index; null for an index that lives in memory only. */
    readonly path: string | null,
    readonly scanSettings: ScanSettings,
  ) {}

  /** An empty index that is never saved, for a run that must read every file. */
  static inMemory(logPath: string, scanSettings: ScanSettings = { timestampField: 'timestamp', timestampUnit: 'ms' }): ScanIndex {
    return new ScanIndex(logPath, null, scanSettings);
  }

  static pathFor(logPath: string): string {
    return join(dirname(logPath), `.${basename(logPath)}${INDEX_SUFFIX}`);
  }

  /**
   * Loads the saved index of `logPath`. A missing, unreadable or outdated one, or one
   * saved under other scan settings, gives an empty index.
   */
  static async load(logPath: string, scanSettings: ScanSettings): Promise<ScanIndex> {
    const path = ScanIndex.pathFor(logPath);
    const index = new ScanIndex(logPath, path, scanSettings);
    const text = await readFile(path, 'utf8').catch(() => null);
    if (text === null) {
      return index;
    }
    try {
      const document = JSON.parse(text) as IndexDocument;
      const current = document.format === INDEX_FORMAT && document.logPath === logPath && sameScanSettings(document.scanSettings, scanSettings);
      if (current && Array.isArray(document.files)) {
        for (const file of document.files) {
          index.entries.set(file.name, file);
        }
      }
    } catch {
      // A damaged index is rebuilt by the next scans.
    }
    return index;
  }

  get(name: string): FileSummary | undefined {
    return this.entries.get(name);
  }

  set(summary: FileSummary): void {
    this.entries.set(summary.name, summary);
    this.dirty = true;
  }

  delete(name: string): void {
    this.dirty = this.entries.delete(name) || this.dirty;
  }

  /** Drops entries of files that no longer exist. */
  retainOnly(names: ReadonlySet<string>): void {
    for (const name of [...this.entries.keys()]) {
      if (!names.has(name)) {
        this.delete(name);
      }
    }
  }

  /**
   * Writes the index atomically when it changed. Failure to save is not an error of
   * the run (a read-only log directory, say): the next run only scans more.
   */
  async save(): Promise<boolean> {
    if (!this.dirty || this.path === null) {
      return true;
    }
    const document: IndexDocument = { format: INDEX_FORMAT, logPath: this.logPath, scanSettings: this.scanSettings, files: [...this.entries.values()] };
    const temporary = indexTemporaryPathFor(this.path);
    try {
      await writeFile(temporary, JSON.stringify(document), { flag: 'wx' });
      await rename(temporary, this.path);
      this.dirty = false;
      return true;
    } catch {
      await unlink(temporary).catch(() => undefined);
      return false;
    }
  }
}

/**
 * Returns the records of an entry's window that a cutoff at `cutoffMs` keeps. The window lists
 * every record in [its cutoff, its end). Outside that span the result is the empty
 * window [cutoffMs, cutoffMs), because that is true of any file.
 */
function keptWindow(schema: SchemaSummary, cutoffMs: number): { instants: number[]; lineBytes: number[]; endMs: number } {
  if (cutoffMs < schema.cutoffMs || cutoffMs > schema.windowEndMs) {
    return { instants: [], lineBytes: [], endMs: cutoffMs };
  }
  const instants: number[] = [];
  const lineBytes: number[] = [];
  for (const [instantMs, bytes] of schema.window) {
    if (instantMs >= cutoffMs) {
      instants.push(instantMs);
      lineBytes.push(bytes);
    }
  }
  return { instants, lineBytes, endMs: schema.windowEndMs };
}

/**
 * Rebuilds a file's tally from its entry at the cutoffs of `rules`, as a scan would
 * give it. Returns null when some schema's expired count needs a scan. Only the entry
 * of a rewritten file needs the window, so it is copied only with `withWindow`. Without
 * it, each schema gets the empty window at its cutoff.
 */
export function tallyFromSummary(summary: FileSummary, rules: RetentionRules, withWindow = false): FileTally | null {
  const tally = new FileTally(summary.facets !== null);
  for (const schema of summary.schemas) {
    const rule = rules.ruleFor(schema.schemaName, schema.schemaVersion);
    const expired = expiredAt(schema, rule.cutoffMs);
    if (expired === null) {
      return null;
    }
    const window = withWindow ? keptWindow(schema, rule.cutoffMs) : { instants: [], lineBytes: [], endMs: rule.cutoffMs };
    tally.schemas.set(rule.key, {
      rule,
      schemaVersion: schema.schemaVersion,
      records: schema.records,
      bytes: schema.bytes,
      expired: expired.records,
      expiredBytes: expired.bytes,
      earliestMs: schema.earliestMs,
      latestMs: schema.latestMs,
      window: window.instants,
      windowBytes: window.lineBytes,
      windowEndMs: window.endMs,
    });
    tally.records += schema.records;
    tally.expired += expired.records;
    tally.expiredBytes += expired.bytes;
  }
  tally.malformed = summary.malformed;
  Object.assign(tally.malformedByKind, summary.malformedByKind);
  tally.blankLines = summary.blankLines;
  tally.partialTailBytes = summary.partialTailBytes;
  tally.bomBytes = summary.bomBytes;
  tally.keptBytes = summary.contentBytes - summary.bomBytes - tally.expiredBytes;
  if (summary.facets !== null && tally.facets !== null) {
    for (const [key, count] of Object.entries(summary.facets.byType)) tally.facets.byType.set(key, count);
    for (const [key, count] of Object.entries(summary.facets.byStatus)) tally.facets.byStatus.set(key, count);
    for (const [key, count] of Object.entries(summary.facets.byPolicy)) tally.facets.byPolicy.set(key, count);
  }
  return tally;
}
