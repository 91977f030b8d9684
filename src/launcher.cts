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
const BUNDLE_SCRIPT_NAME = 'dist/cli/audit-retention.cjs';

// The first line, written by scripts/bundle-cli.ts, is the SHA-256 of the rest of the bundle.
const BUILD_LINE = /^\/\/ audit-retention bundle ([0-9a-f]{64})\n/;

const SHA256_BYTES = 32;

/** Returns the first line of a bundle that names its build: `source` is the bundle's text after it. */
export function bundleBuildLine(source: string): string {
  return `// audit-retention bundle ${sha256(source).toString('hex')}\n`;
}

/** Returns the path of the code cache of the bundle whose text is `bundleText`, or null when it names no build. */
export function bundleCodeCachePath(bundleText: string): string | null {
  const bundleHash = BUILD_LINE.exec(bundleText)?.[1];
  return bundleHash === undefined ? null : codeCachePathFor(bundleHash);
}

/**
 * Returns a code cache file's bytes: the SHA-256 of the bundle's hash and the cache,
 * then the cache. The bundle's hash in the seal ties the cache to its build, since
 * V8 would take a cache of any bundle of the same length.
 */
export function sealCodeCache(codeCache: Buffer, bundleHash: string): Buffer {
  return Buffer.concat([cacheSeal(bundleHash, codeCache), codeCache]);
}

export interface CompiledBundle {
  script: Script;
  /** The SHA-256 of the bundle, in hex, as its first line gives it. */
  bundleHash: string;
  /** Where this build's code cache is kept. */
  codeCachePath: string;
  /** True when there was no intact code cache or V8 rejected it, so the bundle was compiled from source. */
  compiledFromSource: boolean;
  /** Evaluates the bundle, which runs the command named in process.argv. */
  run(): void;
}

/** Compiles the bundle with its code cache, or returns null when there is no bundle to trust. */
export function compileBundledCli(): CompiledBundle | null {
  const bundle = readOptionalFile(BUNDLE_PATH);
  if (bundle === undefined || !isNewerThanEntry(bundle.mtimeMs)) {
    return null;
  }

  const bundleText = bundle.bytes.toString('utf8');
  const buildLine = BUILD_LINE.exec(bundleText);
  const bundleHash = buildLine?.[1];
  if (buildLine === null || bundleHash === undefined || sha256(bundle.bytes.subarray(buildLine[0].length)).toString('hex') !== bundleHash) {
    return null;
  }

  const codeCachePath = codeCachePathFor(bundleHash);
  const codeCache = unsealCodeCache(readOptionalFile(codeCachePath)?.bytes, bundleHash);

  // The wrapper starts on the bundle's first line, so stack traces keep the bundle's line numbers.
  const script = new Script(`(function (exports, require, module, __filename, __dirname, __importModule) {${bundleText}\n})`, {
    filename: BUNDLE_SCRIPT_NAME,
    cachedData: codeCache,
  });

  return {
    script,
    bundleHash,
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

/** Returns the path of a bundle's code cache; 16 hex digits of its hash tell builds apart in the name. */
function codeCachePathFor(bundleHash: string): string {
  return `${BUNDLE_PATH}.${bundleHash.slice(0, 16)}.code-cache`;
}

/**
 * Tells whether the bundle was written after dist/src/cli.js. tsc rewrites every
 * output, so a bundle older than the entry is left from an earlier build, such as
 * when only tsc ran or a later build step failed.
 */
function isNewerThanEntry(bundleMtimeMs: number): boolean {
  try {
    return bundleMtimeMs >= statSync(ENTRY_PATH).mtimeMs;
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
function readOptionalFile(path: string): { bytes: Buffer; mtimeMs: number } | undefined {
  try {
    const info = statSync(path);
    return info.isFile() ? { bytes: readFileSync(path), mtimeMs: info.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
}
