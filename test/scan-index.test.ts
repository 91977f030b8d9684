/**
 * The scan index: unchanged files are decided without reading, and every change to
 * a file makes the next run read it again and get the same result as without index.
 */

import assert from 'node:assert/strict';
import { appendFile, readFile, rename, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { runCleanup, type CleanupOutcome } from '../src/core/cleanup.js';
import { collectStats } from '../src/core/stats.js';
import { ScanIndex } from '../src/core/scan-index.js';
import { DAY_MS, NOW_MS, daysAgo, defaultProfile, recordLine, temporaryDirectory, testSettings, writeConfig, writeText } from './helpers.js';
import { open } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

interface Setup {
  configPath: string;
  logDirectory: string;
}

async function setupLog(t: TestContext): Promise<Setup> {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logDirectory = join(directory, 'audit');
  // Old segment: all expired. Middle segment: straddles the 90-day cutoff. New segment: all kept.
  await writeText(join(logDirectory, 'logs-20250101T000000.jsonl'), recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(200) }));
  let middle = '';
  for (let hour = -48; hour <= 48; hour++) {
    middle += recordLine({ timestamp: daysAgo(90, hour * 3_600_000) });
  }
  middle += 'not json\n';
  await writeText(join(logDirectory, 'logs-20260901T000000.jsonl'), middle);
  await writeText(join(logDirectory, 'logs-20261201T000000.jsonl'), recordLine({ timestamp: daysAgo(1) }) + recordLine({ timestamp: daysAgo(2) }));
  return { configPath, logDirectory };
}

async function run(setup: Setup, dryRun: boolean, nowMs = NOW_MS, useIndex = true): Promise<CleanupOutcome> {
  const settings = testSettings(setup.configPath);
  return runCleanup({ profile: defaultProfile(settings), dryRun, nowMs, ...(useIndex ? {} : { index: null }) });
}

function fromIndex(outcome: CleanupOutcome): Record<string, boolean> {
  return Object.fromEntries(outcome.files.map((result) => [result.file.name, result.fromIndex === true]));
}

function deleted(outcome: CleanupOutcome): Record<string, number> {
  return Object.fromEntries(outcome.deletedPerSchema);
}

test('second dry run reads nothing', async (t) => {
  const setup = await setupLog(t);

  const first = await run(setup, true);
  const second = await run(setup, true);

  assert.deepEqual(Object.values(fromIndex(first)), [false, false, false]);
  assert.deepEqual(Object.values(fromIndex(second)), [true, true, true]);
  assert.deepEqual(deleted(second), deleted(first));
  assert.equal(second.files[1]!.tally.malformed, 1);
});

test('index follows a later clock', async (t) => {
  const setup = await setupLog(t);
  await run(setup, true);

  // Within the remembered day after the cutoff, the index still decides, and exactly.
  for (const laterMs of [NOW_MS + 1, NOW_MS + 3_600_000, NOW_MS + 12 * 3_600_000 + 1, NOW_MS + DAY_MS - 1]) {
    const cached = await run(setup, true, laterMs);
    const scanned = await run(setup, true, laterMs, false);
    assert.deepEqual(deleted(cached), deleted(scanned), `at +${laterMs - NOW_MS} ms`);
    assert.equal(fromIndex(cached)['logs-20260901T000000.jsonl'], true);
  }

  // Past the window the straddling file is read again.
  const farLater = await run(setup, true, NOW_MS + 1.5 * DAY_MS);
  assert.equal(fromIndex(farLater)['logs-20260901T000000.jsonl'], false);
  assert.deepEqual(deleted(farLater), deleted(await run(setup, true, NOW_MS + 1.5 * DAY_MS, false)));
});

test('real run removes indexed expired file', async (t) => {
  const setup = await setupLog(t);
  await run(setup, true);

  const real = await run(setup, false);

  const removed = real.files.find((result) => result.file.name === 'logs-20250101T000000.jsonl')!;
  assert.equal(removed.action, 'removed');
  assert.equal(removed.fromIndex, true);
  assert.equal(fromIndex(real)['logs-20261201T000000.jsonl'], true);
  assert.equal(fromIndex(real)['logs-20260901T000000.jsonl'], false);
  assert.deepEqual(deleted(real), { 'mxcp.endpoints:1': 2 + 48 });
});

