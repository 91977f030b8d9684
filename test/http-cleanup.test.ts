/** POST /cleanup through the real HTTP server, with supertest. */

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';

import { buildApp } from '../src/app.js';
import { CleanupErrorResponse, CleanupResponse } from '../src/schemas/cleanup.js';
import { ErrorResponse } from '../src/schemas/common.js';
import { daysAgo, recordLine, temporaryDirectory, testSettings, writeConfig, writeText } from './helpers.js';

async function startApp(t: TestContext, configPath: string, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(testSettings(configPath, env));
  await app.ready();
  t.after(() => app.close());
  return app;
}

async function logFixture(t: TestContext): Promise<{ configPath: string; logPath: string }> {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logPath = join(directory, 'audit', 'logs.jsonl');
  await writeText(
    logPath,
    recordLine({ timestamp: daysAgo(200) }) +
      recordLine({ timestamp: daysAgo(100), schema_name: 'auth.events' }) +
      recordLine({ timestamp: daysAgo(3) }) +
      'garbage\n',
  );
  return { configPath, logPath };
}

/** Asserts that a body matches its schema, listing every mismatch on failure. */
function assertMatches(schema: TSchema, body: unknown): void {
  const problems = [...Value.Errors(schema, body)].map((error) => `${error.instancePath} ${error.message}`);
  assert.deepEqual(problems, []);
}

test('dry run returns the documented shape', async (t) => {
  const { configPath, logPath } = await logFixture(t);
  const app = await startApp(t, configPath);
  const before = await readFile(logPath);

  const response = await request(app.server).post('/cleanup?dryRun=true').expect(200);

  assert.equal(response.body.status, 'dry_run');
  assert.equal(response.body.message, 'Would delete 2 records');
  assert.deepEqual(response.body.deleted_per_schema, { 'auth.events:1': 1, 'mxcp.endpoints:1': 1 });
  assert.deepEqual(Object.keys(response.body), ['status', 'message', 'deleted_per_schema', 'details']);
  assert.equal(response.body.details.malformed_lines, 1);
  assertMatches(CleanupResponse, response.body);
  assert.deepEqual(await readFile(logPath), before);
});

test('real run deletes and reports', async (t) => {
  const { configPath, logPath } = await logFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/cleanup').expect(200);

  assert.equal(response.body.status, 'success');
  assert.equal(response.body.message, 'Deleted 2 records');
  assert.deepEqual(response.body.deleted_per_schema, { 'auth.events:1': 1, 'mxcp.endpoints:1': 1 });
  assert.deepEqual(response.body.details.files_rewritten, ['logs.jsonl']);
  assertMatches(CleanupResponse, response.body);
  assert.equal((await readFile(logPath, 'utf8')).split('\n').length, 3);
});

test('dry run and real run agree over HTTP', async (t) => {
  const { configPath } = await logFixture(t);
  const app = await startApp(t, configPath);

  const dryRun = await request(app.server).post('/cleanup?dryRun=true').expect(200);
  const realRun = await request(app.server).post('/cleanup?dryRun=false').expect(200);

  assert.deepEqual(dryRun.body.deleted_per_schema, realRun.body.deleted_per_schema);
});

test('invalid dryRun is a 400', async (t) => {
  const { configPath } = await logFixture(t);
  const app = await startApp(t, configPath);

  for (const value of ['yes', '1', 'TRUE', '']) {
    const response = await request(app.server).post(`/cleanup?dryRun=${value}`).expect(400);
    assert.equal(response.body.status, 'error');
    assert.match(response.body.message, /dryRun/);
    assertMatches(ErrorResponse, response.body);
  }
});

test('unknown profile is a 404', async (t) => {
  const { configPath } = await logFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/cleanup?profile=nope').expect(404);

  assert.equal(response.body.status, 'error');
  assert.match(response.body.message, /'nope'/);
  assert.match(response.body.message, /default/);
});

test('missing log directory is a 500 with path', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/cleanup?dryRun=true').expect(500);

  assert.equal(response.body.status, 'error');
  assert.match(response.body.message, new RegExp(join(directory, 'audit')));
  assert.match(response.body.message, /profile 'default'/);
  assert.doesNotMatch(response.body.message, /\n\s+at /);
});

test('disabled profile answers skipped', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = join(directory, 'audit-retention.yml');
  await writeFile(configPath, 'profile: staging\nprofiles:\n  staging:\n    audit:\n      enabled: false\n');
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/cleanup').expect(200);

  assert.deepEqual(response.body, {
    status: 'skipped',
    message: "Audit logging is not enabled for profile 'staging'",
    deleted_per_schema: {},
  });
});

test('failed file answers 500 with facts', async (t) => {
  const { configPath, logPath } = await logFixture(t);
  await writeText(`${logPath}.4.gz`, 'not gzip at all');
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/cleanup').expect(500);

  assert.equal(response.body.status, 'error');
  assert.match(response.body.message, /logs\.jsonl\.4\.gz/);
  assert.deepEqual(response.body.deleted_per_schema, { 'auth.events:1': 1, 'mxcp.endpoints:1': 1 });
  assert.deepEqual(response.body.details.files_failed.map((file: { path: string }) => file.path), ['logs.jsonl.4.gz']);
  assertMatches(CleanupErrorResponse, response.body);
});

test('admin token guards cleanup', async (t) => {
  const { configPath } = await logFixture(t);
  const token = 'admin-token-0123456789';
  const app = await startApp(t, configPath, { AUDIT_RETENTION_ADMIN_TOKEN: token });

  const missing = await request(app.server).post('/cleanup?dryRun=true').expect(401);
  const wrong = await request(app.server).post('/cleanup?dryRun=true').set('authorization', 'Bearer wrong-token-0123456789').expect(403);
  await request(app.server).post('/cleanup?dryRun=true').set('authorization', `Bearer ${token}`).expect(200);

  assert.equal(missing.body.status, 'error');
  assert.equal(wrong.body.status, 'error');
  assert.doesNotMatch(JSON.stringify(wrong.body), new RegExp(token));
});

test('unknown route is a JSON 404', async (t) => {
  const { configPath } = await logFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server).get('/nothing-here').expect(404);

  assert.equal(response.body.status, 'error');
  assert.match(response.body.message, /GET \/nothing-here/);
});

test('health endpoints answer', async (t) => {
  const { configPath } = await logFixture(t);
  const app = await startApp(t, configPath);

  const health = await request(app.server).get('/healthz').expect(200);
  const ready = await request(app.server).get('/readyz').expect(200);

  assert.deepEqual(health.body, { status: 'ok' });
  assert.equal(ready.body.status, 'ok');
});

test('readyz fails without log directory', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const app = await startApp(t, configPath);

  const ready = await request(app.server).get('/readyz').expect(503);

  assert.equal(ready.body.status, 'unavailable');
  assert.equal(ready.body.checks[0].ok, false);
});

test('unknown parameter is named', async (t) => {
  const { configPath } = await logFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/cleanup?dryrun=true').expect(400);

  assert.match(response.body.message, /unknown parameter 'dryrun'/);
  assert.equal(response.body.code, 'AR_INVALID_INPUT');
});

test('lock timeout parameter is validated', async (t) => {
  const { configPath } = await logFixture(t);
  const app = await startApp(t, configPath);

  const response = await request(app.server).post('/cleanup?lockTimeoutMs=-5').expect(400);

  assert.match(response.body.message, /lockTimeoutMs/);
});
