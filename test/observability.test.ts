/** GET /metrics, GET /cleanup/history and the cleanup history file. */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';

import request from 'supertest';

import { buildApp } from '../src/app.js';
import { daysAgo, recordLine, runCli, temporaryDirectory, testSettings, writeConfig, writeText } from './helpers.js';

async function setup(t: Parameters<typeof temporaryDirectory>[0]) {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logDirectory = join(directory, 'audit');
  const expiredOld = recordLine({ timestamp: daysAgo(300) });
  const expiredNew = recordLine({ timestamp: daysAgo(100), schema_name: 'debug.logs' });
  const kept = recordLine({ timestamp: daysAgo(1) });
  await writeText(join(logDirectory, 'logs-20250101T000000.jsonl'), expiredOld);
  await writeText(join(logDirectory, 'logs-20261201T000000.jsonl'), expiredNew + kept);
  return { configPath, logDirectory, deletedLines: expiredOld + expiredNew };
}

test('cleanup history records each real run', async (t) => {
  const { configPath, logDirectory, deletedLines } = await setup(t);

  await runCli(['cleanup', '--dry-run', '--config', configPath]);
  const result = await runCli(['cleanup', '--config', configPath]);

  const lines = (await readFile(join(logDirectory, 'logs_cleanup.jsonl'), 'utf8')).trim().split('\n');
  assert.equal(result.code, 0);
  assert.equal(lines.length, 1);
  const record = JSON.parse(lines[0]!);
  assert.equal(record.requested_by, 'cli');
  assert.equal(record.status, 'success');
  assert.equal(record.deleted, 2);
  assert.deepEqual(record.deleted_per_schema, { 'debug.logs:1': 1, 'mxcp.endpoints:1': 1 });
  assert.deepEqual(record.files_removed, ['logs-20250101T000000.jsonl']);
  assert.deepEqual(record.files_rewritten, ['logs-20261201T000000.jsonl']);
  assert.equal(record.cutoffs['mxcp.endpoints:1'].retention_days, 90);
  assert.equal(record.deleted_sha256, createHash('sha256').update(deletedLines).digest('hex'));
});

test('history and metrics over HTTP', async (t) => {
  const { configPath } = await setup(t);
  const app = await buildApp(testSettings(configPath));
  await app.ready();
  t.after(() => app.close());

  const before = await request(app.server).get('/metrics').expect(200);
  await request(app.server).post('/cleanup').expect(200);
  const after = await request(app.server).get('/metrics').expect(200);
  const history = await request(app.server).get('/cleanup/history?limit=5').expect(200);

  assert.match(before.headers['content-type']!, /^text\/plain/);
  assert.match(before.text, /^audit_retention_records\{profile="default",schema="mxcp.endpoints:1"\} 2$/m);
  assert.match(before.text, /^audit_retention_expired_records\{profile="default",schema="debug.logs:1"\} 1$/m);
  assert.match(after.text, /^audit_retention_cleanup_runs_total\{profile="default",dry_run="false",status="success"\} 1$/m);
  assert.match(after.text, /^audit_retention_records_deleted_total\{profile="default",schema="mxcp.endpoints:1"\} 1$/m);
  assert.match(after.text, /^audit_retention_cleanup_duration_seconds_count\{profile="default",dry_run="false"\} 1$/m);
  assert.match(after.text, /^audit_retention_last_successful_cleanup_timestamp_seconds\{profile="default"\} \d+/m);
  assert.match(after.text, /^audit_retention_expired_records\{profile="default",schema="mxcp.endpoints:1"\} 0$/m);
  assert.doesNotMatch(after.text, /^audit_retention_expired_records\{.*\} [1-9]/m);
  assert.equal(history.body.profile, 'default');
  assert.equal(history.body.records.length, 1);
  assert.match(history.body.records[0].requested_by, /127\.0\.0\.1/);
});