test('rewritten file enters the index', async (t) => {
  const setup = await setupLog(t);
  await run(setup, false);

  const again = await run(setup, false);

  assert.deepEqual(fromIndex(again), { 'logs-20260901T000000.jsonl': true, 'logs-20261201T000000.jsonl': true });
  assert.deepEqual(deleted(again), {});
  // Within the day after the cutoff the entry of the rewrite decides as exactly as a scan.
  for (const laterMs of [NOW_MS + 3_600_000, NOW_MS + 12 * 3_600_000 + 1, NOW_MS + DAY_MS - 1]) {
    const cached = await run(setup, true, laterMs);
    const scanned = await run(setup, true, laterMs, false);
    assert.equal(fromIndex(cached)['logs-20260901T000000.jsonl'], true, `at +${laterMs - NOW_MS} ms`);
    assert.deepEqual(deleted(cached), deleted(scanned), `at +${laterMs - NOW_MS} ms`);
    assert.deepEqual(
      cached.files.map((result) => [result.file.name, result.tally.records, result.tally.malformed, result.bytesAfter]),
      scanned.files.map((result) => [result.file.name, result.tally.records, result.tally.malformed, result.bytesAfter]),
    );
  }
});

test('append after a rewrite is read', async (t) => {
  const setup = await setupLog(t);
  await run(setup, false);
  const path = join(setup.logDirectory, 'logs-20260901T000000.jsonl');

  await appendFile(path, recordLine({ timestamp: daysAgo(400) }));
  const cached = await run(setup, true);
  const scanned = await run(setup, true, NOW_MS, false);

  assert.equal(fromIndex(cached)['logs-20260901T000000.jsonl'], false);
  assert.deepEqual(deleted(cached), { 'mxcp.endpoints:1': 1 });
  assert.deepEqual(deleted(cached), deleted(scanned));
});

test('rewrite with unknown earliest kept is read', async (t) => {
  const setup = await setupLog(t);
  // Kept records only far beyond the day after the cutoff: the scan cannot tell the earliest kept instant.
  const path = join(setup.logDirectory, 'logs-20261201T000000.jsonl');
  await writeText(path, recordLine({ timestamp: daysAgo(200) }) + recordLine({ timestamp: daysAgo(10) }) + recordLine({ timestamp: daysAgo(5) }));
  await run(setup, false);

  const cached = await run(setup, true, NOW_MS + 3_600_000);
  const scanned = await run(setup, true, NOW_MS + 3_600_000, false);

  assert.equal(fromIndex(cached)['logs-20261201T000000.jsonl'], false);
  assert.equal(fromIndex(cached)['logs-20260901T000000.jsonl'], true);
  assert.deepEqual(deleted(cached), deleted(scanned));
});

/** Runs two real cleanups, at `firstMs` and `laterMs`, with the index and on a copy without it, and returns both final states. */
async function rewriteTwice(t: TestContext, content: Buffer, firstMs: number, laterMs: number, limits: { chunkBytes?: number; maxLineBytes?: number } = {}) {
  const outcomes: { deleted: Record<string, number>; bytes: Buffer | null; fromIndex: boolean }[] = [];
  for (const useIndex of [true, false]) {
    const setup = await setupLog(t);
    const path = join(setup.logDirectory, 'logs-20261201T000000.jsonl');
    await writeFile(path, content);
    const settings = testSettings(setup.configPath);
    const cleanup = (nowMs: number) => runCleanup({ profile: defaultProfile(settings), dryRun: false, nowMs, ...limits, ...(useIndex ? {} : { index: null }) });

    await cleanup(firstMs);
    const later = await cleanup(laterMs);

    const bytes = await readFile(path).catch(() => null);
    const result = later.files.find((file) => file.file.name === 'logs-20261201T000000.jsonl');
    outcomes.push({ deleted: deleted(later), bytes, fromIndex: result?.fromIndex === true });
  }
  return { cached: outcomes[0]!, scanned: outcomes[1]! };
}

