/** POST /export through the real HTTP server, destination safety and atomicity, and `audit-retention export` as a child process. */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { watch } from 'node:fs';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { Value } from 'typebox/value';

import { buildApp } from '../src/app.js';
import { WORK_DIRECTORY_SUFFIX } from '../src/core/export/files.js';
import { ExportResponse } from '../src/schemas/export.js';
import { exportFixture, queryDuckDB, type ExportFixture } from './export-helpers.js';
import { PROJECT_ROOT, recordLine, runCli, temporaryDirectory, testSettings, writeText } from './helpers.js';

const LOG =
  recordLine({ timestamp: '2026-03-01T10:00:00Z', operation_name: 'get_user' }) +
  recordLine({ timestamp: '2026-03-02T10:00:00+05:30', operation_name: 'get_user' }) +
  'malformed\n' +
  recordLine({ timestamp: '2026-03-03T10:00:00Z', operation_name: 'list_orders', operation_status: 'error' });

async function startApp(t: TestContext, fixture: ExportFixture, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(testSettings(fixture.configPath, env));
  await app.ready();
  t.after(() => app.close());
  return app;
}

test('POST /export returns the documented shape', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const app = await startApp(t, fixture);

  const response = await request(app.server).post('/export').send({ format: 'duckdb', destination: 'audit-20261204.duckdb' }).expect(200);

  const size = (await stat(join(fixture.exportDirectory, 'audit-20261204.duckdb'))).size;
  assert.deepEqual(Object.keys(response.body), ['status', 'message', 'records_exported', 'path', 'bytes', 'details']);
  assert.equal(response.body.status, 'success');
  assert.equal(response.body.message, 'Exported 3 records');
  assert.equal(response.body.records_exported, 3);
  assert.equal(response.body.path, 'audit-20261204.duckdb');
  assert.equal(response.body.bytes, size);
  assert.equal(response.body.details.malformed_lines, 1);
  assert.deepEqual(response.body.details.malformed_by_kind, { not_json: 1 });
  assert.deepEqual([...Value.Errors(ExportResponse, response.body)], []);
});

test('POST /export applies body filters', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const app = await startApp(t, fixture);

  const response = await request(app.server)
    .post('/export')
    .send({ format: 'parquet', destination: 'errors.parquet', operation_name: 'list_orders', status: 'error', since: '2026-03-01T00:00:00Z', until: '2026-03-04T00:00:00Z' })
    .expect(200);

  assert.equal(response.body.records_exported, 1);
  assert.equal(response.body.details.records_filtered_out, 2);
  assert.equal(response.body.details.filters.since, '2026-03-01T00:00:00.000000Z');
  assert.equal(response.body.details.filters.operation_name, 'list_orders');
});

test('POST /export needs the admin token', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const app = await startApp(t, fixture, { AUDIT_RETENTION_ADMIN_TOKEN: 'admin-token-0123456789', AUDIT_RETENTION_READ_TOKEN: 'read-token-0123456789' });
  const body = { format: 'csv', destination: 'audit.csv' };

  await request(app.server).post('/export').send(body).expect(401);
  await request(app.server).post('/export').set('authorization', 'Bearer read-token-0123456789').send(body).expect(403);
  await request(app.server).post('/export').set('authorization', 'Bearer admin-token-0123456789').send(body).expect(200);
});

test('invalid export requests answer 400 naming the value', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const app = await startApp(t, fixture);
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['since', { since: 'yesterday' }, /since "yesterday"/],
    ['until', { until: '2026-13-01T00:00:00Z' }, /until "2026-13-01T00:00:00Z"/],
    ['window', { since: '2026-03-02T00:00:00Z', until: '2026-03-01T00:00:00Z' }, /is not before until/],
    ['format', { format: 'xlsx' }, /format/],
    ['unknown key', { color: 'red' }, /unknown parameter 'color'/],
    ['partition of csv', { format: 'csv', partition: 'day' }, /only parquet exports can be partitioned/],
    ['absolute', { destination: '/tmp/audit.duckdb' }, /absolute paths are not accepted/],
    ['parent', { destination: '../audit.duckdb' }, /'\.\.' is not accepted/],
    ['inner parent', { destination: 'a/../../audit.duckdb' }, /'\.\.' is not accepted/],
    ['trailing slash', { destination: 'dir/' }, /empty path segment/],
  ];

  for (const [name, change, message] of cases) {
    const response = await request(app.server)
      .post('/export')
      .send({ format: 'duckdb', destination: 'audit.duckdb', ...change })
      .expect(400);
    assert.equal(response.body.status, 'error', name);
    assert.equal(response.body.code, 'AR_INVALID_INPUT', name);
    assert.match(response.body.message, message, name);
  }
  assert.deepEqual(await readdir(fixture.exportDirectory).catch(() => []), []);
});

