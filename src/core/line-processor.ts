/**
 * The per-line decision of a cleanup, shared by the dry run and the real run, by
 * plain and gzip files: each complete line is scanned, tallied, and either kept or
 * deleted. Kept lines are reported as byte ranges of the caller's buffer, so they are
 * copied without decoding.
 */

import { isUtf8 } from 'node:buffer';

import { LineKind, MALFORMED_KIND_NAMES, type LineScanner } from './scanner.js';
import type { RetentionRules, SchemaRule } from './retention.js';

const LINE_FEED = 0x0a;

/** Counts for one schema key within one file. */
export interface SchemaTally {
  rule: SchemaRule;
  schemaVersion: number;
  /** Records of this schema in the file, expired ones included, and their bytes with line feeds. */
  records: number;
  bytes: number;
  expired: number;
  expiredBytes: number;
  /** Earliest and latest record instant in epoch ms. */
  earliestMs: number;
  latestMs: number;
  /**
   * Instants and line sizes of the records at or after the cutoff and before
   * `windowEndMs`, unsorted. They let a later run with a later cutoff count its
   * expired records without a scan.
   */
  window: number[];
  windowBytes: number[];
  windowEndMs: number;
}

/**
 * Span after the cutoff whose record instants a scan remembers, in ms: 30 hours.
 * Within it, a dry run or stats call needs no rescan of a file that straddles the
 * cutoff. A daily real run that starts up to six hours late then gets from the index
 * how many records of such a file expire, and stops deciding lines after the last
 * one. Three days cost 8 MiB more peak RSS on a 4 GiB log.
 */
export const WINDOW_MS = 30 * 3_600_000;

/**
 * Maximum instants remembered per schema and file (512 KiB of numbers). Past it the
 * window shrinks to its earliest half, so memory per file stays bounded on busy logs.
 */
export const MAX_WINDOW_RECORDS = 65_536;

/** Halves a full window, keeping its earliest instants and moving its end to the first one dropped. */
function shrinkWindow(tally: SchemaTally): void {
  const order = tally.window.map((_, index) => index).sort((left, right) => tally.window[left]! - tally.window[right]!);
  const keep = MAX_WINDOW_RECORDS / 2;
  tally.windowEndMs = tally.window[order[keep]!]!;
  const kept = order.slice(0, keep);
  tally.windowBytes = kept.map((index) => tally.windowBytes[index]!);
  tally.window = kept.map((index) => tally.window[index]!);
}

/** Record counts by operation type, status and policy decision, for stats. */
export interface RecordFacets {
  byType: Map<string, number>;
  byStatus: Map<string, number>;
  byPolicy: Map<string, number>;
}

/** A FileTally as plain data, to cross a worker boundary. */
export interface SerializedTally {
  schemas: [
    schemaName: string | null,
    schemaVersion: number,
    records: number,
    bytes: number,
    expired: number,
    expiredBytes: number,
    earliestMs: number,
    latestMs: number,
    window: number[],
    windowBytes: number[],
    windowEndMs: number,
  ][];
  records: number;
  expired: number;
  expiredBytes: number;
  malformed: number;
  malformedByKind: Record<string, number>;
  blankLines: number;
  keptBytes: number;
  facets: { byType: [string, number][]; byStatus: [string, number][]; byPolicy: [string, number][] } | null;
}

/** Adds another part's window; the result covers up to the earlier of the two ends. */
function mergeWindows(target: SchemaTally, window: readonly number[], windowBytes: readonly number[], windowEndMs: number): void {
  const end = Math.min(target.windowEndMs, windowEndMs);
  const mergedInstants: number[] = [];
  const mergedBytes: number[] = [];
  const add = (instants: readonly number[], bytes: readonly number[]): void => {
    for (let index = 0; index < instants.length; index++) {
      if (instants[index]! < end) {
        mergedInstants.push(instants[index]!);
        mergedBytes.push(bytes[index]!);
      }
    }
  };
  add(target.window, target.windowBytes);
  add(window, windowBytes);
  target.window = mergedInstants;
  target.windowBytes = mergedBytes;
  target.windowEndMs = end;
  while (target.window.length > MAX_WINDOW_RECORDS) {
    shrinkWindow(target);
  }
}

function addCount(counts: Map<string, number>, key: string, count = 1): void {
  counts.set(key, (counts.get(key) ?? 0) + count);
}

/** Counts and sizes found by the scan of one file. */
export class FileTally {
  readonly schemas = new Map<string, SchemaTally>();
  records = 0;
  expired = 0;
  expiredBytes = 0;
  malformed = 0;
  readonly malformedByKind: Record<string, number> = {};
  blankLines = 0;
  /** Length of a last line without a line feed, 0 when the file ends with one. */
  partialTailBytes = 0;
  /** Bytes of a UTF-8 byte order mark at the start of the file. */
  bomBytes = 0;
  /** Bytes of complete lines and tail that stay in the file, the mark excluded. */
  keptBytes = 0;
  /**
   * True when the file's first line is deleted, so that another line moves to the
   * start of the file. Only the thread that scans the file's start sets it, so it is
   * neither serialized nor merged.
   */
  firstLineDeleted = false;
  /** Counts by operation type, status and policy decision; null unless requested. */
  readonly facets: RecordFacets | null;

