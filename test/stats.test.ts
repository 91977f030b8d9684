/**
 * GET /stats and `audit-retention stats`: the contract's keys, agreement with a dry
 * run, and an incremental index that gives the result of a full scan after every change.
 */

import assert from 'node:assert/strict';
import { appendFile, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import request from 'supertest';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';

import { buildApp } from '../src/app.js';
import { runCleanup } from '../src/core/cleanup.js';
import { ErrorCode, RetentionError } from '../src/core/errors.js';
import { ScanIndex } from '../src/core/scan-index.js';
import { collectStats, type StatsReport } from '../src/core/stats.js';
import { StatsResponse } from '../src/schemas/stats.js';
import { NOW_MS, daysAgo, defaultProfile, recordLine, runCli, temporaryDirectory, testSettings, writeConfig, writeText } from './helpers.js';

interface Setup {
  configPath: string;
  logDirectory: string;
  index: ScanIndex;
}

async function setupLog(t: TestContext): Promise<Setup> {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logDirectory = join(directory, 'audit');
  await writeText(
    join(logDirectory, 'logs-20260101T000000.jsonl'),
    recordLine({ timestamp: daysAgo(200), operation_type: 'tool', operation_status: 'success', policy_decision: 'allow' }) +
      recordLine({ timestamp: daysAgo(95), operation_type: 'resource', operation_status: 'error', policy_decision: 'deny' }) +
      'garbage\n',
  );
  await writeText(
    join(logDirectory, 'logs-20261101T000000.jsonl'),
    recordLine({ timestamp: daysAgo(20), schema_name: 'auth.events', operation_type: 'tool', operation_status: 'success' }) +
      recordLine({ timestamp: daysAgo(1), operation_type: 'prompt', operation_status: 'success', policy_decision: null }) +
      '\n',
  );
  return { configPath, logDirectory, index: ScanIndex.inMemory(join(logDirectory, 'logs.jsonl')) };
}

async function stats(setup: Setup, index = setup.index, nowMs = NOW_MS): Promise<StatsReport> {
  const settings = testSettings(setup.configPath);
  return collectStats({ profile: defaultProfile(settings), nowMs, index });
}

/** The facts that must match between an incremental call and a full scan. */
function comparable(report: StatsReport): unknown {
  const { duration_ms: _duration, files_scanned: _scanned, ...rest } = report;
  return rest;
}

async function assertLikeFullScan(setup: Setup): Promise<StatsReport> {
  const incremental = await stats(setup);
  const full = await stats(setup, ScanIndex.inMemory(join(setup.logDirectory, 'logs.jsonl')));
  assert.deepEqual(comparable(incremental), comparable(full));
  return incremental;
}

function assertMatches(schema: TSchema, body: unknown): void {
  const problems = [...Value.Errors(schema, body)].map((error) => `${error.instancePath} ${error.message}`);
  assert.deepEqual(problems, []);
}

test('stats has the documented keys', async (t) => {
  const setup = await setupLog(t);

  const report = await stats(setup);

  assert.equal(report.profile, 'default');
  assert.equal(report.total_records, 4);
  assert.equal(report.malformed_lines, 1);
  assert.equal(report.blank_lines, 1);
  assert.deepEqual(report.by_schema, { 'auth.events:1': 1, 'mxcp.endpoints:1': 3 });
  assert.deepEqual(report.by_type, { prompt: 1, resource: 1, tool: 2 });
  assert.deepEqual(report.by_status, { error: 1, success: 3 });
  assert.deepEqual(report.by_policy, { allow: 1, deny: 1 });
  assert.equal(report.earliest_timestamp, daysAgo(200));
  assert.equal(report.latest_timestamp, daysAgo(1));
  assert.deepEqual(report.expired_per_schema, { 'mxcp.endpoints:1': 2 });
  assert.deepEqual(
    report.files.map((file) => [file.path, file.records, file.active]),
    [
      ['logs-20260101T000000.jsonl', 2, false],
      ['logs-20261101T000000.jsonl', 2, true],
    ],
  );
  assert.equal(report.size_warning, false);
  assert.equal(report.size_warning_bytes, 1024 ** 3);
  assert.equal(report.last_cleanup, null);
  assertMatches(StatsResponse, report);
});

test('stats agree with a dry run', async (t) => {
  const setup = await setupLog(t);
  const settings = testSettings(setup.configPath);

  const report = await stats(setup);
  const dryRun = await runCleanup({ profile: defaultProfile(settings), dryRun: true, nowMs: NOW_MS, index: null });

  assert.deepEqual(report.expired_per_schema, Object.fromEntries(dryRun.deletedPerSchema));
});

test('second call reads nothing', async (t) => {
  const setup = await setupLog(t);

  const first = await stats(setup);
  const second = await stats(setup);

  assert.equal(first.files_scanned, 2);
  assert.equal(second.files_scanned, 0);
  assert.deepEqual(comparable(second), comparable(first));
});

test('append is read incrementally', async (t) => {
  const setup = await setupLog(t);
  const active = join(setup.logDirectory, 'logs-20261101T000000.jsonl');
  await stats(setup);

  await appendFile(active, recordLine({ timestamp: daysAgo(0.5), operation_type: 'tool' }) + '{"partial": ');
  const afterAppend = await assertLikeFullScan(setup);
  await appendFile(active, '1, "timestamp": "2026-12-04T00:00:00Z"}\n');
  const afterCompletion = await assertLikeFullScan(setup);

  assert.equal(afterAppend.files_scanned, 1);
  assert.equal(afterAppend.total_records, 5);
  assert.equal(afterCompletion.total_records, 6);
  assert.equal(afterCompletion.files.find((file) => file.path === 'logs-20261101T000000.jsonl')!.partial_last_line, false);
});

test('stats after every kind of change', async (t) => {
  const setup = await setupLog(t);
  const active = join(setup.logDirectory, 'logs-20261101T000000.jsonl');
  await stats(setup);

  // Rotation: the active segment gets a successor.
  await writeText(join(setup.logDirectory, 'logs-20261203T000000.jsonl'), recordLine({ timestamp: daysAgo(0.1) }));
  await assertLikeFullScan(setup);

  // A real cleanup rewrites one segment and removes nothing else.
  const settings = testSettings(setup.configPath);
  await runCleanup({ profile: defaultProfile(settings), dryRun: false, nowMs: NOW_MS, index: setup.index });
  await assertLikeFullScan(setup);

  // Truncation, then a file replaced by another of the same name.
  await truncate(active, 5);
  await assertLikeFullScan(setup);
  await writeFile(join(setup.logDirectory, 'replacement'), recordLine({ timestamp: daysAgo(300) }));
  await rename(join(setup.logDirectory, 'replacement'), active);
  const last = await assertLikeFullScan(setup);

  assert.deepEqual(last.expired_per_schema, { 'mxcp.endpoints:1': 1 });
});

test('stats follow the clock', async (t) => {
  const setup = await setupLog(t);
  await stats(setup);

  for (const laterMs of [NOW_MS + 60_000, NOW_MS + 86_400_000 * 5, NOW_MS + 86_400_000 * 100]) {
    const incremental = await stats(setup, setup.index, laterMs);
    const full = await stats(setup, ScanIndex.inMemory(join(setup.logDirectory, 'logs.jsonl')), laterMs);
    assert.deepEqual(comparable(incremental), comparable(full));
  }
});

test('last cleanup is kept across restarts', async (t) => {
  const setup = await setupLog(t);

  const cleanup = await runCli(['cleanup', '--config', setup.configPath]);
  const report = await stats(setup);

  assert.equal(cleanup.code, 0);
  assert.equal(report.last_cleanup?.status, 'success');
  assert.equal(report.last_cleanup?.deleted, 2);
  assert.equal(report.last_cleanup?.at, new Date(NOW_MS).toISOString());
});

test('stats after append and earlier clock', async (t) => {
  const setup = await setupLog(t);
  const path = join(setup.logDirectory, 'logs-20261101T000000.jsonl');
  const hours = [90 * 24 + 5, 90 * 24 + 2, 90 * 24 - 2, 90 * 24 - 10, 85 * 24];
  await writeFile(path, hours.map((hour) => recordLine({ timestamp: daysAgo(0, -hour * 3_600_000) })).join(''));
  const laterMs = NOW_MS;
  const earlierMs = NOW_MS - 12 * 3_600_000;

  await stats(setup, setup.index, laterMs);
  await appendFile(path, recordLine({ timestamp: daysAgo(1) }));
  const earlier = await stats(setup, setup.index, earlierMs);
  const later = await stats(setup, setup.index, laterMs);

  const fullIndex = () => ScanIndex.inMemory(join(setup.logDirectory, 'logs.jsonl'));
  assert.deepEqual(comparable(earlier), comparable(await stats(setup, fullIndex(), earlierMs)));
  assert.deepEqual(comparable(later), comparable(await stats(setup, fullIndex(), laterMs)));
  assert.equal(later.expired_per_schema['mxcp.endpoints:1'], 2 + 2);
});

test('stats after old record appended', async (t) => {
  const setup = await setupLog(t);
  const path = join(setup.logDirectory, 'logs-20261101T000000.jsonl');
  await writeFile(path, [60, 61, 62, 63, 64].map((days) => recordLine({ timestamp: daysAgo(days) })).join(''));
  const laterMs = NOW_MS + 2 * 24 * 3_600_000;

  await stats(setup);
  await appendFile(path, recordLine({ timestamp: daysAgo(120) }));
  const later = await stats(setup, setup.index, laterMs);

  const full = await stats(setup, ScanIndex.inMemory(join(setup.logDirectory, 'logs.jsonl')), laterMs);
  assert.deepEqual(comparable(later), comparable(full));
  assert.equal(later.by_schema['mxcp.endpoints:1'], 2 + 6);
});

test('stats after an overlong line ends', async (t) => {
  const setup = await setupLog(t);
  const path = join(setup.logDirectory, 'logs-20261101T000000.jsonl');
  // Longer than the 64 MiB scan limit, and unfinished: its rest must not be read as a line of its own.
  const overlongStart = `{"timestamp": "${daysAgo(1)}", "big": "${'y'.repeat(65 * 1024 * 1024)}`;
  await writeFile(path, recordLine({ timestamp: daysAgo(1) }) + overlongStart);

  await stats(setup);
  await appendFile(path, `", "rest": {"timestamp": "${daysAgo(300)}"}}\n` + recordLine({ timestamp: daysAgo(1) }));
  const report = await stats(setup);

  const full = await stats(setup, ScanIndex.inMemory(join(setup.logDirectory, 'logs.jsonl')));
  assert.deepEqual(comparable(report), comparable(full));
  assert.deepEqual(report.malformed_by_kind, { not_json: 1, too_long: 1 });
});

test('unreadable gzip fails stats', async (t) => {
  const setup = await setupLog(t);
  await writeText(join(setup.logDirectory, 'logs.jsonl.2.gz'), Buffer.from('this is not gzip'));

  await assert.rejects(stats(setup), (error: unknown) => {
    assert.ok(error instanceof RetentionError);
    assert.equal(error.code, ErrorCode.FILE_UNREADABLE);
    assert.match(error.message, /logs\.jsonl\.2\.gz: it is not valid gzip data/);
    return true;
  });
});

test('GET /stats answers over HTTP', async (t) => {
  const setup = await setupLog(t);
  const token = 'read-token-0123456789';
  const app = await buildApp(testSettings(setup.configPath, { AUDIT_RETENTION_READ_TOKEN: token }));
  await app.ready();
  t.after(() => app.close());

  await request(app.server).get('/stats').expect(401);
  const response = await request(app.server).get('/stats?profile=default').set('authorization', `Bearer ${token}`).expect(200);
  await request(app.server).get('/stats?profile=nope').set('authorization', `Bearer ${token}`).expect(404);

  assert.equal(response.body.total_records, 4);
  assertMatches(StatsResponse, response.body);
});

test('stats command prints text and JSON', async (t) => {
  const setup = await setupLog(t);

  const text = await runCli(['stats', '--config', setup.configPath]);
  const json = await runCli(['stats', '--json', '--config', setup.configPath]);

  assert.equal(text.code, 0);
  assert.match(text.stdout, /^Profile: default\nRecords: 4 \(malformed lines: 1, blank lines: 1\)\n/);
  assert.match(text.stdout, /Expired, deleted by the next cleanup:\n {2}mxcp\.endpoints:1: 2\n/);
  assert.equal(JSON.parse(json.stdout).total_records, 4);
});