test('unknown profile answers 404', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const app = await startApp(t, fixture);

  const response = await request(app.server).post('/export').send({ format: 'csv', destination: 'a.csv', profile: 'nope' }).expect(404);

  assert.match(response.body.message, /Profile 'nope' not found/);
});

test('symbolic links out of the export directory answer 400', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const outside = await temporaryDirectory(t, 'audit-retention-outside-');
  await mkdir(fixture.exportDirectory, { recursive: true });
  await symlink(outside, join(fixture.exportDirectory, 'out-dir'));
  await symlink(join(outside, 'target.duckdb'), join(fixture.exportDirectory, 'out-file.duckdb'));
  await mkdir(join(fixture.exportDirectory, 'real'));
  await symlink(join(fixture.exportDirectory, 'real'), join(fixture.exportDirectory, 'in-dir'));
  const app = await startApp(t, fixture);

  for (const destination of ['out-dir/audit.duckdb', 'out-file.duckdb']) {
    const response = await request(app.server).post('/export').send({ format: 'duckdb', destination, overwrite: true }).expect(400);
    assert.match(response.body.message, /symbolic link/, destination);
    assert.match(response.body.message, new RegExp(outside.replaceAll('/', '\\/')), destination);
  }
  await request(app.server).post('/export').send({ format: 'duckdb', destination: 'in-dir/audit.duckdb' }).expect(200);

  assert.deepEqual(await readdir(outside), []);
  assert.deepEqual(await readdir(join(fixture.exportDirectory, 'real')), ['audit.duckdb']);
});

test('existing destination answers 409 unless overwrite', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const app = await startApp(t, fixture);
  await writeText(join(fixture.exportDirectory, 'audit.jsonl'), 'old content\n');

  const conflict = await request(app.server).post('/export').send({ format: 'jsonl', destination: 'audit.jsonl' }).expect(409);
  assert.equal(conflict.body.code, 'AR_DESTINATION_EXISTS');
  assert.match(conflict.body.message, /audit\.jsonl already exists.*overwrite=true/);
  assert.equal(await readFile(join(fixture.exportDirectory, 'audit.jsonl'), 'utf8'), 'old content\n');

  await request(app.server).post('/export').send({ format: 'jsonl', destination: 'audit.jsonl', overwrite: true }).expect(200);
  assert.equal((await readFile(join(fixture.exportDirectory, 'audit.jsonl'), 'utf8')).trimEnd().split('\n').length, 3);
});

test('file format onto a directory answers 400', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const app = await startApp(t, fixture);
  await mkdir(join(fixture.exportDirectory, 'taken'), { recursive: true });

  const response = await request(app.server).post('/export').send({ format: 'csv', destination: 'taken', overwrite: true }).expect(400);

  assert.match(response.body.message, /is a directory/);
  assert.deepEqual(await readdir(fixture.exportDirectory), ['taken']);
});

test('overwrite replaces a partitioned directory', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const app = await startApp(t, fixture);
  await writeText(join(fixture.exportDirectory, 'daily', 'date=2020-01-01', 'stale.parquet'), 'stale');
  const body = { format: 'parquet', destination: 'daily', partition: 'day' };

  await request(app.server).post('/export').send(body).expect(409);
  const response = await request(app.server).post('/export').send({ ...body, overwrite: true }).expect(200);

  assert.equal(response.body.details.files_written, 3);
  assert.deepEqual((await readdir(join(fixture.exportDirectory, 'daily'))).sort(), ['date=2026-03-01', 'date=2026-03-02', 'date=2026-03-03']);
  assert.deepEqual((await readdir(fixture.exportDirectory)).sort(), ['daily']);
});

test('export appears only under its final name', async (t) => {
  const fixture = await exportFixture(t, LOG.repeat(2000));
  await mkdir(fixture.exportDirectory, { recursive: true });
  const app = await startApp(t, fixture);
  const seen = new Set<string>();
  const watcher = watch(fixture.exportDirectory, (_event, name) => {
    if (name !== null) seen.add(name);
  });
  t.after(() => watcher.close());

  await request(app.server).post('/export').send({ format: 'duckdb', destination: 'audit.duckdb' }).expect(200);
  await new Promise((resolve) => setTimeout(resolve, 50));

  const temporary = [...seen].filter((name) => name !== 'audit.duckdb');
  assert.ok(temporary.length > 0, 'the export wrote a work directory first');
  for (const name of temporary) {
    assert.ok(name.startsWith('.audit.duckdb.'), name);
    assert.ok(name.endsWith(WORK_DIRECTORY_SUFFIX), name);
  }
  assert.deepEqual(await readdir(fixture.exportDirectory), ['audit.duckdb']);
});