test('mark-like line moved to the start is read', async (t) => {
  // Mid-file, a line that starts with the bytes of a byte order mark is not JSON. Once the
  // first line is deleted it starts the file, where a scan takes those bytes for the file's mark.
  const mark = Buffer.from([0xef, 0xbb, 0xbf]);
  // Twelve hours apart: the later cutoff passes the mark-like record but not the record after it.
  const content = Buffer.concat([
    Buffer.from(recordLine({ timestamp: daysAgo(120) })),
    mark,
    Buffer.from(recordLine({ timestamp: daysAgo(90.25) }) + recordLine({ timestamp: daysAgo(89.9) })),
  ]);

  const { cached, scanned } = await rewriteTwice(t, content, NOW_MS - DAY_MS / 2, NOW_MS);

  assert.equal(cached.fromIndex, false);
  assert.deepEqual(cached.deleted, scanned.deleted);
  assert.ok(cached.bytes !== null);
  assert.ok(scanned.bytes !== null);
  assert.ok(cached.bytes.equals(scanned.bytes));
});

test('line too long behind a kept mark is read', async (t) => {
  // With the file's mark in front of it, a line that fitted mid-file exceeds the line limit at the start.
  const maxLineBytes = 1024;
  const unpadded = recordLine({ timestamp: daysAgo(90.25), padding: '' });
  const padded = recordLine({ timestamp: daysAgo(90.25), padding: 'p'.repeat(maxLineBytes - unpadded.length) });
  assert.equal(padded.length, maxLineBytes);
  // Twelve hours later every record has expired, so the index alone would remove the file.
  const content = Buffer.from(`\ufeff${recordLine({ timestamp: daysAgo(120) })}${padded}`);

  const { cached, scanned } = await rewriteTwice(t, content, NOW_MS - DAY_MS / 2, NOW_MS, { chunkBytes: 256, maxLineBytes });

  assert.equal(cached.fromIndex, false);
  assert.deepEqual(cached.deleted, scanned.deleted);
  assert.ok(cached.bytes !== null, 'the file keeps its overlong line');
  assert.ok(scanned.bytes !== null);
  assert.ok(cached.bytes.equals(scanned.bytes));
});

