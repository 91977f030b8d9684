/**
 * The files that make up one configured log, found by name in its directory.
 *
 * For a log path `DIR/STEM.jsonl`:
 * - `STEM.jsonl`: a single-file log;
 * - `STEM-YYYYmmddTHHMMSS[-N].jsonl`: rotated segments (MXCP), also compressed as `.jsonl.gz`;
 * - `STEM.jsonl.N[.gz]` and `STEM.jsonl-DATE[.gz]`: files left by logrotate;
 * - `STEM_schemas.jsonl`, `STEM_cleanup.jsonl` and `STEM.jsonl.lock`: never log files.
 * The same rules apply to any other extension, `app.log` giving `app-…log` segments.
 */

import { lstat, readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';

import { ErrorCode, RetentionError } from './errors.js';

export type LogFileRole = 'single' | 'segment' | 'rotated';

export interface LogFile {
  /** File name inside the log directory; reports use it as the path. */
  name: string;
  path: string;
  role: LogFileRole;
  gzip: boolean;
  /** True for the file a writer appends to now: the newest segment, else the single file. */
  active: boolean;
  /** Size in bytes when the directory was listed. */
  size: number;
}

export interface SkippedFile {
  name: string;
  reason: string;
}

export interface LogLayout {
  directory: string;
  /** File name of the configured log, `STEM.jsonl`. */
  logName: string;
  schemasPath: string;
  /** Lock file shared with writers; created once, never renamed or removed. */
  lockPath: string;
  /** Log files, oldest first. */
  files: LogFile[];
  /** Files whose names match the layout but that cannot be processed. */
  skipped: SkippedFile[];
}

/** Prefix and suffix of the temporary files that a rewrite creates; a leading dot keeps them out of the layout. */
export const TEMPORARY_PREFIX = '.';
export const TEMPORARY_SUFFIX = '.audit-retention.tmp';

/** Compressions that logrotate can produce but this tool cannot read. */
const UNSUPPORTED_COMPRESSION = /\.(bz2|xz|zst|lz4|lzma|Z)$/;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface LogNames {
  directory: string;
  logName: string;
  stem: string;
  extension: string;
}

export function logNames(logPath: string): LogNames {
  const logName = basename(logPath);
  const extension = extname(logName);
  return {
    directory: dirname(logPath),
    logName,
    stem: extension === '' ? logName : logName.slice(0, -extension.length),
    extension,
  };
}

export function schemasPathFor(logPath: string): string {
  const { directory, stem, extension } = logNames(logPath);
  return join(directory, `${stem}_schemas${extension}`);
}

export function cleanupHistoryPathFor(logPath: string): string {
  const { directory, stem, extension } = logNames(logPath);
  return join(directory, `${stem}_cleanup${extension}`);
}

export function lockPathFor(logPath: string): string {
  return `${logPath}.lock`;
}

interface Candidate {
  name: string;
  size?: number;
  role: LogFileRole;
  gzip: boolean;
  /** Sort key, oldest first. */
  order: (string | number)[];
}

/** Classifies one directory entry by name; returns a candidate, an unsupported-compression reason, or null. */
function classifyName(name: string, names: LogNames): Candidate | SkippedFile | null {
  const { logName, stem, extension } = names;

  if (name === logName) {
    return { name, role: 'single', gzip: false, order: [2, 0, 0] };
  }

  const segment = new RegExp(`^${escapeRegExp(stem)}-(\\d{8}T\\d{6})(?:-(\\d+))?${escapeRegExp(extension)}(\\.gz)?$`).exec(name);
  if (segment !== null) {
    return { name, role: 'segment', gzip: segment[3] !== undefined, order: [1, segment[1]!, Number(segment[2] ?? 0)] };
  }

  const rotated = new RegExp(`^${escapeRegExp(logName)}(?:\\.(\\d+)|-(\\d[\\d_.-]*?))(\\.gz)?$`).exec(name);
  if (rotated !== null) {
    const gzip = rotated[3] !== undefined;
    // logrotate's numbered files grow older as N grows; dated ones grow newer as the date grows.
    const order = rotated[1] !== undefined ? [0, 0, -Number(rotated[1])] : [0, 1, rotated[2]!];
    return { name, role: 'rotated', gzip, order };
  }

  const compressed = new RegExp(`^${escapeRegExp(logName)}(?:\\.\\d+|-\\d[\\d_.-]*?)(\\.[A-Za-z0-9]+)$`).exec(name);
  if (compressed !== null && UNSUPPORTED_COMPRESSION.test(name)) {
    return {
      name,
      reason: `compressed with ${compressed[1]!.slice(1)}, which audit-retention cannot read; recompress it with gzip or configure logrotate with compresscmd gzip`,
    };
  }

  return null;
}

function compareOrder(left: (string | number)[], right: (string | number)[]): number {
  for (let index = 0; index < left.length; index++) {
    const a = left[index]!;
    const b = right[index]!;
    if (a < b) return -1;
    if (a > b) return 1;
  }
  return 0;
}

/**
 * Lists the log files of `logPath`. Throws LOG_DIR_MISSING when the directory does
 * not exist; `profile` only names the profile in that message.
 */
export async function discoverLayout(logPath: string, profile: string): Promise<LogLayout> {
  const names = logNames(logPath);

  let entries: string[];
  try {
    entries = await readdir(names.directory);
  } catch (error) {
    const errno = (error as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT' || errno === 'ENOTDIR') {
      throw new RetentionError(
        ErrorCode.LOG_DIR_MISSING,
        `Log directory ${names.directory} of profile '${profile}' does not exist. Create it, or fix audit.path in the config.`,
        { cause: error },
      );
    }
    if (errno === 'EACCES' || errno === 'EPERM') {
      throw new RetentionError(
        ErrorCode.PERMISSION_DENIED,
        `Permission denied: could not list log directory ${names.directory} of profile '${profile}'. Grant the service user read and execute access to it.`,
        { cause: error },
      );
    }
    throw error;
  }

  const candidates: Candidate[] = [];
  const skipped: SkippedFile[] = [];
  for (const name of entries) {
    const classified = classifyName(name, names);
    if (classified === null) {
      continue;
    }
    if ('reason' in classified) {
      skipped.push(classified);
      continue;
    }

    // A symbolic link would be replaced by a regular file on rewrite, and a FIFO would block a read.
    const entryPath = join(names.directory, name);
    const info = await lstat(entryPath).catch(() => null);
    if (info === null) {
      continue;
    }
    if (info.isSymbolicLink()) {
      skipped.push({ name, reason: 'symbolic link; audit-retention rewrites only regular files, so point audit.path at the target directory' });
      continue;
    }
    if (!info.isFile()) {
      skipped.push({ name, reason: 'not a regular file' });
      continue;
    }
    candidates.push({ ...classified, size: info.size });
  }

  candidates.sort((left, right) => compareOrder(left.order, right.order));

  // A compressed segment is finished, so it is never the active one.
  const newestSegment = candidates.filter((candidate) => candidate.role === 'segment' && !candidate.gzip).at(-1);
  const activeName = newestSegment?.name ?? (candidates.some((candidate) => candidate.role === 'single') ? names.logName : null);

  return {
    directory: names.directory,
    logName: names.logName,
    schemasPath: schemasPathFor(logPath),
    lockPath: lockPathFor(logPath),
    files: candidates.map((candidate) => ({
      name: candidate.name,
      path: join(names.directory, candidate.name),
      role: candidate.role,
      gzip: candidate.gzip,
      active: candidate.name === activeName,
      size: candidate.size ?? 0,
    })),
    skipped: skipped.sort((left, right) => (left.name < right.name ? -1 : 1)),
  };
}

/** Returns true when `path` exists and is a directory. */
export async function isDirectory(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => null);
  return info?.isDirectory() ?? false;
}
