/** The audit-retention command as a child process. */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';

import { CLI_PATH, daysAgo, recordLine, runCli, temporaryDirectory, writeConfig, writeText } from './helpers.js';

const SCHEMAS_FILE = [
  '{"schema_name": "mxcp.endpoints", "version": 1, "retention_days": 90}',
  '{"schema_name": "mxcp.endpoints", "version": 2, "retention_days": 90}',
  '{"schema_name": "debug.logs", "version": 1, "retention_days": 30}',
  '',
].join('\n');

async function cliFixture(t: Parameters<typeof temporaryDirectory>[0]): Promise<{ directory: string; logPath: string }> {
  const directory = await temporaryDirectory(t);
  await writeConfig(directory);
  const logPath = join(directory, 'audit', 'logs.jsonl');
  await writeText(
    logPath,
    recordLine({ timestamp: daysAgo(200), schema_version: 1 }) +
      recordLine({ timestamp: daysAgo(150), schema_version: 2 }) +
      recordLine({ timestamp: daysAgo(140), schema_version: 2 }) +
      recordLine({ timestamp: daysAgo(40), schema_name: 'debug.logs' }) +
      recordLine({ timestamp: daysAgo(2), schema_version: 2 }),
  );
  await writeText(join(directory, 'audit', 'logs_schemas.jsonl'), SCHEMAS_FILE);
  return { directory, logPath };
}

test('dry run text matches the contract', async (t) => {
  const { directory } = await cliFixture(t);

  const result = await runCli(['cleanup', '--dry-run'], { cwd: directory });

  assert.equal(result.code, 0);
  assert.equal(
    result.stdout,
    [
      'DRY RUN: Analyzing what would be deleted...',
      '',
      '  debug.logs (retention: 30 days): 1 records',
      '  mxcp.endpoints (retention: 90 days): 3 records',
      '',
      'Total records that would be deleted: 4',
      '',
      'Run without --dry-run to actually delete these records.',
      '',
    ].join('\n'),
  );
  assert.equal(result.stderr, '');
});

test('real run text matches the contract', async (t) => {
  const { directory, logPath } = await cliFixture(t);

  const result = await runCli(['cleanup'], { cwd: directory });

  assert.equal(result.code, 0);
  assert.equal(
    result.stdout,
    [
      'Applying retention policies...',
      '',
      'Deleted records by schema:',
      '  debug.logs:1: 1 records',
      '  mxcp.endpoints:1: 1 records',
      '  mxcp.endpoints:2: 2 records',
      '',
      'Total records deleted: 4',
      '',
    ].join('\n'),
  );
  assert.equal((await readFile(logPath, 'utf8')).split('\n').length, 2);
});

test('json output equals the HTTP shape', async (t) => {
  const { directory } = await cliFixture(t);

  const result = await runCli(['cleanup', '--dry-run', '--json'], { cwd: directory });

  const body = JSON.parse(result.stdout);
  assert.equal(result.code, 0);
  assert.equal(body.status, 'dry_run');
  assert.equal(body.message, 'Would delete 4 records');
  assert.deepEqual(body.deleted_per_schema, { 'debug.logs:1': 1, 'mxcp.endpoints:1': 1, 'mxcp.endpoints:2': 2 });
});

test('missing log directory exits 1', async (t) => {
  const directory = await temporaryDirectory(t);
  await writeConfig(directory);

  const result = await runCli(['cleanup'], { cwd: directory });

  assert.equal(result.code, 1);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^Error: Log directory .*audit of profile 'default' does not exist/);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
});

test('unknown profile exits 1', async (t) => {
  const { directory } = await cliFixture(t);

  const result = await runCli(['cleanup', '--profile', 'nope'], { cwd: directory });

  assert.equal(result.code, 1);
  assert.match(result.stderr, /Profile 'nope' not found/);
});