/** Each change must send the file back to a scan and give the result of a run without index. */
const CHANGES: [label: string, change: (path: string) => Promise<void>][] = [
  ['append a record', (path) => appendFile(path, recordLine({ timestamp: daysAgo(400) }))],
  ['append a partial line', (path) => appendFile(path, '{"timestamp": "2020-01-01T00:00:00Z"')],
  ['truncate', (path) => truncate(path, 10)],
  [
    'rewrite same size, restore mtime',
    async (path) => {
      const before = await stat(path);
      const content = await readFile(path, 'utf8');
      await writeFile(path, content.replace(/"timestamp": "2026/, '"timestamp": "2016'));
      await utimes(path, before.atime, before.mtime);
    },
  ],
  [
    'replace with a new file',
    async (path) => {
      await writeFile(`${path}.new`, recordLine({ timestamp: daysAgo(300) }));
      await rename(`${path}.new`, path);
    },
  ],
];

for (const [label, change] of CHANGES) {
  test(`index falls back after ${label}`, async (t) => {
    const setup = await setupLog(t);
    const path = join(setup.logDirectory, 'logs-20261201T000000.jsonl');
    await run(setup, true);

    await change(path);
    const cached = await run(setup, true);
    const scanned = await run(setup, true, NOW_MS, false);

    assert.equal(fromIndex(cached)['logs-20261201T000000.jsonl'], false);
    assert.deepEqual(deleted(cached), deleted(scanned));
    assert.deepEqual(
      cached.files.map((result) => [result.file.name, result.tally.records, result.tally.malformed, result.tally.partialTailBytes]),
      scanned.files.map((result) => [result.file.name, result.tally.records, result.tally.malformed, result.tally.partialTailBytes]),
    );
  });
}

test('damaged index is ignored', async (t) => {
  const setup = await setupLog(t);
  await run(setup, true);
  await writeFile(ScanIndex.pathFor(join(setup.logDirectory, 'logs.jsonl')), '{"format": 1, "files": [trunc');

  const outcome = await run(setup, true);

  assert.deepEqual(Object.values(fromIndex(outcome)), [false, false, false]);
  assert.deepEqual(deleted(outcome), deleted(await run(setup, true, NOW_MS, false)));
});

/** Runs a cleanup with the config `extraAudit` lines, on the log directory of `directory`, using the saved index. */
async function runWithConfig(directory: string, extraAudit: string, dryRun: boolean): Promise<CleanupOutcome> {
  const settings = testSettings(await writeConfig(directory, extraAudit));
  return runCleanup({ profile: defaultProfile(settings), dryRun, nowMs: NOW_MS });
}

test('index ignored after timestamp_field change', async (t) => {
  const directory = await temporaryDirectory(t);
  const path = join(directory, 'audit', 'logs-20260101T000000.jsonl');
  await writeText(path, recordLine({ timestamp: daysAgo(300), time: daysAgo(1) }).repeat(3));
  await runWithConfig(directory, '', true);

  const outcome = await runWithConfig(directory, 'timestamp_field: time', false);

  assert.equal(outcome.totalDeleted, 0);
  assert.equal(fromIndex(outcome)['logs-20260101T000000.jsonl'], false);
  assert.equal((await readFile(path, 'utf8')).split('\n').length, 4);
});

test('index ignored after timestamp_unit change', async (t) => {
  const directory = await temporaryDirectory(t);
  const path = join(directory, 'audit', 'logs-20260101T000000.jsonl');
  // Two days ago in seconds; read as milliseconds it is January 1970.
  const epochSeconds = Math.floor((NOW_MS - 2 * DAY_MS) / 1000);
  await writeText(path, `{"timestamp": ${epochSeconds}}\n{"timestamp": ${epochSeconds + 1}}\n`);
  const asMilliseconds = await runWithConfig(directory, '', true);

  const asSeconds = await runWithConfig(directory, 'timestamp_unit: s', false);

  assert.equal(asMilliseconds.totalDeleted, 2);
  assert.equal(asSeconds.totalDeleted, 0);
  assert.equal(await readFile(path, 'utf8'), `{"timestamp": ${epochSeconds}}\n{"timestamp": ${epochSeconds + 1}}\n`);
});

test('edit then append never removes unread', async (t) => {
  const setup = await setupLog(t);
  const path = join(setup.logDirectory, 'logs-20250101T000000.jsonl');
  // Over twice the 4 KiB that the edge hashes cover, so the edit falls between them.
  const before = Array.from({ length: 50 }, () => recordLine({ timestamp: daysAgo(300) })).join('');
  const after = Array.from({ length: 50 }, () => recordLine({ timestamp: daysAgo(300) })).join('');
  await writeFile(path, before + recordLine({ timestamp: daysAgo(200) }) + after);
  const settings = testSettings(setup.configPath);
  const index = await ScanIndex.load(defaultProfile(settings).logPath, { timestampField: 'timestamp', timestampUnit: 'ms' });
  await collectStats({ profile: defaultProfile(settings), nowMs: NOW_MS, index });

  // Same length: the record from 200 days ago moves to yesterday, then a record is appended.
  const content = await readFile(path, 'utf8');
  const edited = content.replace(daysAgo(200), daysAgo(1));
  assert.equal(edited.length, content.length);
  const handle = await open(path, 'r+');
  await handle.write(edited, 0, 'utf8');
  await handle.close();
  await appendFile(path, recordLine({ timestamp: daysAgo(300) }));
  await collectStats({ profile: defaultProfile(settings), nowMs: NOW_MS, index });
  await index.save();

  const real = await run(setup, false);

  const result = real.files.find((file) => file.file.name === 'logs-20250101T000000.jsonl')!;
  assert.equal(result.fromIndex === true, false);
  assert.equal(result.action, 'rewritten');
  assert.equal(await readFile(path, 'utf8'), `${edited.split('\n')[50]}\n`);
});

test('indexed gzip dry run sizes the rewrite', async (t) => {
  const setup = await setupLog(t);
  const path = join(setup.logDirectory, 'logs.jsonl.2.gz');
  await writeText(path, gzipSync(recordLine({ timestamp: daysAgo(300) }).repeat(20) + recordLine({ timestamp: daysAgo(1) })));

  const first = await run(setup, true);
  const second = await run(setup, true);
  const real = await run(setup, false);

  const sizes = (outcome: CleanupOutcome) => outcome.files.filter((result) => result.file.gzip).map((result) => [result.bytesBefore, result.bytesAfter]);
  assert.deepEqual(sizes(second), sizes(first));
  assert.deepEqual(sizes(real), sizes(first));
  assert.ok(sizes(first)[0]![1]! < sizes(first)[0]![0]!);
});
