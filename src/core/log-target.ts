/**
 * The file a writer appends to, and the names of the segments it rotates into.
 *
 * The target is the layout's active file: the newest plain segment
 * `STEM-YYYYmmddTHHMMSS[-N].jsonl`, else the configured `STEM.jsonl`. A new
 * segment is named after the current second in UTC. N is added when a segment of
 * that second exists already, and a new name always sorts after every existing
 * segment, even when the clock is behind their names, so it becomes the active one.
 */

import { constants } from 'node:fs';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { discoverLayout, logNames } from './layout.js';

/** A log file opened for appending, with the identity it had when it was opened. */
export interface AppendTarget {
  path: string;
  handle: FileHandle;
  dev: number;
  ino: number;
  /** True when this open created the file, so its directory entry still needs an fsync. */
  created: boolean;
}

interface SegmentKey {
  stamp: string;
  counter: number;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Formats epoch ms as the `YYYYmmddTHHMMSS` of segment names, in UTC. */
export function segmentStamp(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 19).replace(/[-:]/g, '');
}

function compareSegments(left: SegmentKey, right: SegmentKey): number {
  if (left.stamp !== right.stamp) {
    return left.stamp < right.stamp ? -1 : 1;
  }
  return left.counter - right.counter;
}

/** Returns the name of the segment that follows every segment in `existingNames` and is not older than `nowMs`. */
export function nextSegmentName(logPath: string, existingNames: readonly string[], nowMs: number): string {
  const { stem, extension } = logNames(logPath);
  const pattern = new RegExp(`^${escapeRegExp(stem)}-(\\d{8}T\\d{6})(?:-(\\d+))?${escapeRegExp(extension)}(?:\\.gz)?$`);

  let newest: SegmentKey | null = null;
  for (const name of existingNames) {
    const match = pattern.exec(name);
    if (match === null) {
      continue;
    }
    const key = { stamp: match[1]!, counter: Number(match[2] ?? 0) };
    if (newest === null || compareSegments(key, newest) > 0) {
      newest = key;
    }
  }

  let next: SegmentKey = { stamp: segmentStamp(nowMs), counter: 0 };
  if (newest !== null && compareSegments(next, newest) <= 0) {
    next = { stamp: newest.stamp, counter: newest.counter + 1 };
  }
  return `${stem}-${next.stamp}${next.counter === 0 ? '' : `-${next.counter}`}${extension}`;
}

/**
 * Opens `path` for appending (O_APPEND, so every write lands at the end even next
 * to other writers), creating it with mode 0644 before umask when it is missing.
 * Read access lets the writer check the last byte for a partial line.
 */
export async function openForAppend(path: string): Promise<AppendTarget> {
  let handle: FileHandle;
  let created = true;
  try {
    handle = await open(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL, 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw error;
    }
    created = false;
    handle = await open(path, constants.O_RDWR | constants.O_APPEND);
  }
  const info = await handle.stat();
  return { path, handle, dev: info.dev, ino: info.ino, created };
}

/**
 * Returns the path of the layout's active file, or null when the log has neither a
 * plain segment nor `STEM.jsonl`. `profile` only names the profile in errors.
 */
export async function activeFilePath(logPath: string, profile: string): Promise<string | null> {
  const layout = await discoverLayout(logPath, profile);
  return layout.files.find((file) => file.active)?.path ?? null;
}

/** Creates the next segment of `logPath`, retrying with the next N when another process took the name first. */
export async function createNextSegment(logPath: string, nowMs: number): Promise<AppendTarget> {
  const { directory } = logNames(logPath);
  const names = await readdir(directory);
  for (;;) {
    const name = nextSegmentName(logPath, names, nowMs);
    const path = join(directory, name);
    try {
      const handle = await open(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL, 0o644);
      const info = await handle.stat();
      return { path, handle, dev: info.dev, ino: info.ino, created: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw error;
      }
      names.push(name);
    }
  }
}
