/**
 * File system steps that make a replacement durable: temporary names, directory
 * fsync and the removal of temporaries that a crash left behind.
 */

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { TEMPORARY_PREFIX, TEMPORARY_SUFFIX } from './layout.js';
import { isIndexTemporaryName } from './scan-index.js';

/** Returns a fresh temporary path beside `path`, hidden from the layout by its leading dot. */
export function temporaryPathFor(path: string): string {
  const unique = `${process.pid}-${randomBytes(6).toString('hex')}`;
  return join(dirname(path), `${TEMPORARY_PREFIX}${basename(path)}.${unique}${TEMPORARY_SUFFIX}`);
}

/** Fsyncs a directory so that a rename or unlink inside it survives a power loss. */
export async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Age, in ms, from which a scan index's temporary file counts as left by a crash.
 * A save takes milliseconds, but dry runs and stats save the index without the run
 * lock, so a younger file may belong to a save in progress.
 */
const INDEX_TEMPORARY_STALE_MS = 10 * 60 * 1000;

/**
 * Removes temporary files of interrupted rewrites and index saves in `directory` and
 * returns their names. The caller must hold the run lock, so that no live rewrite
 * owns them.
 */
export async function removeLeftoverTemporaries(directory: string): Promise<string[]> {
  const names = await readdir(directory);
  const removed: string[] = [];
  for (const name of names) {
    const path = join(directory, name);
    const isRewriteCopy = name.startsWith(TEMPORARY_PREFIX) && name.endsWith(TEMPORARY_SUFFIX);
    if (!isRewriteCopy && !(isIndexTemporaryName(name) && (await isFileOlderThan(path, INDEX_TEMPORARY_STALE_MS)))) {
      continue;
    }
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    removed.push(name);
  }
  if (removed.length > 0) {
    await fsyncDirectory(directory);
  }
  return removed;
}

async function isFileOlderThan(path: string, ageMs: number): Promise<boolean> {
  const info = await lstat(path).catch(() => null);
  return info !== null && info.isFile() && Date.now() - info.mtimeMs >= ageMs;
}

/**
 * Writes all of `slices` at `position` and returns the byte count. A short write,
 * which the kernel returns when the disk fills part way, is continued until the
 * next write fails with the real cause (ENOSPC), so no byte is silently dropped.
 */
export async function writeFully(handle: FileHandle, slices: readonly Uint8Array[], position: number): Promise<number> {
  let total = 0;
  for (const slice of slices) {
    total += slice.length;
  }
  if (total === 0) {
    return 0;
  }

  const { bytesWritten } = await handle.writev(slices as Uint8Array[], position);
  if (bytesWritten === total) {
    return total;
  }

  let written = bytesWritten;
  let sliceOffset = 0;
  for (const slice of slices) {
    let from = Math.max(0, written - sliceOffset);
    sliceOffset += slice.length;
    while (from < slice.length) {
      const result = await handle.write(slice, from, slice.length - from, position + written);
      if (result.bytesWritten === 0) {
        throw Object.assign(new Error(`write of ${slice.length - from} bytes wrote nothing`), { code: 'ENOSPC' });
      }
      from += result.bytesWritten;
      written += result.bytesWritten;
    }
  }
  return written;
}
