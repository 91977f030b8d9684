/**
 * File system steps of an export: a hidden work directory beside the destination,
 * fsync of a finished file or directory tree, and the atomic move into place.
 *
 * Work directories are named `.DEST.HOST-PID-RANDOM.audit-retention-export.tmp`. The
 * leading dot hides them, and the suffix differs from the cleanup's temporary files,
 * so a cleanup never mistakes an export's work directory for one of its own.
 */

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

import { fsyncDirectory } from '../durable.js';
import { ErrorCode, RetentionError } from '../errors.js';

export const WORK_DIRECTORY_SUFFIX = '.audit-retention-export.tmp';

/** Host name as it appears in work directory names: no dots or dashes, which separate the name's parts. */
function hostLabel(): string {
  return hostname().replace(/[^A-Za-z0-9_]/g, '_');
}

/** Characters of the destination's name kept in a work directory's name, so that it stays below NAME_MAX (255 bytes). */
const WORK_NAME_PREFIX_LENGTH = 100;

/** Creates a fresh hidden work directory beside `destinationPath` and returns its path. */
export async function createWorkDirectory(destinationPath: string): Promise<string> {
  const unique = `${hostLabel()}-${process.pid}-${randomBytes(6).toString('hex')}`;
  const prefix = basename(destinationPath).slice(0, WORK_NAME_PREFIX_LENGTH);
  const path = join(dirname(destinationPath), `.${prefix}.${unique}${WORK_DIRECTORY_SUFFIX}`);
  await mkdir(path, { mode: 0o700 });
  return path;
}

/**
 * Removes work directories in `directory` that an export on this host left when its
 * process died, and returns their names. A directory whose process still runs, or
 * that another host created, stays.
 */
export async function removeStaleWorkDirectories(directory: string): Promise<string[]> {
  const entries = await readdir(directory).catch(() => [] as string[]);
  const removed: string[] = [];
  const pattern = new RegExp(`^\\..*\\.${hostLabel()}-(\\d+)-[0-9a-f]+${WORK_DIRECTORY_SUFFIX.replaceAll('.', '\\.')}$`);
  for (const name of entries) {
    const pid = pattern.exec(name)?.[1];
    if (pid === undefined || isProcessAlive(Number(pid))) {
      continue;
    }
    await rm(join(directory, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Fsyncs a file, or every file and directory of a tree, so that a rename publishes durable content. */
export async function fsyncTree(path: string): Promise<void> {
  const info = await lstat(path);
  if (info.isDirectory()) {
    for (const entry of await readdir(path)) {
      await fsyncTree(join(path, entry));
    }
    await fsyncDirectory(path);
    return;
  }
  const handle = await open(path, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Returns the size of a file, or the total size and count of the files in a tree, in bytes. */
export async function treeSize(path: string): Promise<{ bytes: number; files: number }> {
  const info = await lstat(path);
  if (!info.isDirectory()) {
    return { bytes: info.size, files: 1 };
  }
  let bytes = 0;
  let files = 0;
  for (const entry of await readdir(path)) {
    const inner = await treeSize(join(path, entry));
    bytes += inner.bytes;
    files += inner.files;
  }
  return { bytes, files };
}

export function destinationExists(destinationPath: string, shown: string): RetentionError {
  return new RetentionError(
    ErrorCode.DESTINATION_EXISTS,
    `Export destination ${shown} already exists. Pass overwrite=true (--overwrite on the command line) to replace it, or choose another name.`,
  );
}

/**
 * Moves the finished `outputPath` (a file, or a directory for partitioned output) to
 * `destinationPath` and fsyncs the directory. Without `overwrite`, an existing
 * destination raises DESTINATION_EXISTS. A file is then published with link(2), which
 * fails rather than replace, and a directory with rename(2), which fails on a
 * non-empty one. With `overwrite`, a file replaces the old one in a single rename. A
 * directory first moves the old one aside, so for a moment neither is at the destination.
 * `shown` names the destination in messages.
 */
export async function publish(outputPath: string, destinationPath: string, options: { overwrite: boolean; shown: string }): Promise<void> {
  const isDirectory = (await lstat(outputPath)).isDirectory();
  const existing = await lstat(destinationPath).catch(() => null);

  if (existing !== null && !options.overwrite) {
    throw destinationExists(destinationPath, options.shown);
  }

  if (!isDirectory) {
    if (existing?.isDirectory() === true) {
      throw new RetentionError(
        ErrorCode.INVALID_INPUT,
        `Export destination ${options.shown} is a directory, and this format writes one file. Choose a file name, or remove the directory.`,
      );
    }
    if (options.overwrite) {
      await rename(outputPath, destinationPath);
    } else {
      try {
        await link(outputPath, destinationPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw destinationExists(destinationPath, options.shown);
        }
        throw error;
      }
      await unlink(outputPath);
    }
  } else if (existing === null) {
    try {
      await rename(outputPath, destinationPath);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') {
        throw destinationExists(destinationPath, options.shown);
      }
      throw error;
    }
  } else {
    // Move the old tree into the output's work directory, which the caller removes afterwards.
    const aside = join(dirname(outputPath), `replaced-${randomBytes(4).toString('hex')}`);
    await rename(destinationPath, aside);
    await rename(outputPath, destinationPath);
  }
  await fsyncDirectory(dirname(destinationPath));
}

/** True when `path` is a directory; false when it is anything else or does not exist. */
export async function isExistingDirectory(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => null);
  return info?.isDirectory() ?? false;
}
