/** POST /records through the real HTTP server, with supertest, real files and a real full disk where root may mount one. */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, open, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';

import { buildApp } from '../src/app.js';
import { ErrorResponse } from '../src/schemas/common.js';
import { RecordsResponse } from '../src/schemas/records.js';
import { NOW, daysAgo, recordLine, smallFileSystem, temporaryDirectory, testSettings, writeConfig, writeText } from './helpers.js';

async function startApp(t: TestContext, configPath: string, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(testSettings(configPath, env));
  await app.ready();
  t.after(() => app.close());
  return app;
}

/** Writes a config with the profile `default` (log `audit/logs.jsonl`, `extraAudit` added) and a disabled profile `staging`. */
async function recordsFixture(t: TestContext, extraAudit = ''): Promise<{ configPath: string; logPath: string }> {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory, extraAudit, '');
  await writeFile(configPath, `${await readFile(configPath, 'utf8')}  staging:\n    audit:\n      enabled: false\n      path: staging/logs.jsonl\n`);
  await mkdir(join(directory, 'audit'));
  return { configPath, logPath: join(directory, 'audit', 'logs.jsonl') };
}

function assertMatches(schema: TSchema, body: unknown): void {
  const problems = [...Value.Errors(schema, body)].map((error) => `${error.instancePath} ${error.message}`);
  assert.deepEqual(problems, []);
}

test('one JSON record answers 201', async (t) => {
  const { configPath, logPath } = await recordsFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server)
    .post('/records')
    .set('content-type', 'application/json')
    .send('{"schema_name": "auth.events", "timestamp": "2026-12-04T11:00:00Z"}')
    .expect(201);

  assert.deepEqual(response.body, { status: 'success', message: 'Appended 1 records', records_appended: 1, path: logPath });
  assertMatches(RecordsResponse, response.body);
  assert.match(await readFile(logPath, 'utf8'), /^\{"record_id": "[0-9a-f-]{36}", "schema_name": "auth.events", "timestamp": "2026-12-04T11:00:00Z"\}\n$/);
});

test('NDJSON batch answers 201 with its count', async (t) => {
  const { configPath, logPath } = await recordsFixture(t);
  const app = await startApp(t, configPath);
  const body = recordLine({ timestamp: daysAgo(1) }) + '\r\n' + recordLine({ timestamp: daysAgo(2) }).replace('\n', '\r\n') + '{"operation_name": "x"}';

  const response = await request(app.server).post('/records?profile=default').set('content-type', 'application/x-ndjson').send(body).expect(201);

  assert.equal(response.body.records_appended, 3);
  assert.equal(response.body.message, 'Appended 3 records');
  const lines = (await readFile(logPath, 'utf8')).split('\n');
  assert.equal(lines.length, 4);
  assert.equal(`${lines[0]}\n`, recordLine({ timestamp: daysAgo(1), record_id: JSON.parse(lines[0]!).record_id }));
  assert.match(lines[2]!, new RegExp(`^\\{"record_id": "[0-9a-f-]{36}", "timestamp": "${NOW}", "operation_name": "x"\\}$`));
});

test('invalid line answers 400 with its number', async (t) => {
  const { configPath, logPath } = await recordsFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server)
    .post('/records')
    .set('content-type', 'application/x-ndjson')
    .send('{"a": 1}\n{"a": 2}\nnot json\n')
    .expect(400);

  assertMatches(ErrorResponse, response.body);
  assert.equal(response.body.code, 'AR_INVALID_INPUT');
  assert.match(response.body.message, /^Line 3 is not valid JSON/);
  assert.ok(!(await readdir(join(logPath, '..'))).includes('logs.jsonl'));
});

test('JSON array answers 400', async (t) => {
  const { configPath } = await recordsFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/records').set('content-type', 'application/json').send('[{"a": 1}]').expect(400);

  assert.match(response.body.message, /application\/x-ndjson/);
});

test('unknown profile answers 404', async (t) => {
  const { configPath } = await recordsFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/records?profile=nope').set('content-type', 'application/json').send('{}').expect(404);

  assert.equal(response.body.code, 'AR_PROFILE_NOT_FOUND');
  assert.match(response.body.message, /Profile 'nope' not found/);
});

