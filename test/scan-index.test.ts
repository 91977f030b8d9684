/**
 * The scan index: unchanged files are decided without reading, and every change to
 * a file makes the next run read it again and get the same result as without index.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync } from 'node:fs';
import { appendFile, open, readFile, rename, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';

import { runCleanup, type CleanupOutcome, type CleanupRequest } from '../src/core/cleanup.js';
import { cleanupFile } from '../src/core/file-cleanup.js';
import { discoverLayout } from '../src/core/layout.js';
import { WINDOW_MS } from '../src/core/line-processor.js';
import { LogLock } from '../src/core/lock.js';
import { OpenWriters } from '../src/core/open-writers.js';
import { RetentionRules } from '../src/core/retention.js';
import { ScanIndex, fileState, tallyFromSummary } from '../src/core/scan-index.js';
import { LineScanner } from '../src/core/scanner.js';
import { collectStats } from '../src/core/stats.js';
import {
  DAY_MS,
  NOW_MS,
  daysAgo,
  defaultProfile,
  recordLine,
  referenceCleanup,
  temporaryDirectory,
  testSettings,
  writeConfig,
  writeText,
  type ReferenceRetention,
} from './helpers.js';

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
  for (let hour = -48; hour <= 24 * 5; hour++) {
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

  // Within the remembered days after the cutoff, the index still decides, and exactly.
  for (const laterMs of [NOW_MS + 1, NOW_MS + 3_600_000, NOW_MS + 12 * 3_600_000 + 1, NOW_MS + DAY_MS, NOW_MS + WINDOW_MS]) {
    const cached = await run(setup, true, laterMs);
    const scanned = await run(setup, true, laterMs, false);
    assert.deepEqual(deleted(cached), deleted(scanned), `at +${laterMs - NOW_MS} ms`);
    assert.equal(fromIndex(cached)['logs-20260901T000000.jsonl'], true);
  }

  // Past the window the straddling file is read again.
  const pastWindowMs = NOW_MS + WINDOW_MS + DAY_MS / 2;
  const farLater = await run(setup, true, pastWindowMs);
  assert.equal(fromIndex(farLater)['logs-20260901T000000.jsonl'], false);
  assert.deepEqual(deleted(farLater), deleted(await run(setup, true, pastWindowMs, false)));
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

// A real run on a file with a fresh index entry stops deciding lines once it has deleted
// as many expired records as the index counts, and copies the rest as it is.

/** Retention of the straddling log below: two cutoffs three days apart. */
const TWO_CUTOFFS: ReferenceRetention = { bySchema: { 'auth.events': 93 }, defaultDays: 90 };

/**
 * Builds `count` records over the ten days around both cutoffs, a third of them
 * `auth.events`. Every seventh record is ten minutes late, as with several writers,
 * and malformed and blank lines lie between them.
 */
function straddlingLog(count: number): Buffer {
  const stepMs = (10 * DAY_MS) / count;
  const lines: string[] = [];
  for (let step = 0; step < count; step++) {
    const instantMs = NOW_MS - 95 * DAY_MS + Math.round(step * stepMs) + (step % 7 === 3 ? 600_000 : 0);
    const schemaName = step % 3 === 0 ? 'auth.events' : 'mxcp.endpoints';
    lines.push(recordLine({ timestamp: new Date(instantMs).toISOString(), schema_name: schemaName }));
    if (step % 97 === 0) lines.push('not json\n');
    if (step % 131 === 0) lines.push('\n');
  }
  return Buffer.from(lines.join(''));
}

type RunLimits = Pick<CleanupRequest, 'chunkBytes' | 'maxLineBytes' | 'scanHelper' | 'awaitScanHelper'>;

/** Creates a log whose one file is `content`, and returns a cleanup function for it. */
async function straddlingSetup(t: TestContext, content: Buffer, limits: RunLimits = {}) {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory, 'retention:\n  auth.events: 93');
  const path = join(directory, 'audit', 'logs-20260901T000000.jsonl');
  await writeText(path, content);
  const profile = defaultProfile(testSettings(configPath));
  const cleanup = (nowMs: number, dryRun: boolean, useIndex = true): Promise<CleanupOutcome> =>
    runCleanup({ profile, dryRun, nowMs, ...limits, ...(useIndex ? {} : { index: null }) });
  return { path, lockPath: `${profile.logPath}.lock`, cleanup };
}

