/**
 * Loads the bundled command line, dist/cli/audit-retention.cjs, with the V8 code
 * cache that the build recorded beside it. Node.js 20 has no compile cache for ES
 * modules, so starting from dist/src means resolving, reading and compiling about
 * 130 module files on every run. The bundle with its cache starts in roughly half
 * the time, which is most of a dry run on unchanged files.
 *
 * This module and src/bin.cts are CommonJS, as is the bundle, so a one-shot command
 * starts without Node's ES module loader. A missing bundle (a build that stopped
 * after tsc) falls back to dist/src/cli.js.
 * A cache that V8 rejects, such as after a Node.js upgrade without a rebuild, only
 * costs the compile, because V8 checks its version, its flags and the source's
 * length before using a cache.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

export const BUNDLE_PATH = join(__dirname, '..', 'cli', 'audit-retention.cjs');

// The bundle's first line, written by scripts/bundle-cli.ts, names its build.
const BUILD_ID_LINE = /^\/\/ audit-retention bundle ([0-9a-f]{16})\n/;

/**
 * Path of the code cache of this bundle source. It carries the build's name because
 * V8 compares only the length of the source with the cache's, so a cache of another
 * build of the same length would be accepted and run the wrong code.
 */
export function bundleCodeCachePath(source: string): string | null {
  const buildId = BUILD_ID_LINE.exec(source)?.[1];
  return buildId === undefined ? null : `${BUNDLE_PATH}.${buildId}.code-cache`;
}

export interface CompiledBundle {
  script: Script;
  /** Where this build's code cache is kept, or null for a bundle without a build name. */
  codeCachePath: string | null;
  /** True when there was no code cache or V8 rejected it, so the bundle was compiled from source. */
  compiledFromSource: boolean;
  /** Evaluates the bundle, which runs the command named in process.argv. */
  run(): void;
}

/** Compiles the bundle with its code cache, or returns null when the build made no bundle. */
export function compileBundledCli(): CompiledBundle | null {
  const source = readOptionalFile(BUNDLE_PATH, 'utf8');
  if (source === undefined) {
    return null;
  }

  const codeCachePath = bundleCodeCachePath(source);
  const codeCache = codeCachePath === null ? undefined : readOptionalFile(codeCachePath);

  // The wrapper starts on the bundle's first line, so stack traces keep the bundle's line numbers.
  const script = new Script(`(function (exports, require, module, __filename, __dirname, __importModule) {${source}\n})`, {
    filename: BUNDLE_PATH,
    cachedData: codeCache,
  });

  return {
    script,
    codeCachePath,
    compiledFromSource: codeCache === undefined || script.cachedDataRejected === true,
    run() {
      const bundleModule = { exports: {} };
      const evaluate = script.runInThisContext() as (...args: unknown[]) => void;
      evaluate(bundleModule.exports, createRequire(BUNDLE_PATH), bundleModule, BUNDLE_PATH, dirname(BUNDLE_PATH), importModule);
    },
  };
}

/**
 * The bundle's import(): the HTTP layer and DuckDB stay outside the bundle, named
 * relative to this module (scripts/bundle-cli.ts lists them). A vm.Script has no
 * import() of its own that survives its code cache.
 */
function importModule(specifier: string): Promise<unknown> {
  return import(specifier);
}

function readOptionalFile(path: string): Buffer | undefined;
function readOptionalFile(path: string, encoding: 'utf8'): string | undefined;
function readOptionalFile(path: string, encoding?: 'utf8'): Buffer | string | undefined {
  try {
    return readFileSync(path, encoding);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }
    throw error;
  }
}
