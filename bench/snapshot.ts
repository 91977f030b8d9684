/**
 * A private copy of the compiled project, taken when the benchmark starts. Other
 * developers rebuild dist/ while a run goes on (npm test builds it), so every
 * timed command runs from this copy and the whole run measures one build.
 */

import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, readdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface BuildSnapshot {
  root: string;
  cliPath: string;
  /** Directory of the compiled benchmark scripts inside the copy. */
  benchDir: string;
  /** First 12 hex digits of SHA-256 over the copied dist/src, to tell builds apart in reports. */
  fingerprint: string;
}

/** Copies dist/src, dist/cli, dist/scripts, dist/bench and package.json of `projectRoot` to `target`. */
export async function snapshotBuild(projectRoot: string, target: string): Promise<BuildSnapshot> {
  await rm(target, { recursive: true, force: true });
  await mkdir(join(target, 'dist'), { recursive: true });
  for (const part of ['src', 'cli', 'scripts', 'bench']) {
    await cp(join(projectRoot, 'dist', part), join(target, 'dist', part), { recursive: true });
  }
  // The CLI reads its version from ../../package.json, relative to dist/src/cli.js.
  await cp(join(projectRoot, 'package.json'), join(target, 'package.json'));
  // A link keeps module resolution working wherever the data directory is.
  await symlink(join(projectRoot, 'node_modules'), join(target, 'node_modules'), 'dir');

  return {
    root: target,
    cliPath: join(target, 'dist/src/bin.cjs'),
    benchDir: join(target, 'dist/bench'),
    fingerprint: (await hashTree(join(target, 'dist/src'))).slice(0, 12),
  };
}

/** Hashes the relative paths and contents of every file under `directory`, in sorted order. */
async function hashTree(directory: string): Promise<string> {
  const hash = createHash('sha256');
  const entries = await readdir(directory, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name))
    .sort();
  for (const file of files) {
    hash.update(file.slice(directory.length));
    hash.update(await readFile(file));
  }
  return hash.digest('hex');
}
