/**
 * Log files that DuckDB reads in place, without a staging copy: plain files that no
 * writer appends to, in which every line is a record that DuckDB accepts as it is.
 *
 * The export keeps each such file open from its scan until the output is written,
 * and DuckDB reads it through `/proc/self/fd/N`. So a cleanup that replaces the file
 * by rename meanwhile changes nothing that DuckDB reads. A file written in place
 * after its scan shows a new size, mtime or ctime, which `changedInPlaceFiles` finds.
 * The export then copies the bytes that were scanned into staging (`stageInPlaceFile`)
 * and writes the output again.
 */

import { existsSync, type BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

import { ErrorCode, RetentionError } from '../errors.js';
import { sameState } from '../scan-index.js';
import { StagingWriter, type StagingFiles } from './staging-writer.js';

const LINE_FEED = 0x0a;

/** Size of the reads of `copyLines`, in bytes. */
const COPY_BYTES = 4 * 1024 * 1024;

/** Most log files read in place by one export, each holding a file descriptor; later files are staged. */
export const MAX_IN_PLACE_FILES = 256;

/** A log file that DuckDB reads in place. */
export interface InPlaceFile {
  /** File name inside the log directory, as reports show it. */
  name: string;
  /** The handle opened for the scan, kept open until the export ends. */
  handle: FileHandle;
  /** Path under which DuckDB opens the handle's file: `/proc/self/fd/N`. */
  readPath: string;
  /** Identity, size and times of the file when it was scanned. */
  scanned: BigIntStats;
  records: number;
  /** Length of the longest line, line feed included, in bytes. */
  longestLineBytes: number;
}

/** True when DuckDB can open a handle of this process by path, which needs Linux's /proc. */
export function inPlaceReadable(): boolean {
  return process.platform === 'linux' && existsSync('/proc/self/fd');
}

/** Path of an open file descriptor of this process. */
export function descriptorPath(handle: FileHandle): string {
  return `/proc/self/fd/${handle.fd}`;
}

/** Returns the files read in place whose size, mtime or ctime changed since their scan. */
export async function changedInPlaceFiles(files: readonly InPlaceFile[]): Promise<InPlaceFile[]> {
  const changed: InPlaceFile[] = [];
  for (const file of files) {
    if (!sameState(await file.handle.stat({ bigint: true }), file.scanned)) {
      changed.push(file);
    }
  }
  return changed;
}

export async function closeInPlaceFiles(files: readonly InPlaceFile[]): Promise<void> {
  for (const file of files) {
    await file.handle.close().catch(() => undefined);
  }
}

/**
 * Copies the bytes `[from, to)` of a file into the writer. They must be complete record
 * lines, as every line before a scan position is. Returns the number of lines copied.
 * Throws when the file has become shorter than `to`.
 */
export async function copyLines(handle: FileHandle, from: number, to: number, writer: StagingWriter, name: string): Promise<number> {
  let buffer = Buffer.allocUnsafe(Math.min(COPY_BYTES, Math.max(to - from, 1)));
  let filled = 0;
  let position = from;
  let lines = 0;
  while (position < to) {
    if (filled === buffer.length) {
      const larger = Buffer.allocUnsafe(buffer.length * 2);
      buffer.copy(larger, 0, 0, filled);
      buffer = larger;
    }
    const { bytesRead } = await handle.read(buffer, filled, Math.min(buffer.length - filled, to - position), position);
    if (bytesRead === 0) {
      throw new RetentionError(
        ErrorCode.EXPORT_FAILED,
        `Could not export ${name}: the file became shorter than the ${to} bytes that the export had read, for example by a truncation. Run the export again.`,
      );
    }
    position += bytesRead;
    filled += bytesRead;
    const end = position === to ? filled : buffer.lastIndexOf(LINE_FEED, filled - 1) + 1;
    if (end === 0) {
      continue;
    }
    for (let index = buffer.indexOf(LINE_FEED); index >= 0 && index < end; index = buffer.indexOf(LINE_FEED, index + 1)) {
      lines++;
    }
    await writer.writeLines([buffer.subarray(0, end)]);
    buffer.copy(buffer, 0, end, filled);
    filled -= end;
  }
  return lines;
}

/**
 * Copies the scanned bytes of a file read in place into part files under `directory`
 * and returns them. Throws when the file no longer has the records that its scan
 * counted, because then its content changed in place.
 */
export async function stageInPlaceFile(file: InPlaceFile, directory: string): Promise<StagingFiles> {
  const writer = await StagingWriter.create(directory, { durable: false });
  try {
    const lines = await copyLines(file.handle, 0, Number(file.scanned.size), writer, file.name);
    if (lines !== file.records) {
      throw new RetentionError(
        ErrorCode.EXPORT_FAILED,
        `Could not export ${file.name}: it was rewritten while the export read it (${lines} lines now, ${file.records} records when scanned). Run the export again.`,
      );
    }
    return await writer.close();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}