/** Returns the facts of a report's only file, apart from whether the index decided it. */
function fileFacts(outcome: CleanupOutcome) {
  const result = outcome.files[0]!;
  const tally = result.tally;
  return {
    action: result.action,
    bytesAfter: result.bytesAfter,
    records: tally.records,
    deleted: deleted(outcome),
    malformed: tally.malformed,
    malformedByKind: tally.malformedByKind,
    blankLines: tally.blankLines,
  };
}

/** Returns the offset just past the last line of `content` that a cleanup at `nowMs` deletes. */
function endOfLastExpired(content: Buffer, nowMs: number): number {
  let end = 0;
  for (let start = 0; start < content.length; ) {
    const lineEnd = content.indexOf(0x0a, start) + 1;
    if (Object.keys(referenceCleanup(content.subarray(start, lineEnd), TWO_CUTOFFS, nowMs).deleted).length > 0) {
      end = lineEnd;
    }
    start = lineEnd;
  }
  return end;
}

/** Checks that a real run decided lines only up to the chunk that contains the last expired record. */
function assertStoppedEarly(outcome: CleanupOutcome, before: Buffer, nowMs: number, chunkBytes: number): void {
  const undecidedBytes = outcome.files[0]!.undecidedBytes ?? 0;
  const afterLastExpired = before.length - endOfLastExpired(before, nowMs);
  assert.ok(afterLastExpired > before.length / 4, 'the test needs kept lines after the last expired record');
  assert.ok(undecidedBytes >= afterLastExpired - chunkBytes, `${undecidedBytes} bytes undecided, ${afterLastExpired} after the last expired record`);
}

/** Checks that the index entry of the file now decides a later dry run exactly as a scan does. */
async function assertEntryExact(cleanup: (nowMs: number, dryRun: boolean, useIndex?: boolean) => Promise<CleanupOutcome>, nowMs: number): Promise<void> {
  const cached = await cleanup(nowMs, true);
  const scanned = await cleanup(nowMs, true, false);
  assert.equal(cached.files[0]!.fromIndex, true);
  assert.deepEqual(fileFacts(cached), fileFacts(scanned));
}

// A day later, and five minutes more, as a daily job that starts late.
for (const laterMs of [NOW_MS + DAY_MS, NOW_MS + DAY_MS + 300_000]) {
  test(`early stop ${(laterMs - NOW_MS) / 60_000} minutes later`, async (t) => {
    // A kept line longer than the scanner takes lies among the lines that are copied undecided.
    const overlong = recordLine({ timestamp: daysAgo(80), padding: 'x'.repeat(10_000) });
    const keptAfter = [80, 79, 78].map((days) => recordLine({ timestamp: daysAgo(days) })).join('');
    const content = Buffer.concat([straddlingLog(2000), Buffer.from(overlong + keptAfter)]);
    const { path, cleanup } = await straddlingSetup(t, content, { chunkBytes: 4096, maxLineBytes: 8192 });
    await cleanup(NOW_MS, false);
    const before = referenceCleanup(content, TWO_CUTOFFS, NOW_MS).kept;
    const expected = referenceCleanup(before, TWO_CUTOFFS, laterMs);

    const preview = await cleanup(laterMs, true);
    const real = await cleanup(laterMs, false);

    assertStoppedEarly(real, before, laterMs, 4096);
    assert.deepEqual(await readFile(path), expected.kept);
    assert.deepEqual(deleted(real), expected.deleted);
    assert.deepEqual(fileFacts(real), fileFacts(preview));
    assert.deepEqual(real.files[0]!.tally.malformedByKind, { not_json: 21, too_long: 1 });
    await assertEntryExact(cleanup, laterMs + 3_600_000);
  });
}

test('early stop with helper thread', async (t) => {
  // About 8 MiB in chunks of 1 MiB, so the helper thread scans half of each chunk.
  const content = straddlingLog(40_000);
  const { path, cleanup } = await straddlingSetup(t, content, { chunkBytes: 1024 * 1024, scanHelper: true, awaitScanHelper: true });
  const laterMs = NOW_MS + DAY_MS;
  await cleanup(NOW_MS, false);
  const before = referenceCleanup(content, TWO_CUTOFFS, NOW_MS).kept;
  const expected = referenceCleanup(before, TWO_CUTOFFS, laterMs);

  const real = await cleanup(laterMs, false);

  assertStoppedEarly(real, before, laterMs, 1024 * 1024);
  assert.deepEqual(await readFile(path), expected.kept);
  assert.deepEqual(deleted(real), expected.deleted);
  await assertEntryExact(cleanup, laterMs + 3_600_000);
});

