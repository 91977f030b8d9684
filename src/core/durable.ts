/**
 * File system steps that make a replacement durable: temporary names, directory
 * fsync and the removal of temporaries that a crash left behind.
 */

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { TEMPORARY_PREFIX, TEMPORARY_SUFFIX } from './layout.js';

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
 * Removes temporary files of interrupted rewrites in `directory` and returns their names.
 * The caller must hold the run lock, so that no live rewrite owns them.
 */
export async function removeLeftoverTemporaries(directory: string): Promise<string[]> {
  const names = await readdir(directory);
  const removed: string[] = [];
  for (const name of names) {
    if (name.startsWith(TEMPORARY_PREFIX) && name.endsWith(TEMPORARY_SUFFIX)) {
      await unlink(join(directory, name)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
      removed.push(name);
    }
  }
  if (removed.length > 0) {
    await fsyncDirectory(directory);
  }
  return removed;
}
