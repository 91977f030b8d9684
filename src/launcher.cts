/**
 * Loads the bundled command line, dist/cli/audit-retention.cjs, with the V8 code
 * cache that the build recorded beside it. Node.js 20 has no compile cache for ES
 * modules, so starting from dist/src means resolving, reading and compiling about
 * 130 module files on every run. The bundle with its cache starts in roughly half
 * the time, which is most of a dry run on unchanged files.
 *
 * This module and src/bin.cts are CommonJS, as is the bundle, so a one-shot command
 * starts without Node's ES module loader.
 *
 * Neither file is trusted as found. The bundle runs only when its bytes hash to the
 * build name on its first line and it is newer than dist/src/cli.js; otherwise the
 * command runs dist/src/cli.js. The code cache is used only when the seal in front
 * of it matches both the cache and this bundle. V8 in Node.js 20 checks neither a
 * cache's checksum nor more of the source than its length, and a flipped byte
 * crashed or hung the process in a test. A cache that V8 then rejects, such as
 * after a Node.js upgrade or under other V8 flags, only costs the compile.
 */

import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

export const BUNDLE_PATH = join(__dirname, '..', 'cli', 'audit-retention.cjs');

const ENTRY_PATH = join(__dirname, 'cli.js');

/**
 * Name of the bundle in stack traces. V8 keeps the name of the script that recorded a
 * code cache, so an absolute path would name the build machine's directory.
 */
export const BUNDLE_SCRIPT_NAME = 'dist/cli/audit-retention.cjs';

// The first line, written by scripts/bundle-cli.ts, is the SHA-256 of the rest of the bundle.
const BUILD_LINE = /^\/\/ audit-retention bundle ([0-9a-f]{64})\n/;

const SHA256_BYTES = 32;

/** Returns the first line of a bundle that names its build: `source` is the bundle's text after it. */
export function bundleBuildLine(source: string): string {
  return `// audit-retention bundle ${sha256(source).toString('hex')}\n`;
}

/** Returns the path of the code cache of the bundle whose text is `bundleText`, or null when it names no build. */
export function bundleCodeCachePath(bundleText: string): string | null {
  const buildId = BUILD_LINE.exec(bundleText)?.[1];
  return buildId === undefined ? null : `${BUNDLE_PATH}.${buildId.slice(0, 16)}.code-cache`;
}

/**
 * Returns a code cache file's bytes: the SHA-256 of the bundle's hash and the cache,
 * then the cache. The bundle's hash in the seal ties the cache to its build, since
 * V8 would take a cache of any bundle of the same length.
 */
export function sealCodeCache(codeCache: Buffer, bundleText: string): Buffer {
  return Buffer.concat([cacheSeal(bundleHashOf(bundleText), codeCache), codeCache]);
}

export interface CompiledBundle {
  script: Script;
  /** The bundle's text, its build line included. */
  bundleText: string;
  /** Where this build's code cache is kept. */
  codeCachePath: string;
  /** True when there was no intact code cache or V8 rejected it, so the bundle was compiled from source. */
  compiledFromSource: boolean;
  /** Evaluates the bundle, which runs the command named in process.argv. */
  run(): void;
}

/** Compiles the bundle with its code cache, or returns null when there is no bundle to trust. */
export function compileBundledCli(): CompiledBundle | null {
  const bundleBytes = readOptionalFile(BUNDLE_PATH);
  if (bundleBytes === undefined || !isNewerThanEntry(BUNDLE_PATH)) {
    return null;
  }

  const bundleText = bundleBytes.toString('utf8');
  const buildLine = BUILD_LINE.exec(bundleText);
  if (buildLine === null || sha256(bundleBytes.subarray(Buffer.byteLength(buildLine[0]))).toString('hex') !== buildLine[1]) {
    return null;
  }

  const codeCachePath = bundleCodeCachePath(bundleText)!;
  const codeCache = unsealCodeCache(readOptionalFile(codeCachePath), buildLine[1]!);

  // The wrapper starts on the bundle's first line, so stack traces keep the bundle's line numbers.
  const script = new Script(`(function (exports, require, module, __filename, __dirname, __importModule) {${bundleText}\n})`, {
    filename: BUNDLE_SCRIPT_NAME,
    cachedData: codeCache,
  });

  return {
    script,
    bundleText,
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
 * The bundle's import(): the HTTP layer, DuckDB and zlib stay outside the bundle,
 * named relative to this module (scripts/bundle-cli.ts lists them). A vm.Script has
 * no import() of its own that survives its code cache.
 */
function importModule(specifier: string): Promise<unknown> {
  return import(specifier);
}

/**
 * Returns the cache inside a sealed cache file, or undefined when the file is missing,
 * short, altered or sealed for another bundle.
 */
function unsealCodeCache(sealed: Buffer | undefined, bundleHash: string): Buffer | undefined {
  if (sealed === undefined || sealed.length <= SHA256_BYTES) {
    return undefined;
  }

  const codeCache = sealed.subarray(SHA256_BYTES);
  return cacheSeal(bundleHash, codeCache).equals(sealed.subarray(0, SHA256_BYTES)) ? codeCache : undefined;
}

function cacheSeal(bundleHash: string, codeCache: Buffer): Buffer {
  return createHash('sha256').update(bundleHash).update(codeCache).digest();
}

/** Returns the hash on the first line of a bundle's text; the bundle must have one. */
function bundleHashOf(bundleText: string): string {
  const buildId = BUILD_LINE.exec(bundleText)?.[1];
  if (buildId === undefined) {
    throw new Error(`the bundle has no build line; rebuild it with 'npm run build'`);
  }
  return buildId;
}

/**
 * Tells whether the bundle was written after dist/src/cli.js. tsc rewrites every
 * output, so a bundle older than the entry is left from an earlier build, such as
 * when only tsc ran or a later build step failed.
 */
function isNewerThanEntry(bundlePath: string): boolean {
  try {
    return statSync(bundlePath).mtimeMs >= statSync(ENTRY_PATH).mtimeMs;
  } catch {
    return false;
  }
}

function sha256(data: Buffer | string): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * Reads an optional file of the build. One that is not a regular file (a FIFO would
 * block the read) or cannot be read, for whatever reason, counts as missing.
 */
function readOptionalFile(path: string): Buffer | undefined {
  try {
    return statSync(path).isFile() ? readFileSync(path) : undefined;
  } catch {
    return undefined;
  }
}