test('early stop with appended lines', { timeout: 60_000 }, async (t) => {
  const content = straddlingLog(2000);
  const { path, lockPath, cleanup } = await straddlingSetup(t, content, { chunkBytes: 4096 });
  const laterMs = NOW_MS + DAY_MS;
  await cleanup(NOW_MS, false);
  const appended = recordLine({ timestamp: daysAgo(200) }) + recordLine({ timestamp: daysAgo(1) }) + 'not json\n' + recordLine({ timestamp: daysAgo(120), schema_name: 'auth.events' });
  const before = referenceCleanup(content, TWO_CUTOFFS, NOW_MS).kept;
  const expected = referenceCleanup(Buffer.concat([before, Buffer.from(appended)]), TWO_CUTOFFS, laterMs);

  // A second process holds the log's lock, so the cleanup scans and then waits. The process appends, then releases the lock.
  const appendedPath = `${path}.appended`;
  await writeFile(appendedPath, appended);
  const writer = spawn('flock', [lockPath, 'sh', '-c', 'echo locked; sleep 1; cat "$1" >> "$2"', 'sh', appendedPath, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => writer.kill());
  await once(writer.stdout, 'data');
  const real = await cleanup(laterMs, false);

  assert.ok(real.files[0]!.lockWaitMs! > 0);
  assertStoppedEarly(real, before, laterMs, 4096);
  assert.deepEqual(await readFile(path), expected.kept);
  assert.deepEqual(deleted(real), expected.deleted);
  assert.equal(real.files[0]!.tally.malformed, 22);
  await assertEntryExact(cleanup, laterMs + 3_600_000);
});

test('early stop with mid-scan append', async (t) => {
  // The last expired record ends the file, and records are appended while the scan runs, so the
  // read that brings that record also brings them. Only the records up to the indexed end count.
  const keptLines = Array.from({ length: 60 }, (_, index) => recordLine({ timestamp: daysAgo(80, index * 60_000), padding: 'k'.repeat(150) })).join('');
  const content = recordLine({ timestamp: daysAgo(120) }) + keptLines + recordLine({ timestamp: daysAgo(100) });
  // Nothing appended expires, so the deletions in that read match the index's count.
  const appended = recordLine({ timestamp: daysAgo(2) }) + 'not json\n';
  const { path, lockPath, cleanup } = await straddlingSetup(t, Buffer.from(content));
  await cleanup(NOW_MS, true);

  // The index's tally, as a real run's plan takes it.
  const directory = join(path, '..');
  const index = await ScanIndex.load(join(directory, 'logs.jsonl'), { timestampField: 'timestamp', timestampUnit: 'ms' });
  const rules = new RetentionRules({ configRetention: new Map([['auth.events', 93]]), schemasFileRetention: new Map(), profileRetentionDays: undefined }, NOW_MS);
  const tally = tallyFromSummary(index.get('logs-20260901T000000.jsonl')!, rules, true)!;
  const state = (await fileState(path))!;
  assert.equal(tally.expired, 2);

  const lock = await LogLock.open(lockPath, 5_000);
  t.after(() => lock.close());
  const [file] = (await discoverLayout(join(directory, 'logs.jsonl'), 'default')).files;
  let appendedAlready = false;
  const deletedLines: Buffer[] = [];
  const result = await cleanupFile(
    file!,
    {
      dryRun: false,
      scanner: new LineScanner({ timestampField: 'timestamp', timestampUnit: 'ms', extractLabels: false }),
      rules,
      lock,
      chunkBytes: 4096,
      openWriters: OpenWriters.none(),
      writerProbe: { directory, lockPath },
      deletedLines: {
        add(bytes) {
          deletedLines.push(Buffer.from(bytes));
          if (!appendedAlready) {
            // After the first deletion, before the reads that reach the end of the file.
            appendFileSync(path, appended);
            appendedAlready = true;
          }
        },
        async flush() {},
      },
    },
    { state, tally },
  );

  const expected = referenceCleanup(Buffer.from(content + appended), TWO_CUTOFFS, NOW_MS);
  assert.equal(result.error, null);
  assert.equal(result.action, 'rewritten');
  assert.equal(result.undecidedBytes, 0, 'the last expired record ends the indexed bytes');
  assert.deepEqual(await readFile(path), expected.kept);
  assert.deepEqual(Object.fromEntries(result.tally.deletedPerSchema()), expected.deleted);
  assert.equal(result.tally.records, 63);
  assert.equal(result.tally.malformed, 1);
  assert.deepEqual(Buffer.concat(deletedLines), expected.deletedLines);
});