test('unchanged mxcp-site.yml is found', async (t) => {
  const directory = await temporaryDirectory(t);
  await writeFile(
    join(directory, 'mxcp-site.yml'),
    [
      'mxcp: 1',
      'project: demo',
      'profile: default',
      'profiles:',
      '  default:',
      '    duckdb:',
      '      path: db-default.duckdb',
      '    audit:',
      '      enabled: true',
      '      path: audit/logs.jsonl',
      '    drift:',
      '      path: drift-default.json',
      '',
    ].join('\n'),
  );
  await writeText(join(directory, 'audit', 'logs.jsonl'), recordLine({ timestamp: daysAgo(100) }));

  const result = await runCli(['cleanup', '--dry-run', '--json'], { cwd: directory });

  assert.equal(result.code, 0);
  assert.deepEqual(JSON.parse(result.stdout).deleted_per_schema, { 'mxcp.endpoints:1': 1 });
});

test('invalid retention names the schema', async (t) => {
  const directory = await temporaryDirectory(t);
  await writeConfig(directory, 'retention:\n  auth.events: 0');

  const result = await runCli(['cleanup', '--dry-run'], { cwd: directory });

  assert.equal(result.code, 1);
  assert.match(result.stderr, /auth\.events/);
  assert.match(result.stderr, /0/);
});

test('time zone does not change results', async (t) => {
  const { directory } = await cliFixture(t);

  const results = [];
  for (const zone of ['UTC', 'Pacific/Chatham', 'America/St_Johns', 'Asia/Kolkata']) {
    results.push(await runCli(['cleanup', '--dry-run', '--json'], { cwd: directory, env: { TZ: zone } }));
  }

  const deleted = results.map((result) => JSON.parse(result.stdout).deleted_per_schema);
  for (const other of deleted.slice(1)) {
    assert.deepEqual(other, deleted[0]);
  }
});

test('unknown option prints usage', async () => {
  const result = await runCli(['cleanup', '--bogus']);

  assert.equal(result.code, 1);
  assert.match(result.stderr, /Unknown option '--bogus'/);
  assert.match(result.stderr, /Usage: audit-retention/);
});

test('zero deletions print MXCP text', async (t) => {
  const directory = await temporaryDirectory(t);
  await writeConfig(directory);
  await writeText(join(directory, 'audit', 'logs.jsonl'), recordLine({ timestamp: daysAgo(1) }));

  const dryRun = await runCli(['cleanup', '--dry-run'], { cwd: directory });
  const realRun = await runCli(['cleanup'], { cwd: directory });

  assert.equal(dryRun.stdout, 'DRY RUN: Analyzing what would be deleted...\n\nNo records would be deleted.\n');
  assert.equal(realRun.stdout, 'Applying retention policies...\nNo records were deleted.\n');
});

test('json errors go to stdout too', async (t) => {
  const { directory } = await cliFixture(t);

  const result = await runCli(['cleanup', '--json', '--profile', 'nope'], { cwd: directory });

  assert.equal(result.code, 1);
  assert.equal(JSON.parse(result.stdout).status, 'error');
  assert.match(JSON.parse(result.stdout).message, /Profile 'nope' not found/);
});

test('bad option values print usage', async () => {
  for (const args of [['cleanup', '--dry-run=false'], ['cleanup', '--profile'], ['cleanup', '--lock-timeout-ms', 'soon']]) {
    const result = await runCli(args);
    assert.equal(result.code, 1, args.join(' '));
    assert.match(result.stderr, /^Error: /, args.join(' '));
    assert.doesNotMatch(result.stderr, /\n\s+at /, args.join(' '));
  }
});

test('early pipe close exits quietly', async () => {
  // The reader is gone before the first write, as when `audit-retention openapi | head -1`
  // has read its line while the command still writes.
  const child = spawn(process.execPath, [CLI_PATH, 'openapi'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.destroy();

  const [exitCode] = (await once(child, 'close')) as [number | null];

  assert.equal(stderr, '');
  assert.equal(exitCode, 0);
});

test('failed stdout write exits 1', async () => {
  // /dev/full fails every write with ENOSPC, as a full disk behind a redirect does.
  const devFull = openSync('/dev/full', 'w');
  const child = spawn(process.execPath, [CLI_PATH, '--version'], { stdio: ['ignore', devFull, 'pipe'] });
  closeSync(devFull);
  assert.ok(child.stderr !== null);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

  const [exitCode] = (await once(child, 'close')) as [number | null];

  assert.equal(exitCode, 1);
  assert.equal(stderr, 'Error: could not write the output to stdout: ENOSPC: no space left on device, write\n');
});