  constructor(countFacets: boolean) {
    this.facets = countFacets ? { byType: new Map(), byStatus: new Map(), byPolicy: new Map() } : null;
  }

  countMalformed(kind: LineKind): void {
    this.malformed++;
    const name = MALFORMED_KIND_NAMES[kind]!;
    this.malformedByKind[name] = (this.malformedByKind[name] ?? 0) + 1;
  }

  /** Deleted records by schema key, only keys with deletions. */
  deletedPerSchema(): Map<string, number> {
    const deleted = new Map<string, number>();
    for (const [key, tally] of this.schemas) {
      if (tally.expired > 0) {
        deleted.set(key, tally.expired);
      }
    }
    return deleted;
  }

  serialize(): SerializedTally {
    return {
      schemas: [...this.schemas.values()].map((tally) => [
        tally.rule.schemaName,
        tally.schemaVersion,
        tally.records,
        tally.bytes,
        tally.expired,
        tally.expiredBytes,
        tally.earliestMs,
        tally.latestMs,
        tally.window,
        tally.windowBytes,
        tally.windowEndMs,
      ]),
      records: this.records,
      expired: this.expired,
      expiredBytes: this.expiredBytes,
      malformed: this.malformed,
      malformedByKind: { ...this.malformedByKind },
      blankLines: this.blankLines,
      keptBytes: this.keptBytes,
      facets:
        this.facets === null
          ? null
          : { byType: [...this.facets.byType], byStatus: [...this.facets.byStatus], byPolicy: [...this.facets.byPolicy] },
    };
  }

  /** Adds the counts of a tally of another part of the same file; `rules` maps its schemas to this run's rules. */
  merge(other: SerializedTally, rules: RetentionRules): void {
    for (const [schemaName, schemaVersion, records, bytes, expired, expiredBytes, earliestMs, latestMs, window, windowBytes, windowEndMs] of other.schemas) {
      const rule = rules.ruleFor(schemaName, schemaVersion);
      const existing = this.schemas.get(rule.key);
      if (existing === undefined) {
        this.schemas.set(rule.key, {
          rule,
          schemaVersion,
          records,
          bytes,
          expired,
          expiredBytes,
          earliestMs,
          latestMs,
          window,
          windowBytes,
          windowEndMs,
        });
        continue;
      }
      existing.records += records;
      existing.bytes += bytes;
      existing.expired += expired;
      existing.expiredBytes += expiredBytes;
      existing.earliestMs = Math.min(existing.earliestMs, earliestMs);
      existing.latestMs = Math.max(existing.latestMs, latestMs);
      mergeWindows(existing, window, windowBytes, windowEndMs);
    }
    this.records += other.records;
    this.expired += other.expired;
    this.expiredBytes += other.expiredBytes;
    this.malformed += other.malformed;
    for (const [kind, count] of Object.entries(other.malformedByKind)) {
      this.malformedByKind[kind] = (this.malformedByKind[kind] ?? 0) + count;
    }
    this.blankLines += other.blankLines;
    this.keptBytes += other.keptBytes;
    if (this.facets !== null && other.facets !== null) {
      for (const [key, count] of other.facets.byType) addCount(this.facets.byType, key, count);
      for (const [key, count] of other.facets.byStatus) addCount(this.facets.byStatus, key, count);
      for (const [key, count] of other.facets.byPolicy) addCount(this.facets.byPolicy, key, count);
    }
  }
}

/**
 * Decides the lines of one file. Feed it the file's bytes in order, complete lines
 * only, then `finishTail` with the last line when it has no line feed.
 */
export class LineProcessor {
  readonly tally: FileTally;

  /** Kept byte ranges of the last `processLines` call, as start/end pairs into its buffer. */
  readonly keptRuns: number[] = [];

  private atFileStart = true;
  private lastRule: SchemaRule | null = null;
  private lastTally: SchemaTally | null = null;

  constructor(
    private readonly scanner: LineScanner,
    private readonly rules: RetentionRules,
    countFacets = false,
  ) {
    this.tally = new FileTally(countFacets);
  }

  /** Declares that the next bytes do not start the file, so they are not checked for a byte order mark. */
  continueFile(): void {
    this.atFileStart = false;
  }

