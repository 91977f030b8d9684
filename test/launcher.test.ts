/**
 * The installed command and its bundle: the bundle runs with the code cache the build
 * recorded, finds its files wherever the installed tree is, and gives the same
 * results as dist/src/cli.js, which also runs alone when the bundle is missing.
 */

import assert from 'node:assert/strict';
import { cp, mkdir, readFile, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { BUNDLE_PATH, bundleBuildLine, bundleCodeCachePath, sealCodeCache } from '../src/launcher.cjs';
import { PROJECT_ROOT, daysAgo, recordLine, runProcess, temporaryDirectory, writeConfig, writeText } from './helpers.js';

/** Copies the files of an installation (dist/src, dist/cli, package.json, node_modules as a link) to a new directory. */
async function installedCopy(t: TestContext, options: { withBundle: boolean }): Promise<string> {
  const root = await temporaryDirectory(t, 'audit-retention-installed-');
  await mkdir(join(root, 'dist'));
  await cp(join(PROJECT_ROOT, 'dist', 'src'), join(root, 'dist', 'src'), { recursive: true });
  if (options.withBundle) {
    await cp(join(PROJECT_ROOT, 'dist', 'cli'), join(root, 'dist', 'cli'), { recursive: true });
  }
  await cp(join(PROJECT_ROOT, 'package.json'), join(root, 'package.json'));
  await symlink(join(PROJECT_ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
  return root;
}

// Expired under the default and under debug.logs' 30 days, one malformed line, one kept record.
const LOG_TEXT =
  recordLine({ timestamp: daysAgo(200) }) + 'not json\n' + recordLine({ timestamp: daysAgo(40), schema_name: 'debug.logs' }) + recordLine({ timestamp: daysAgo(2) });

/** The log of LOG_TEXT, its schemas file and a config; returns the config's directory. */
async function logFixture(t: TestContext): Promise<string> {
  const directory = await temporaryDirectory(t);
  await writeConfig(directory);
  await writeText(join(directory, 'audit', 'logs.jsonl'), LOG_TEXT);
  await writeText(join(directory, 'audit', 'logs_schemas.jsonl'), '{"schema_name": "debug.logs", "version": 1, "retention_days": 30}\n');
  return directory;
}

/** Durations in a JSON report: `duration_ms` and every member of `timings_ms`, set to 0 so that two runs compare. */
function withoutDurations(value: unknown, withinTimings = false): unknown {
  if (typeof value === 'number') {
    return withinTimings ? 0 : value;
  }
  if (typeof value !== 'object' || value === null) {
    return value;
  }
  if (Array.isArray(value)) {
    return value.map((item) => withoutDurations(item, withinTimings));
  }
  return Object.fromEntries(
    Object.entries(value).map(([key, member]) => [key, withoutDurations(member, withinTimings || key === 'timings_ms' || key === 'duration_ms')]),
  );
}

/** Returns how the launcher of an installed tree starts: 'source' for dist/src/cli.js, else whether V8 took the code cache. */
async function launchMode(root: string): Promise<'source' | 'bundle with cache' | 'bundle compiled'> {
  const launcherPath = join(root, 'dist', 'src', 'launcher.cjs');
  const probe = `const bundle = require(${JSON.stringify(launcherPath)}).compileBundledCli(); process.stdout.write(bundle === null ? 'source' : bundle.compiledFromSource ? 'bundle compiled' : 'bundle with cache');`;
  const result = await runProcess(process.execPath, ['-e', probe]);
  assert.equal(result.stderr, '');
  return result.stdout as 'source' | 'bundle with cache' | 'bundle compiled';
}

/** Path of the code cache file in an installed tree. */
async function codeCacheFile(root: string): Promise<string> {
  const cliDirectory = join(root, 'dist', 'cli');
  const [cacheName] = (await readdir(cliDirectory)).filter((name) => name.endsWith('.code-cache'));
  assert.ok(cacheName !== undefined, 'the build records a code cache');
  return join(cliDirectory, cacheName);
}

/** Runs the command of an installed tree; JSON output comes back parsed, without durations. */
async function runInstalled(root: string, args: string[], cwd: string): Promise<{ code: number | null; stdout: unknown; stderr: string }> {
  const result = await runProcess(process.execPath, [join(root, 'dist', 'src', 'bin.cjs'), ...args], { cwd });
  const stdout = result.stdout.replaceAll(cwd, 'DIR');
  return { ...result, stdout: args.includes('--json') ? withoutDurations(JSON.parse(stdout)) : stdout };
}

test('bundle has own cache, no build paths', async () => {
  const bundleText = await readFile(BUNDLE_PATH, 'utf8');
  const codeCachePath = bundleCodeCachePath(bundleText);

  assert.notEqual(codeCachePath, null, 'the bundle names its build on its first line');
  assert.deepEqual(
    (await readdir(join(PROJECT_ROOT, 'dist', 'cli'))).filter((name) => name.endsWith('.code-cache')),
    [codeCachePath?.slice(codeCachePath.lastIndexOf('/') + 1)],
  );
  assert.equal(bundleText.includes(join(PROJECT_ROOT, 'dist')), false, 'the bundle must find dist/src relative to itself');
});

test('bundle code runs in strict mode', async () => {
  const bundleText = await readFile(BUNDLE_PATH, 'utf8');

  // The directive counts only as the first statement of the function that the launcher wraps around the bundle.
  const [buildLine, firstStatement] = bundleText.split('\n', 2);
  assert.match(buildLine ?? '', /^\/\/ audit-retention bundle [0-9a-f]{64}$/);
  assert.equal(firstStatement, '"use strict";');
});

test('V8 accepts the recorded cache', async () => {
  assert.equal(await launchMode(PROJECT_ROOT), 'bundle with cache');
});

test('cache path differs per build', () => {
  const first = bundleBuildLine('first build\n') + 'first build\n';
  const second = bundleBuildLine('other build\n') + 'other build\n';

  assert.notEqual(bundleCodeCachePath(first), bundleCodeCachePath(second));
  assert.equal(bundleCodeCachePath('"use strict";\n'), null);
});

test('moved bundle matches unbundled results', async (t) => {
  const bundled = await installedCopy(t, { withBundle: true });
  const unbundled = await installedCopy(t, { withBundle: false });

  // Each command uses files found beside the modules: the JSON Schemas of the config,
  // the WebAssembly walk, the scan helper, package.json, the HTTP layer and DuckDB.
  const commands = [
    ['--version'],
    ['cleanup', '--dry-run', '--json'],
    ['stats', '--json'],
    ['export', '--format', 'jsonl', '--out', 'all.jsonl', '--json'],
    ['cleanup'],
    ['openapi'],
  ];
  const bundledDirectory = await logFixture(t);
  const unbundledDirectory = await logFixture(t);
  for (const command of commands) {
    const fromBundle = await runInstalled(bundled, command, bundledDirectory);
    const fromSource = await runInstalled(unbundled, command, unbundledDirectory);

    assert.equal(fromBundle.code, 0, `${command.join(' ')}: ${fromBundle.stderr}`);
    assert.deepEqual(fromBundle, fromSource, command.join(' '));
  }
  assert.equal(await readFile(join(bundledDirectory, 'audit', 'logs.jsonl'), 'utf8'), await readFile(join(unbundledDirectory, 'audit', 'logs.jsonl'), 'utf8'));
});

test('bundle runs without its cache', async (t) => {
  const root = await installedCopy(t, { withBundle: true });
  await rm(await codeCacheFile(root));
  const directory = await logFixture(t);

  const result = await runInstalled(root, ['cleanup', '--dry-run'], directory);

  assert.equal(await launchMode(root), 'bundle compiled');
  assert.equal(result.code, 0, result.stderr);
  assert.match(String(result.stdout), /Total records that would be deleted: 2\n/);
  assert.equal(result.stderr, '');
});

test('altered code cache is not used', async (t) => {
  const root = await installedCopy(t, { withBundle: true });
  const cachePath = await codeCacheFile(root);
  const original = await readFile(cachePath);
  const directory = await logFixture(t);

  // A single flipped byte in the middle of V8's data crashed or hung the process before the cache was sealed.
  const flipped = Buffer.from(original);
  const middle = Math.floor(flipped.length / 2);
  flipped[middle] = flipped[middle]! ^ 0xff;
  const cases: [string, Buffer][] = [
    ['one byte flipped', flipped],
    ['another file of the same length', Buffer.alloc(original.length, 0x5a)],
    ['truncated', original.subarray(0, original.length - 1000)],
    // A cache of another build of the same bundle length, intact and correctly sealed for that build.
    ['sealed for another bundle', sealCodeCache(original.subarray(32), 'f'.repeat(64))],
  ];
  for (const [name, content] of cases) {
    await writeFile(cachePath, content);

    const result = await runInstalled(root, ['cleanup', '--dry-run'], directory);

    assert.equal(await launchMode(root), 'bundle compiled', name);
    assert.equal(result.code, 0, `${name}: ${result.stderr}`);
    assert.match(String(result.stdout), /Total records that would be deleted: 2\n/, name);
  }
});

// A launcher that reads the FIFO would wait for good, so the test has a time limit.
test('unreadable code cache is skipped', { timeout: 60_000 }, async (t) => {
  const root = await installedCopy(t, { withBundle: true });
  const cachePath = await codeCacheFile(root);
  const directory = await logFixture(t);

  // A FIFO without a writer would block a plain read for good.
  const replacements: [string, () => Promise<unknown>][] = [
    ['a directory', () => mkdir(cachePath)],
    ['a FIFO', () => runProcess('mkfifo', [cachePath])],
  ];
  for (const [name, replace] of replacements) {
    await rm(cachePath, { recursive: true, force: true });
    await replace();

    const result = await runInstalled(root, ['cleanup', '--dry-run'], directory);

    assert.equal(result.code, 0, `${name}: ${result.stderr}`);
    assert.match(String(result.stdout), /Total records that would be deleted: 2\n/, name);
    assert.equal(result.stderr, '', name);
  }
});

test('edited or empty bundle is not run', async (t) => {
  const root = await installedCopy(t, { withBundle: true });
  const original = await readFile(join(root, 'dist', 'cli', 'audit-retention.cjs'), 'utf8');
  const directory = await logFixture(t);

  // The same length as the original, so V8 alone would take the old code cache for it.
  const edited = original.replace('DRY RUN: Analyzing', 'DRY RUN: ANALYZING');
  assert.equal(edited.length, original.length);
  const variants: [string, string][] = [
    ['edited', edited],
    ['empty', ''],
  ];
  for (const [name, content] of variants) {
    await writeFile(join(root, 'dist', 'cli', 'audit-retention.cjs'), content);

    const result = await runInstalled(root, ['cleanup', '--dry-run'], directory);

    assert.equal(await launchMode(root), 'source', name);
    assert.equal(result.code, 0, `${name}: ${result.stderr}`);
    assert.match(String(result.stdout), /^DRY RUN: Analyzing what would be deleted\.\.\.\n/, name);
  }
});

test('bundle older than dist/src is not run', async (t) => {
  const root = await installedCopy(t, { withBundle: true });
  const bundlePath = join(root, 'dist', 'cli', 'audit-retention.cjs');

  // As after `tsc` alone, or a build whose later steps failed: the modules are newer than the bundle.
  const anHourAgo = new Date(Date.now() - 3_600_000);
  await utimes(bundlePath, anHourAgo, anHourAgo);

  assert.equal(await launchMode(root), 'source');
});
