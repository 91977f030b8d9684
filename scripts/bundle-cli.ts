/**
 * Bundles the compiled command line into dist/cli/audit-retention.cjs and records
 * V8's code cache of it by running a few commands on a small generated log. The
 * installed command (src/bin.cts) loads both, and src/launcher.cts explains why.
 * `npm run build` runs this script after tsc.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build, type Plugin } from 'esbuild';

import { BUNDLE_PATH, bundleBuildLine, bundleCodeCachePath } from '../src/launcher.cjs';
import { DEFAULT_NOW, generateAuditLog } from './generate-audit-log.js';

const DIST_SOURCE_DIRECTORY = fileURLToPath(new URL('../src/', import.meta.url));
const RECORDER_PATH = fileURLToPath(new URL('./record-code-cache.js', import.meta.url));

// Lines of the warm-up log: enough for both segments to contain expired and kept records.
const WARM_UP_RECORDS = 2000;

// A dry run that scans, one that finds the scan index warm, a real run, and stats, as text and as JSON.
const WARM_UP_COMMANDS = [
  ['cleanup', '--dry-run', '--json'],
  ['cleanup', '--dry-run'],
  ['cleanup', '--json'],
  ['stats'],
  ['stats', '--json'],
];

/**
 * The compiled modules find their neighbours (worker files, the WebAssembly module,
 * the config's JSON Schemas, package.json) relative to import.meta.url. In the bundle
 * each use becomes that module's own URL under dist/src, computed from the bundle's
 * location when it runs, so an installed tree still works after it moves.
 */
const moduleUrlPlugin: Plugin = {
  name: 'module-url',
  setup(pluginBuild) {
    pluginBuild.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(DIST_SOURCE_DIRECTORY)) {
        return undefined;
      }

      // The launcher wraps the bundle in a function, where a shebang line would not parse.
      const source = readFileSync(args.path, 'utf8').replace(/^#!.*/, '');
      const moduleUrl = `__distSourceUrl(${JSON.stringify(relative(DIST_SOURCE_DIRECTORY, args.path))})`;
      return { contents: source.replaceAll('import.meta.url', moduleUrl), loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

/**
 * Modules that the bundle imports at run time instead of containing: the HTTP layer,
 * which only `serve` and `openapi` need and which would double the bundle, DuckDB,
 * a native addon, and zlib, which only gzip segments need. dist/src/launcher.cjs
 * performs these imports for the bundle. It sits beside dist/src/cli.js, which
 * imports the relative ones, so every specifier resolves there as written.
 */
const RUNTIME_IMPORTS = new Set(['./app.js', './serve.js', '@duckdb/node-api', 'node:zlib']);

const runtimeImportPlugin: Plugin = {
  name: 'runtime-import',
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^(\.\/(app|serve)\.js|@duckdb\/node-api)$/ }, (args) => {
      const importedByEntry = args.importer === join(DIST_SOURCE_DIRECTORY, 'cli.js');
      if (!RUNTIME_IMPORTS.has(args.path) || (args.path.startsWith('./') && !importedByEntry)) {
        return undefined;
      }
      return { path: args.path, external: true };
    });
  },
};

/** Turns the bundle's import() calls into calls of the launcher's import function. */
function routeRuntimeImports(bundleText: string): string {
  let routed = bundleText;
  for (const specifier of RUNTIME_IMPORTS) {
    const call = `import(${JSON.stringify(specifier)})`;
    if (!routed.includes(call)) {
      throw new Error(`The bundle contains no ${call}. Remove the specifier from RUNTIME_IMPORTS in scripts/bundle-cli.ts.`);
    }
    routed = routed.replaceAll(call, `__importModule(${JSON.stringify(specifier)})`);
  }

  const strayImport = /\bimport\(/.exec(routed);
  if (strayImport !== null) {
    const context = routed.slice(strayImport.index, strayImport.index + 80);
    throw new Error(`The bundle contains an import() that the launcher does not perform: ${context}. Add its specifier to RUNTIME_IMPORTS in scripts/bundle-cli.ts.`);
  }
  return routed;
}

// The directive comes first: esbuild puts its own after the banner, where it has no effect.
const BANNER = [
  '"use strict";',
  "const __distSourceUrl = (path) => require('node:url').pathToFileURL(require('node:path').join(__dirname, '../src', path)).href;",
].join('\n');

async function bundle(): Promise<string> {
  const result = await build({
    entryPoints: [join(DIST_SOURCE_DIRECTORY, 'cli.js')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // fs-ext is a native addon, so require() loads it from node_modules at run time.
    external: ['fs-ext'],
    plugins: [moduleUrlPlugin, runtimeImportPlugin],
    banner: { js: BANNER },
    legalComments: 'eof',
    write: false,
    logLevel: 'warning',
  });

  const [output] = result.outputFiles;
  if (output === undefined) {
    throw new Error(`esbuild returned no output for ${join(DIST_SOURCE_DIRECTORY, 'cli.js')}`);
  }

  // The first line carries the hash that the launcher checks, and names the code cache file.
  const bundleText = routeRuntimeImports(output.text);
  return `${bundleBuildLine(bundleText)}${bundleText}`;
}

/** Runs commands of every kind on a small generated log, each adding what it compiled to the code cache. */
async function recordCodeCache(): Promise<void> {
  const workDirectory = mkdtempSync(join(tmpdir(), 'audit-retention-code-cache-'));
  try {
    const logPath = join(workDirectory, 'logs', 'audit.jsonl');
    await generateAuditLog({ records: WARM_UP_RECORDS, segments: 2, disorder: 0.05, bad: 0.01, out: logPath });
    const configPath = join(workDirectory, 'audit-retention.yml');
    writeFileSync(configPath, `profile: build\nprofiles:\n  build:\n    audit:\n      enabled: true\n      path: ${JSON.stringify(logPath)}\n`);

    // The builder's own settings (NODE_OPTIONS, tokens, MXCP_AUDIT_ENABLED) must neither
    // fail the build nor shape the cache: V8 rejects a cache recorded under other flags.
    const environment = { PATH: process.env['PATH'] ?? '', AUDIT_RETENTION_NOW: DEFAULT_NOW };

    for (const command of WARM_UP_COMMANDS) {
      const child = spawnSync(process.execPath, [RECORDER_PATH, ...command, '--config', configPath], { env: environment, encoding: 'utf8' });
      if (child.status !== 0) {
        throw new Error(`Recording the code cache failed: 'audit-retention ${command.join(' ')}' exited with ${child.status}: ${child.stderr}`);
      }
    }
  } finally {
    rmSync(workDirectory, { recursive: true, force: true });
  }
}

const source = await bundle();

// A new build starts from an empty directory: caches of earlier builds would never be read again.
const cliDirectory = dirname(BUNDLE_PATH);
rmSync(cliDirectory, { recursive: true, force: true });
mkdirSync(cliDirectory, { recursive: true });
writeFileSync(BUNDLE_PATH, source);

await recordCodeCache();

const codeCachePath = bundleCodeCachePath(source);
if (codeCachePath === null || !existsSync(codeCachePath)) {
  throw new Error(`Recording the code cache failed: no cache was written for ${BUNDLE_PATH}`);
}
