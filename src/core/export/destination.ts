/**
 * Export destinations: names under the export directory (AUDIT_RETENTION_EXPORT_DIR).
 * A name may contain subdirectories, which are created. Absolute paths, `..`, and
 * symbolic links that lead outside the export directory are rejected.
 */

import { lstat, mkdir, readlink, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';

import { ErrorCode, RetentionError } from '../errors.js';
import { destinationExists, WORK_DIRECTORY_SUFFIX } from './files.js';

/** Maximum length of a destination name, in characters. */
const MAX_DESTINATION_LENGTH = 1024;

export interface ResolvedDestination {
  /** The name relative to the export directory, with `/` separators, as responses show it. */
  name: string;
  /** Absolute path below the export directory's real path. */
  path: string;
  /** The export directory's real path. */
  exportDirectory: string;
  /** True when something exists at the destination; only possible with `overwrite`. */
  exists: boolean;
}

function invalidDestination(destination: string, reason: string): RetentionError {
  return new RetentionError(ErrorCode.INVALID_INPUT, `Invalid destination ${JSON.stringify(destination)}: ${reason}`);
}

function isInside(path: string, root: string): boolean {
  return path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
}

/** Checks the name's syntax and returns its segments. */
function destinationSegments(destination: string, exportDirectory: string): string[] {
  const advice = `give a name relative to the export directory ${exportDirectory}, such as audit-20261204.duckdb or archive/audit-20261204.parquet`;
  if (destination.length === 0 || destination.length > MAX_DESTINATION_LENGTH) {
    throw invalidDestination(destination, `it must have 1 to ${MAX_DESTINATION_LENGTH} characters; ${advice}.`);
  }
  if (destination.includes('\0')) {
    throw invalidDestination(destination, `it contains a NUL character; ${advice}.`);
  }
  if (isAbsolute(destination) || destination.startsWith('\\') || /^[A-Za-z]:/.test(destination)) {
    throw invalidDestination(destination, `absolute paths are not accepted; ${advice}.`);
  }
  const segments = destination.split(/[\\/]/).filter((segment) => segment !== '.');
  if (segments.includes('..')) {
    throw invalidDestination(destination, `'..' is not accepted, because the destination must stay inside the export directory; ${advice}.`);
  }
  if (segments.length === 0 || segments.includes('')) {
    throw invalidDestination(destination, `it has an empty path segment or ends with a slash; ${advice}.`);
  }
  if (segments.at(-1)!.endsWith(WORK_DIRECTORY_SUFFIX)) {
    throw invalidDestination(destination, `names ending with ${WORK_DIRECTORY_SUFFIX} are reserved for the export's temporary files; choose another name.`);
  }
  return segments;
}

/** Returns the real path of the symbolic link at `path`, also when its target does not exist. */
async function linkTarget(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    const target = await readlink(path);
    return resolve(dirname(path), target);
  }
}

/**
 * Resolves `destination` below `exportDirectory`, creating the export directory and
 * the destination's parent directories when missing. Throws INVALID_INPUT (400) for a
 * name that is absolute, contains `..`, or passes through a symbolic link that leads
 * outside the export directory, and DESTINATION_EXISTS (409) when the destination
 * exists and `overwrite` is false.
 */
export async function resolveDestination(
  exportDirectory: string,
  destination: string,
  options: { overwrite: boolean; directory: boolean },
): Promise<ResolvedDestination> {
  const { overwrite } = options;
  const segments = destinationSegments(destination, exportDirectory);
  const name = segments.join('/');

  await mkdir(exportDirectory, { recursive: true });
  const root = await realpath(exportDirectory);

  let current = root;
  for (const segment of segments.slice(0, -1)) {
    const candidate = join(current, segment);
    const info = await lstat(candidate).catch(() => null);
    if (info === null) {
      await mkdir(candidate);
      current = candidate;
      continue;
    }
    if (info.isSymbolicLink()) {
      const target = await linkTarget(candidate);
      if (!isInside(target, root)) {
        throw invalidDestination(
          destination,
          `${candidate} is a symbolic link to ${target}, outside the export directory ${root}. Choose a name whose directories stay inside it.`,
        );
      }
      current = target;
      const targetInfo = await lstat(target).catch(() => null);
      if (targetInfo === null) {
        await mkdir(target, { recursive: true });
        continue;
      }
      if (!targetInfo.isDirectory()) {
        throw invalidDestination(destination, `${target} is not a directory.`);
      }
      continue;
    }
    if (!info.isDirectory()) {
      throw invalidDestination(destination, `${candidate} exists and is not a directory.`);
    }
    current = candidate;
  }

  const path = join(current, segments.at(-1)!);
  const info = await lstat(path).catch(() => null);
  if (info?.isSymbolicLink() === true) {
    const target = await linkTarget(path);
    if (!isInside(target, root)) {
      throw invalidDestination(
        destination,
        `${path} is a symbolic link to ${target}, outside the export directory ${root}. Remove the link or choose another name.`,
      );
    }
  }
  if (info !== null && !overwrite) {
    throw destinationExists(path, name);
  }
  if (info?.isDirectory() === true && !options.directory) {
    throw invalidDestination(destination, `${path} is a directory, and this format writes one file. Choose a file name, or remove the directory.`);
  }
  return { name, path, exportDirectory: root, exists: info !== null };
}