test('failed export publishes nothing', async (t) => {
  const fixture = await exportFixture(t, LOG);
  await writeFile(join(fixture.directory, 'audit', 'logs.jsonl.1.gz'), Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02]));
  const app = await startApp(t, fixture);

  const response = await request(app.server).post('/export').send({ format: 'parquet', destination: 'audit.parquet' }).expect(500);

  assert.equal(response.body.code, 'AR_FILE_UNREADABLE');
  assert.match(response.body.message, /logs\.jsonl\.1\.gz/);
  assert.deepEqual(await readdir(fixture.exportDirectory), []);
});

test('work directories of dead exports are removed', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const host = hostname().replace(/[^A-Za-z0-9_]/g, '_');
  const dead = `.audit.csv.${host}-999999999-0123456789ab${WORK_DIRECTORY_SUFFIX}`;
  const alive = `.audit.csv.${host}-${process.pid}-0123456789ab${WORK_DIRECTORY_SUFFIX}`;
  await writeText(join(fixture.exportDirectory, dead, 'staging', 'records-0001.jsonl'), 'leftover\n');
  await mkdir(join(fixture.exportDirectory, alive));
  const app = await startApp(t, fixture);

  const response = await request(app.server).post('/export').send({ format: 'csv', destination: 'audit.csv' }).expect(200);

  assert.deepEqual(response.body.details.leftover_work_directories_removed, [dead]);
  assert.deepEqual((await readdir(fixture.exportDirectory)).sort(), [alive, 'audit.csv'].sort());
});

test('cli export prints a summary', async (t) => {
  const fixture = await exportFixture(t, LOG);

  const result = await runCli(['export', '--format', 'parquet', '--out', 'cli/audit.parquet', '--operation-name', 'get_user'], { cwd: fixture.directory });

  const path = join(fixture.exportDirectory, 'cli', 'audit.parquet');
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    result.stdout,
    [
      `Exported 2 records to ${path} (${(await stat(path)).size} bytes).`,
      'Filters left out 1 of 3 records.',
      'Left out 1 malformed lines (not_json 1).',
      '',
    ].join('\n'),
  );
  const rows = await queryDuckDB(['SELECT count(*) AS count FROM read_parquet($path)'], { parameters: { path } });
  assert.equal(rows[0]!['count'], 2n);
});

test('cli export --json equals the HTTP answer', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const exportDirectory = join(fixture.directory, 'elsewhere');

  const result = await runCli(['export', '--format', 'jsonl', '--out', 'audit.jsonl.gz', '--since', '2026-03-02T00:00:00Z', '--json'], {
    cwd: fixture.directory,
    env: { AUDIT_RETENTION_EXPORT_DIR: exportDirectory },
  });

  const body = JSON.parse(result.stdout);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(Object.keys(body), ['status', 'message', 'records_exported', 'path', 'bytes', 'details']);
  assert.equal(body.records_exported, 2);
  assert.equal(body.path, 'audit.jsonl.gz');
  assert.equal(body.details.compression, 'gzip');
  assert.equal(body.bytes, (await stat(join(exportDirectory, 'audit.jsonl.gz'))).size);
});

test('cli export errors exit 1', async (t) => {
  const fixture = await exportFixture(t, LOG);
  await writeText(join(fixture.exportDirectory, 'audit.csv'), 'old\n');
  const cases: [string[], RegExp][] = [
    [['export', '--format', 'csv', '--out', 'audit.csv'], /audit\.csv already exists/],
    [['export', '--format', 'xlsx', '--out', 'a.xlsx'], /invalid --format "xlsx"/],
    [['export', '--format', 'csv'], /Missing --out/],
    [['export', '--format', 'csv', '--out', 'b.csv', '--until', 'soon'], /Invalid until "soon"/],
  ];

  for (const [args, message] of cases) {
    const result = await runCli(args, { cwd: fixture.directory });
    assert.equal(result.code, 1, args.join(' '));
    assert.match(result.stderr, message, args.join(' '));
  }
});

test('cleanup does not load DuckDB', async (t) => {
  const fixture = await exportFixture(t, LOG);
  const script = [
    `const { buildApp } = await import(${JSON.stringify(join(PROJECT_ROOT, 'dist', 'src', 'app.js'))});`,
    `const { testSettings } = await import(${JSON.stringify(join(PROJECT_ROOT, 'dist', 'test', 'helpers.js'))});`,
    `const app = await buildApp(testSettings(${JSON.stringify(fixture.configPath)}));`,
    `await app.inject({ method: 'POST', url: '/cleanup?dryRun=true' });`,
    `await app.close();`,
    `process.stdout.write(JSON.stringify(process.report.getReport().sharedObjects.filter((path) => /duckdb/i.test(path))));`,
  ].join('\n');

  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: PROJECT_ROOT });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(stdout));
  });

  assert.deepEqual(JSON.parse(output), []);
});
