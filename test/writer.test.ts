/**
 * The lock-aware writer as a library: record completion, rotation, reopening after
 * a cleanup, partial lines, the lock timeout and draining on close. Uses real files,
 * the real cleanup and flock(1) as a second process.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { runCleanup } from '../src/core/cleanup.js';
import { ErrorCode, RetentionError } from '../src/core/errors.js';
import { discoverLayout } from '../src/core/layout.js';
import { nextSegmentName, segmentStamp } from '../src/core/log-target.js';
import { AuditLogWriter, type AuditLogWriterOptions } from '../src/core/writer.js';
import { NOW, NOW_MS, daysAgo, defaultProfile, recordLine, temporaryDirectory, testSettings, writeConfig, writeText } from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function logDirectory(t: TestContext): Promise<{ directory: string; logPath: string }> {
  const directory = join(await temporaryDirectory(t), 'audit');
  await writeText(join(directory, '.keep'), '');
  return { directory, logPath: join(directory, 'logs.jsonl') };
}

async function openWriter(t: TestContext, options: AuditLogWriterOptions): Promise<AuditLogWriter> {
  const writer = await AuditLogWriter.open({ now: () => NOW_MS, ...options });
  t.after(() => writer.close());
  return writer;
}

/** Rejects with the RetentionError that `promise` rejects with, failing when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<RetentionError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RetentionError, `expected a RetentionError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to reject');
}

test('complete record is appended as given', async (t) => {
  const { logPath } = await logDirectory(t);
  const writer = await openWriter(t, { logPath });
  const line = '{"timestamp":"2026-12-01T00:00:00+05:30",  "record_id" : "r-1", "text": "caf\\u00e9 \u00e9", "n": 1.50}';

  const result = await writer.appendNdjson(`${line}\n`);

  assert.equal(result.records, 1);
  assert.equal(result.path, logPath);
  assert.equal(await readFile(logPath, 'utf8'), `${line}\n`);
});

test('missing fields are inserted first', async (t) => {
  const { logPath } = await logDirectory(t);
  const writer = await openWriter(t, { logPath });

  await writer.appendNdjson('{"b": 2.0, "a": "\\u0041"}\n{ }\r\n{"record_id": "keep", "z": []}\n');

  const lines = (await readFile(logPath, 'utf8')).split('\n');
  assert.equal(lines.length, 4);
  assert.equal(lines[3], '');
  const first = /^\{"record_id": "([^"]+)", "timestamp": "([^"]+)", "b": 2\.0, "a": "\\u0041"\}$/.exec(lines[0]!);
  assert.ok(first, lines[0]);
  assert.match(first[1]!, UUID);
  assert.equal(first[2], NOW);
  assert.match(lines[1]!, /^\{"record_id": "[^"]+", "timestamp": "2026-12-04T12:00:00\.000Z" \}$/);
  assert.equal(lines[2], `{"timestamp": "${NOW}", "record_id": "keep", "z": []}`);
  for (const line of lines.slice(0, 3)) {
    assert.equal(typeof JSON.parse(line), 'object');
  }
});

test('configured timestamp field is filled', async (t) => {
  const { logPath } = await logDirectory(t);
  const writer = await openWriter(t, { logPath, timestampField: 'time', timestampUnit: 'ms' });

  await writer.append([{ msg: 'hello', time: 1_700_000_000_000 }, { msg: 'no time' }]);

  const lines = (await readFile(logPath, 'utf8')).trimEnd().split('\n');
  assert.match(lines[0]!, /^\{"record_id": "[^"]+", "msg":"hello","time":1700000000000\}$/);
  assert.match(lines[1]!, new RegExp(`^\\{"record_id": "[^"]+", "time": "${NOW}", "msg":"no time"\\}$`));
});

test('pretty-printed JSON record keeps its values', async (t) => {
  const { logPath } = await logDirectory(t);
  const writer = await openWriter(t, { logPath });

  await writer.appendJson('{\n  "record_id": "r",\r\n  "timestamp": 1700000000000,\n  "nested": {"x": [1, 2]}\n}\n');

  const content = await readFile(logPath, 'utf8');
  assert.equal(content, '{  "record_id": "r",  "timestamp": 1700000000000,  "nested": {"x": [1, 2]}}\n');
});

test('invalid line rejects the whole batch', async (t) => {
  const { logPath } = await logDirectory(t);
  const writer = await openWriter(t, { logPath });
  const cases: [string, RegExp][] = [
    ['{"a": 1}\n\n{"a": 2\n', /^Line 3 is not valid JSON/],
    ['{"a": 1}\n[1, 2]\n', /^Line 2 is an array, not a JSON object/],
    ['"text"\n', /^Line 1 is a string, not a JSON object/],
    ['{"timestamp": "yesterday"}\n', /^Line 1 has timestamp "yesterday", which is not a timestamp/],
    ['{"timestamp": null}\n', /^Line 1 has timestamp null/],
    ['{"timestamp": 1e400}\n', /^Line 1 has timestamp a number too large to be a timestamp/],
    ['\n \n', /contains no record/],
  ];

  for (const [body, message] of cases) {
    const error = await rejection(writer.appendNdjson(body));
    assert.equal(error.code, ErrorCode.INVALID_INPUT, body);
    assert.match(error.message, message, body);
  }
  const notUtf8 = await rejection(writer.appendNdjson(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d, 0x0a])));
  assert.match(notUtf8.message, /^Line 1 is not valid UTF-8/);
  const array = await rejection(writer.appendJson('[{"a": 1}]'));
  assert.match(array.message, /application\/x-ndjson/);

  assert.deepEqual(await readdir(join(logPath, '..')), ['.keep', 'logs.jsonl.lock']);
});

test('segment names sort after existing ones', () => {
  const logPath = '/logs/audit.jsonl';
  const now = Date.parse('2026-12-04T12:00:00.900Z');

  assert.equal(segmentStamp(now), '20261204T120000');
  assert.equal(nextSegmentName(logPath, [], now), 'audit-20261204T120000.jsonl');
  assert.equal(nextSegmentName(logPath, ['audit-20261204T115959.jsonl'], now), 'audit-20261204T120000.jsonl');
  assert.equal(nextSegmentName(logPath, ['audit-20261204T120000.jsonl'], now), 'audit-20261204T120000-1.jsonl');
  assert.equal(
    nextSegmentName(logPath, ['audit-20261204T120000.jsonl', 'audit-20261204T120000-7.jsonl.gz', 'other-20301204T120000.jsonl'], now),
    'audit-20261204T120000-8.jsonl',
  );
  // A clock behind the newest segment still yields the newest name.
  assert.equal(nextSegmentName(logPath, ['audit-20301231T235959-2.jsonl'], now), 'audit-20301231T235959-3.jsonl');
});

test('rotation starts segments by size', async (t) => {
  const { directory, logPath } = await logDirectory(t);
  const writer = await openWriter(t, { logPath, maxFileSize: 1024 });
  const record = recordLine({ timestamp: daysAgo(1), padding: 'x'.repeat(150) });

  const paths: string[] = [];
  for (let index = 0; index < 20; index++) {
    paths.push((await writer.appendNdjson(record)).path);
  }

  const perFile = Math.floor(1024 / record.length);
  const fileCount = Math.ceil(20 / perFile);
  const segments = Array.from({ length: fileCount - 1 }, (_, index) => `logs-20261204T120000${index === 0 ? '' : `-${index}`}.jsonl`);
  const names = (await readdir(directory)).filter((name) => name.endsWith('.jsonl'));
  assert.deepEqual(names.sort(), ['logs.jsonl', ...segments].sort());
  assert.equal(paths[0], logPath);
  assert.equal(paths.at(-1), join(directory, segments.at(-1)!));
  let total = 0;
  for (const name of names) {
    const size = (await stat(join(directory, name))).size;
    assert.ok(size <= 1024, `${name} has ${size} bytes`);
    total += size;
  }
  assert.equal(total, 20 * record.length);
  const layout = await discoverLayout(logPath, 'default');
  assert.equal(layout.files.find((file) => file.active)?.name, segments.at(-1));
});

test('writer continues the active segment', async (t) => {
  const { directory, logPath } = await logDirectory(t);
  await writeText(logPath, recordLine({ timestamp: daysAgo(1) }));
  await writeText(join(directory, 'logs-20261101T000000.jsonl'), recordLine({ timestamp: daysAgo(1) }));
  const writer = await openWriter(t, { logPath });

  const result = await writer.appendNdjson(recordLine({ timestamp: daysAgo(1) }));

  assert.equal(result.path, join(directory, 'logs-20261101T000000.jsonl'));
});

test('writer reopens a file that cleanup replaced', async (t) => {
  const root = await temporaryDirectory(t);
  const configPath = await writeConfig(root, 'retention_days: 30');
  const logPath = join(root, 'audit', 'logs.jsonl');
  await writeText(join(root, 'audit', '.keep'), '');
  const writer = await openWriter(t, { logPath });
  const expired = recordLine({ timestamp: daysAgo(60) });
  const kept = recordLine({ timestamp: daysAgo(1) });
  await writer.appendNdjson(expired + kept);
  const before = await stat(logPath);

  const outcome = await runCleanup({ profile: defaultProfile(testSettings(configPath)), dryRun: false, nowMs: NOW_MS });
  const later = recordLine({ timestamp: daysAgo(2) });
  const result = await writer.appendNdjson(later);

  assert.equal(outcome.totalDeleted, 1);
  assert.equal(result.path, logPath);
  assert.notEqual((await stat(logPath)).ino, before.ino);
  assert.equal(await readFile(logPath, 'utf8'), kept + later);
});

test('writer recreates a removed file', async (t) => {
  const { logPath } = await logDirectory(t);
  const writer = await openWriter(t, { logPath });
  await writer.appendNdjson(recordLine({ timestamp: daysAgo(60) }));

  await unlink(logPath);
  const kept = recordLine({ timestamp: daysAgo(1) });
  await writer.appendNdjson(kept);

  assert.equal(await readFile(logPath, 'utf8'), kept);
});

test('reopen chooses the newest segment', async (t) => {
  const { directory, logPath } = await logDirectory(t);
  const writer = await openWriter(t, { logPath });
  await writer.appendNdjson(recordLine({ timestamp: daysAgo(1) }));
  const segment = join(directory, 'logs-20270101T000000.jsonl');
  await writeText(segment, '');

  const beforeReopen = await writer.appendNdjson(recordLine({ timestamp: daysAgo(1) }));
  writer.reopen();
  const afterReopen = await writer.appendNdjson(recordLine({ timestamp: daysAgo(1) }));

  assert.equal(beforeReopen.path, logPath);
  assert.equal(afterReopen.path, segment);
  assert.equal((await readFile(segment, 'utf8')).split('\n').length, 2);
});

test('partial last line is ended first', async (t) => {
  const { logPath } = await logDirectory(t);
  await writeText(logPath, '{"record_id": "cut", "timest');
  const writer = await openWriter(t, { logPath });
  const kept = recordLine({ timestamp: daysAgo(1) });

  await writer.appendNdjson(kept);

  assert.equal(await readFile(logPath, 'utf8'), `{"record_id": "cut", "timest\n${kept}`);
});

test('concurrent calls keep their order', async (t) => {
  const { logPath } = await logDirectory(t);
  const writer = await openWriter(t, { logPath });

  const results = await Promise.all(
    Array.from({ length: 200 }, (_, index) => writer.append([{ record_id: `r-${index}`, timestamp: NOW }])),
  );

  assert.ok(results.every((result) => result.records === 1 && result.path === logPath));
  const ids = (await readFile(logPath, 'utf8'))
    .trimEnd()
    .split('\n')
    .map((line) => (JSON.parse(line) as { record_id: string }).record_id);
  assert.deepEqual(ids, Array.from({ length: 200 }, (_, index) => `r-${index}`));
});

test('close drains queued appends', async (t) => {
  const { logPath } = await logDirectory(t);
  const writer = await AuditLogWriter.open({ logPath, now: () => NOW_MS });

  const appends = Array.from({ length: 50 }, (_, index) => writer.append([{ n: index }]));
  await writer.close();
  await Promise.all(appends);
  const late = await rejection(writer.append([{ n: 50 }]));

  assert.equal((await readFile(logPath, 'utf8')).trimEnd().split('\n').length, 50);
  assert.match(late.message, /is closed; 1 records were not appended/);
});

test('every fsync policy appends', async (t) => {
  for (const fsync of ['always', 'interval', 'none'] as const) {
    const { logPath } = await logDirectory(t);
    const writer = await AuditLogWriter.open({ logPath, fsync, now: () => NOW_MS });
    await writer.append([{ policy: fsync }]);
    await writer.flush();
    await writer.close();
    assert.match(await readFile(logPath, 'utf8'), new RegExp(`"policy":"${fsync}"`));
  }
  const { logPath } = await logDirectory(t);
  const invalid = await rejection(AuditLogWriter.open({ logPath, fsync: 'sometimes' as never }));
  assert.equal(invalid.code, ErrorCode.CONFIG_INVALID);
});

test('missing directory fails to open', async (t) => {
  const root = await temporaryDirectory(t);

  const error = await rejection(AuditLogWriter.open({ logPath: join(root, 'nowhere', 'logs.jsonl') }));

  assert.equal(error.code, ErrorCode.LOG_DIR_MISSING);
  assert.match(error.message, /nowhere of profile 'default' does not exist/);
});

test('lock held too long answers locked', async (t) => {
  const { logPath } = await logDirectory(t);
  await writeFile(`${logPath}.lock`, '');
  const holder = spawn('flock', [`${logPath}.lock`, '-c', 'echo ready; sleep 1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    holder.kill('SIGKILL');
  });
  await once(holder.stdout!, 'data');
  const writer = await openWriter(t, { logPath, lockTimeoutMs: 200 });

  const error = await rejection(writer.append([{ n: 1 }]));

  assert.equal(error.code, ErrorCode.LOG_LOCKED);
  assert.match(error.message, /^Log file locked: .*logs\.jsonl/);
  assert.equal(error.retryAfterSeconds, 1);
  assert.deepEqual((await readdir(join(logPath, '..'))).sort(), ['.keep', 'logs.jsonl.lock']);
});