  /**
   * Decides every line in `bytes[start, end)`; the byte at `end - 1` must be a line
   * feed. Fills `keptRuns` and returns the number of lines deleted.
   */
  processLines(bytes: Uint8Array, start: number, end: number): number {
    const scanner = this.scanner;
    const facts = scanner.facts;
    const tally = this.tally;
    const keptRuns = this.keptRuns;
    keptRuns.length = 0;

    let deletedLines = 0;
    let runStart = start;
    let lineStart = start;

    // A byte order mark belongs to the file, not to its first line: it stays even when that line goes.
    let markBytes = 0;
    // Where the file's first line starts when this region begins the file, else -1.
    const firstLineStart = this.atFileStart && start < end ? start : -1;
    if (this.atFileStart && start < end) {
      this.atFileStart = false;
      if (bytes[start] === 0xef && bytes[start + 1] === 0xbb && bytes[start + 2] === 0xbf) {
        markBytes = 3;
        tally.bomBytes = markBytes;
      }
    }

    const markInRuns = markBytes;

    // One native UTF-8 check over the whole region, instead of one per line; it fails only
    // on regions that contain an invalid line, and then each line is checked on its own.
    scanner.utf8Verified = isUtf8(bytes.subarray(start, end));

    while (lineStart < end) {
      const lineEnd = bytes.indexOf(LINE_FEED, lineStart);
      const contentStart = lineStart + markBytes;
      markBytes = 0;
      const kind = scanner.scanLine(bytes, contentStart, lineEnd);

      if (kind === LineKind.RECORD) {
        const schemaTally = this.tallyFor(facts.schemaName, facts.schemaVersion);
        const timestampMs = facts.timestampMs;
        const lineBytes = lineEnd + 1 - contentStart;
        schemaTally.records++;
        schemaTally.bytes += lineBytes;
        tally.records++;
        if (timestampMs < schemaTally.earliestMs) schemaTally.earliestMs = timestampMs;
        if (timestampMs > schemaTally.latestMs) schemaTally.latestMs = timestampMs;
        const facets = tally.facets;
        if (facets !== null) {
          if (facts.operationType !== null) addCount(facets.byType, facts.operationType);
          if (facts.operationStatus !== null) addCount(facets.byStatus, facts.operationStatus);
          if (facts.policyDecision !== null) addCount(facets.byPolicy, facts.policyDecision);
        }

        if (timestampMs < schemaTally.rule.cutoffMs) {
          schemaTally.expired++;
          schemaTally.expiredBytes += lineBytes;
          tally.expired++;
          tally.expiredBytes += lineBytes;
          deletedLines++;
          if (lineStart === firstLineStart) {
            tally.firstLineDeleted = true;
          }
          if (contentStart > runStart) {
            pushRun(keptRuns, runStart, contentStart);
          }
          runStart = lineEnd + 1;
        } else if (timestampMs < schemaTally.windowEndMs) {
          schemaTally.window.push(timestampMs);
          schemaTally.windowBytes.push(lineBytes);
          if (schemaTally.window.length > MAX_WINDOW_RECORDS) {
            shrinkWindow(schemaTally);
          }
        }
      } else if (kind === LineKind.BLANK) {
        tally.blankLines++;
      } else {
        tally.countMalformed(kind);
      }

      lineStart = lineEnd + 1;
    }

    if (runStart < end) {
      pushRun(keptRuns, runStart, end);
    }
    // Kept bytes count lines only; the mark, always inside the first run, is left out.
    let keptBytes = -markInRuns;
    for (let index = 0; index < keptRuns.length; index += 2) {
      keptBytes += keptRuns[index + 1]! - keptRuns[index]!;
    }
    tally.keptBytes += keptBytes;
    return deletedLines;
  }

  /** Counts a line too long to scan; the caller keeps it as it is. */
  countOverlongLine(): void {
    this.atFileStart = false;
    this.tally.malformed++;
    this.tally.malformedByKind['too_long'] = (this.tally.malformedByKind['too_long'] ?? 0) + 1;
  }

  /** Records the last line of the file when it has no line feed; it is always kept as it is. */
  finishTail(length: number): void {
    this.tally.partialTailBytes = length;
    this.tally.keptBytes += length;
  }

  private tallyFor(schemaName: string | null, schemaVersion: number): SchemaTally {
    const lastRule = this.lastRule;
    if (lastRule !== null && lastRule.schemaName === schemaName && this.lastVersion === schemaVersion) {
      return this.lastTally!;
    }
    const rule = this.rules.ruleFor(schemaName, schemaVersion);
    let schemaTally = this.tally.schemas.get(rule.key);
    if (schemaTally === undefined) {
      schemaTally = {
        rule,
        schemaVersion,
        records: 0,
        bytes: 0,
        expired: 0,
        expiredBytes: 0,
        earliestMs: Infinity,
        latestMs: -Infinity,
        window: [],
        windowBytes: [],
        windowEndMs: rule.cutoffMs + WINDOW_MS,
      };
      this.tally.schemas.set(rule.key, schemaTally);
    }
    this.lastRule = rule;
    this.lastVersion = schemaVersion;
    this.lastTally = schemaTally;
    return schemaTally;
  }

  private lastVersion = 0;
}

/** Appends a kept range, merging it with the previous one when they touch. */
function pushRun(runs: number[], start: number, end: number): void {
  const count = runs.length;
  if (count > 0 && runs[count - 1] === start) {
    runs[count - 1] = end;
    return;
  }
  runs.push(start, end);
}