test('disabled profile answers 400', async (t) => {
  const { configPath } = await recordsFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/records?profile=staging').set('content-type', 'application/json').send('{}').expect(400);

  assert.equal(response.body.code, 'AR_AUDIT_DISABLED');
  assert.match(response.body.message, /not enabled for profile 'staging'/);
});

test('body over max_batch_bytes answers 413', async (t) => {
  const { configPath, logPath } = await recordsFixture(t, 'max_batch_bytes: 2048');
  const app = await startApp(t, configPath);
  const body = recordLine({ timestamp: daysAgo(1), padding: 'x'.repeat(3000) });

  const response = await request(app.server).post('/records').set('content-type', 'application/x-ndjson').send(body).expect(413);

  assert.equal(response.body.code, 'AR_PAYLOAD_TOO_LARGE');
  assert.match(response.body.message, /exceeds max_batch_bytes \(2048\) of profile 'default'/);
  assert.ok(!(await readdir(join(logPath, '..'))).includes('logs.jsonl'));
});

test('other content type answers 415', async (t) => {
  const { configPath } = await recordsFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/records').set('content-type', 'text/plain').send('{}').expect(415);

  assert.equal(response.body.code, 'AR_UNSUPPORTED_MEDIA_TYPE');
});

test('missing token answers 401', async (t) => {
  const { configPath } = await recordsFixture(t);
  const token = 'a'.repeat(32);
  const app = await startApp(t, configPath, { AUDIT_RETENTION_ADMIN_TOKEN: token });

  await request(app.server).post('/records').set('content-type', 'application/json').send('{}').expect(401);
  await request(app.server).post('/records').set('authorization', `Bearer ${token}`).set('content-type', 'application/json').send('{}').expect(201);
});

test('held lock answers 423', async (t) => {
  const { configPath, logPath } = await recordsFixture(t, 'lock_timeout_ms: 200');
  const app = await startApp(t, configPath);
  await writeFile(`${logPath}.lock`, '');
  const holder = spawn('flock', [`${logPath}.lock`, '-c', 'echo ready; sleep 1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    holder.kill('SIGKILL');
  });
  await once(holder.stdout!, 'data');

  const response = await request(app.server).post('/records').set('content-type', 'application/json').send('{}').expect(423);

  assert.equal(response.body.code, 'AR_LOG_LOCKED');
  assert.match(response.body.message, /^Log file locked: /);
  assert.equal(response.headers['retry-after'], '1');
});


/** Fills the file system of `path` with one file and returns its size in bytes. */
async function fillDisk(path: string): Promise<number> {
  const handle = await open(path, 'w');
  const chunk = Buffer.alloc(4096, 0x78);
  let size = 0;
  try {
    for (;;) {
      const { bytesWritten } = await handle.write(chunk);
      size += bytesWritten;
      if (bytesWritten < chunk.length) break;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await handle.close();
  }
  return size;
}

test('full disk answers 507 without a partial line', async (t) => {
  const fileSystem = await smallFileSystem(t, 256);
  if (fileSystem === null) {
    t.skip('mounting a tmpfs needs root; run the suite as root to test a real full disk');
    return;
  }
  const { directory, logDirectory } = fileSystem;
  const configPath = await writeConfig(directory);
  const logPath = join(logDirectory, 'logs.jsonl');
  const existing = recordLine({ timestamp: daysAgo(1) });
  await writeText(logPath, existing);
  await writeText(`${logPath}.lock`, '');
  const app = await startApp(t, configPath);

  // Leave 8 KiB free, less than the 40 KiB batch, so the write stops part way with ENOSPC.
  const fillerPath = join(logDirectory, 'filler');
  const filled = await fillDisk(fillerPath);
  await truncate(fillerPath, filled - 8192);
  let batch = '';
  for (let index = 0; index < 40; index++) {
    batch += recordLine({ timestamp: daysAgo(1), padding: 'p'.repeat(900) });
  }
  const full = await request(app.server).post('/records').set('content-type', 'application/x-ndjson').send(batch).expect(507);
  await truncate(fillerPath, 0);
  const afterSpace = await request(app.server).post('/records').set('content-type', 'application/x-ndjson').send(batch).expect(201);

  assert.equal(full.body.code, 'AR_DISK_FULL');
  assert.match(full.body.message, /^Disk full: could not append 40 records to .*logs\.jsonl/);
  assert.equal(afterSpace.body.records_appended, 40);
  assert.equal(await readFile(logPath, 'utf8'), existing + batch);
});
