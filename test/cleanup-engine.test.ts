/** The retention engine on real files in temporary directories. */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';

import { runCleanup, type CleanupOutcome } from '../src/core/cleanup.js';
import { cleanupResponse } from '../src/core/report.js';
import { ErrorCode, RetentionError } from '../src/core/errors.js';
import { TEMPORARY_SUFFIX, discoverLayout } from '../src/core/layout.js';
import {
  NOW_MS,
  daysAgo,
  defaultProfile,
  directWritesOrSkip,
  recordLine,
  referenceCleanup,
  temporaryDirectory,
  testSettings,
  writeConfig,
  writeText,
} from './helpers.js';

interface Fixture {
  directory: string;
  logDirectory: string;
  configPath: string;
}

async function fixture(t: Parameters<typeof temporaryDirectory>[0], extraAudit = ''): Promise<Fixture> {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory, extraAudit);
  return { directory, logDirectory: join(directory, 'audit'), configPath };
}

async function cleanup(fixtureValue: Fixture, dryRun: boolean, overrides: Record<string, unknown> = {}): Promise<CleanupOutcome> {
  const settings = testSettings(fixtureValue.configPath);
  return runCleanup({ profile: defaultProfile(settings), dryRun, nowMs: NOW_MS, ...overrides });
}

function deletedObject(outcome: CleanupOutcome): Record<string, number> {
  return Object.fromEntries(outcome.deletedPerSchema);
}

/** A mixed log: expired and kept records of three schemas, every bad-line kind, blank lines. */
function mixedLog(): string {
  return [
    recordLine({ timestamp: daysAgo(200), schema_name: 'mxcp.endpoints', schema_version: 2 }),
    recordLine({ timestamp: daysAgo(100), schema_name: 'debug.logs' }),
    '{"truncated": \n',
    recordLine({ timestamp: daysAgo(95), schema_name: 'mxcp.endpoints', schema_version: 2 }),
    '\n',
    '   \t \n',
    recordLine({ timestamp: daysAgo(400), schema_name: 'auth.events' }),
    recordLine({ timestamp: daysAgo(10), schema_name: 'debug.logs' }),
    '[1, 2, 3]\n',
    '{"no_timestamp": true}\n',
    recordLine({ timestamp: daysAgo(120) }).replace('mxcp.endpoints', 'caf\u00e9'),
    Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a]).toString('latin1'),
    recordLine({ timestamp: daysAgo(300), schema_name: 'auth.events' }),
    recordLine({ timestamp: daysAgo(1), schema_name: 'mxcp.endpoints', schema_version: 2 }),
    recordLine({ timestamp: daysAgo(91) }).replace(/"schema_name": "[^"]*", /, ''),
    recordLine({ timestamp: daysAgo(31), schema_name: 'debug.logs' }),
  ].join('');
}

const MIXED_RETENTION = { bySchema: { 'mxcp.endpoints': 90, 'debug.logs': 30, 'auth.events': 365 }, defaultDays: 90 };

const SCHEMAS_FILE = [
  '{"schema_name": "mxcp.endpoints", "version": 2, "retention_days": 90}',
  '{"schema_name": "auth.events", "version": 1, "retention_days": 365}',
  '{"schema_name": "debug.logs", "version": 1, "retention_days": 30}',
  '',
].join('\n');

test('single file keeps exactly the reference bytes', async (t) => {
  const setup = await fixture(t);
  const content = Buffer.from(mixedLog(), 'latin1');
  await writeText(join(setup.logDirectory, 'logs.jsonl'), content);
  await writeText(join(setup.logDirectory, 'logs_schemas.jsonl'), SCHEMAS_FILE);

  const outcome = await cleanup(setup, false);

  const expected = referenceCleanup(content, MIXED_RETENTION);
  assert.equal(outcome.status, 'success');
  assert.deepEqual(deletedObject(outcome), expected.deleted);
  assert.deepEqual(await readFile(join(setup.logDirectory, 'logs.jsonl')), expected.kept);
});

test('dry run matches real run', async (t) => {
  const setup = await fixture(t, 'retention:\n  auth.events: 365');
  const files: Record<string, string> = {
    'logs-20260101T000000.jsonl': mixedLog(),
    'logs-20260601T000000.jsonl': mixedLog(),
    'logs-20260601T000000-1.jsonl': recordLine({ timestamp: daysAgo(5) }),
    'logs.jsonl.1': mixedLog(),
  };
  for (const [name, content] of Object.entries(files)) {
    await writeText(join(setup.logDirectory, name), Buffer.from(content, 'latin1'));
  }
  await writeText(join(setup.logDirectory, 'logs.jsonl.2.gz'), gzipSync(Buffer.from(mixedLog(), 'latin1')));
  await writeText(join(setup.logDirectory, 'logs_schemas.jsonl'), SCHEMAS_FILE);

  const dryRun = await cleanup(setup, true);
  const realRun = await cleanup(setup, false);

  assert.equal(dryRun.status, 'dry_run');
  assert.equal(realRun.status, 'success');
  assert.deepEqual(deletedObject(dryRun), deletedObject(realRun));
  assert.equal(dryRun.totalDeleted, realRun.totalDeleted);
  assert.ok(realRun.totalDeleted > 0);
  assert.deepEqual(
    dryRun.files.map((file) => [file.file.name, file.action, file.tally.expired]),
    realRun.files.map((file) => [file.file.name, file.action, file.tally.expired]),
  );
  assert.deepEqual(
    dryRun.files.map((file) => [file.file.name, file.bytesBefore, file.bytesAfter]),
    realRun.files.map((file) => [file.file.name, file.bytesBefore, file.bytesAfter]),
  );
  assert.equal(cleanupResponse(dryRun).details!.bytes_freed, cleanupResponse(realRun).details!.bytes_freed);

  const again = await cleanup(setup, true);
  assert.equal(again.totalDeleted, 0);
});

// Schema names of the same length at the same offset of a refilled read buffer.
test('same-length schema names stay apart', async (t) => {
  const setup = await fixture(t, 'retention:\n  a.x: 30\n  c.z: 400');
  const shortLived = (days: number) => recordLine({ timestamp: daysAgo(days), schema_name: 'a.x' });
  const longLived = (days: number) => recordLine({ timestamp: daysAgo(days), schema_name: 'c.z' });
  await writeText(join(setup.logDirectory, 'logs-20260101T000000.jsonl'), shortLived(2));
  await writeText(join(setup.logDirectory, 'logs-20260102T000000.jsonl'), longLived(35) + shortLived(2));
  // One file larger than the ring of three 4 MiB read buffers, so the buffers are reused within it.
  const large = shortLived(2) + longLived(35).repeat(Math.ceil((14 * 1024 * 1024) / longLived(35).length));
  await writeText(join(setup.logDirectory, 'logs-20260103T000000.jsonl'), large);

  const dryRun = await cleanup(setup, true);
  const realRun = await cleanup(setup, false);

  assert.deepEqual(deletedObject(dryRun), {});
  assert.deepEqual(deletedObject(realRun), {});
  assert.equal(await readFile(join(setup.logDirectory, 'logs-20260103T000000.jsonl'), 'utf8'), large);
});

test('untouched file keeps inode and mtime', async (t) => {
  const setup = await fixture(t);
  const path = join(setup.logDirectory, 'logs.jsonl');
  await writeText(path, recordLine({ timestamp: daysAgo(5) }) + '{"bad json\n');
  const before = await stat(path);
  await new Promise((resolve) => setTimeout(resolve, 20));

  const outcome = await cleanup(setup, false);

  const after = await stat(path);
  assert.equal(outcome.files[0]!.action, 'unchanged');
  assert.equal(after.ino, before.ino);
  assert.equal(after.mtimeMs, before.mtimeMs);
  assert.equal(after.ctimeMs, before.ctimeMs);
});

test('fully expired file is removed', async (t) => {
  const setup = await fixture(t);
  const expiredPath = join(setup.logDirectory, 'logs-20250101T000000.jsonl');
  const activePath = join(setup.logDirectory, 'logs-20261201T000000.jsonl');
  await writeText(expiredPath, recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(200) }));
  await writeText(activePath, recordLine({ timestamp: daysAgo(2) }));

  const outcome = await cleanup(setup, false);

  assert.equal(outcome.files[0]!.action, 'removed');
  const visible = (await readdir(setup.logDirectory)).filter((name) => !name.startsWith('.')).sort();
  assert.deepEqual(visible, ['logs-20261201T000000.jsonl', 'logs.jsonl.lock', 'logs_cleanup.jsonl']);
  assert.equal(outcome.totalDeleted, 2);
});

test('file with malformed lines is kept', async (t) => {
  const setup = await fixture(t);
  const path = join(setup.logDirectory, 'logs.jsonl');
  await writeText(path, recordLine({ timestamp: daysAgo(300) }) + 'not json\n');

  const outcome = await cleanup(setup, false);

  assert.equal(outcome.files[0]!.action, 'rewritten');
  assert.equal(await readFile(path, 'utf8'), 'not json\n');
});

test('last line without newline is kept', async (t) => {
  const setup = await fixture(t);
  const path = join(setup.logDirectory, 'logs.jsonl');
  const kept = recordLine({ timestamp: daysAgo(1) });
  // Expired, but possibly a write in progress: it stays as it is.
  const partial = recordLine({ timestamp: daysAgo(300) }).trimEnd();
  await writeText(path, recordLine({ timestamp: daysAgo(300) }) + kept + partial);

  const outcome = await cleanup(setup, false);

  assert.equal(outcome.totalDeleted, 1);
  assert.equal(outcome.files[0]!.tally.partialTailBytes, Buffer.byteLength(partial));
  assert.equal(await readFile(path, 'utf8'), kept + partial);
});

test('CRLF and BOM are not malformed', async (t) => {
  const setup = await fixture(t);
  const path = join(setup.logDirectory, 'logs.jsonl');
  const expired = recordLine({ timestamp: daysAgo(300) }).replace('\n', '\r\n');
  const kept = recordLine({ timestamp: daysAgo(3) }).replace('\n', '\r\n');
  await writeText(path, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(expired + kept)]));

  const outcome = await cleanup(setup, false);

  assert.equal(outcome.files[0]!.tally.malformed, 0);
  assert.equal(outcome.totalDeleted, 1);
  assert.deepEqual(await readFile(path), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(kept)]));
});

test('gzip file is rewritten compressed', async (t) => {
  const setup = await fixture(t);
  const path = join(setup.logDirectory, 'logs.jsonl.3.gz');
  const content = Buffer.from(mixedLog(), 'latin1');
  await writeText(path, gzipSync(content));
  await writeText(join(setup.logDirectory, 'logs_schemas.jsonl'), SCHEMAS_FILE);

  const outcome = await cleanup(setup, false);

  const expected = referenceCleanup(content, MIXED_RETENTION);
  assert.equal(outcome.files[0]!.action, 'rewritten');
  assert.deepEqual(gunzipSync(await readFile(path)), expected.kept);
  assert.deepEqual(deletedObject(outcome), expected.deleted);
});

test('schemas file is never a segment', async (t) => {
  const setup = await fixture(t);
  await writeText(join(setup.logDirectory, 'logs_schemas.jsonl'), '{"schema_name": "x", "version": 1, "retention_days": 1, "timestamp": "2000-01-01T00:00:00Z"}\n');

  const outcome = await cleanup(setup, false);

  assert.equal(outcome.files.length, 0);
  assert.equal(outcome.totalDeleted, 0);
});

test('rewrite keeps the file mode', async (t) => {
  const setup = await fixture(t);
  const path = join(setup.logDirectory, 'logs.jsonl');
  await writeText(path, recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(3) }));
  await chmod(path, 0o640);
  const before = await stat(path);

  await cleanup(setup, false);

  const after = await stat(path);
  assert.equal(after.mode & 0o7777, 0o640);
  assert.equal(after.uid, before.uid);
  assert.equal(after.gid, before.gid);
  assert.notEqual(after.ino, before.ino);
});

test('tiny chunks give the same result', async (t) => {
  const setup = await fixture(t);
  const content = Buffer.from(mixedLog().repeat(20), 'latin1');
  const path = join(setup.logDirectory, 'logs.jsonl');
  await writeText(path, content);
  await writeText(join(setup.logDirectory, 'logs_schemas.jsonl'), SCHEMAS_FILE);

  // 64-byte reads split nearly every line across chunks and force the buffers to grow.
  const outcome = await cleanup(setup, false, { chunkBytes: 64 });

  const expected = referenceCleanup(content, MIXED_RETENTION);
  assert.deepEqual(deletedObject(outcome), expected.deleted);
  assert.deepEqual(await readFile(path), expected.kept);
});

test('overlong line is kept unscanned', async (t) => {
  const setup = await fixture(t);
  const path = join(setup.logDirectory, 'logs.jsonl');
  const overlong = recordLine({ timestamp: daysAgo(300), padding: 'x'.repeat(5000) });
  const content = recordLine({ timestamp: daysAgo(300) }) + overlong + recordLine({ timestamp: daysAgo(2) });
  await writeText(path, content);

  const outcome = await cleanup(setup, false, { chunkBytes: 256, maxLineBytes: 1024 });

  assert.equal(outcome.totalDeleted, 1);
  assert.equal(outcome.files[0]!.tally.malformedByKind['too_long'], 1);
  assert.equal(await readFile(path, 'utf8'), content.slice(content.indexOf('\n') + 1));
});

test('missing log directory is an error', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const settings = testSettings(configPath);

  await assert.rejects(
    runCleanup({ profile: defaultProfile(settings), dryRun: true, nowMs: NOW_MS }),
    (error: unknown) => {
      assert.ok(error instanceof RetentionError);
      assert.equal(error.code, ErrorCode.LOG_DIR_MISSING);
      assert.match(error.message, /audit/);
      assert.match(error.message, /'default'/);
      return true;
    },
  );
});

test('empty log directory holds zero', async (t) => {
  const setup = await fixture(t);
  await writeText(join(setup.logDirectory, 'unrelated.txt'), 'x');

  const outcome = await cleanup(setup, false);

  assert.equal(outcome.status, 'success');
  assert.equal(outcome.totalDeleted, 0);
  assert.equal(outcome.files.length, 0);
});

test('unreadable gzip fails only itself', async (t) => {
  const setup = await fixture(t);
  await writeText(join(setup.logDirectory, 'logs.jsonl.2.gz'), Buffer.from('this is not gzip'));
  await writeText(join(setup.logDirectory, 'logs.jsonl'), recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(1) }));

  const outcome = await cleanup(setup, false);

  assert.equal(outcome.status, 'error');
  assert.equal(outcome.error?.code, ErrorCode.FILE_UNREADABLE);
  assert.match(outcome.error!.message, /logs\.jsonl\.2\.gz: it is not valid gzip data/);
  assert.deepEqual(deletedObject(outcome), { 'mxcp.endpoints:1': 1 });
  assert.deepEqual(await readFile(join(setup.logDirectory, 'logs.jsonl.2.gz')), Buffer.from('this is not gzip'));
});

// Small: gunzip stops while the file is still being read. Large: the read has ended when it stops.
for (const [label, firstMemberLines] of [
  ['small', 1],
  ['large', 20_000],
] as const) {
  test(`gzip with trailing bytes is kept, ${label}`, async (t) => {
    const setup = await fixture(t);
    const path = join(setup.logDirectory, 'logs.jsonl.2.gz');
    const expired = Array.from({ length: firstMemberLines }, () => recordLine({ timestamp: daysAgo(300) })).join('');
    const hidden = gzipSync(recordLine({ timestamp: daysAgo(1) }));
    const content = Buffer.concat([gzipSync(expired), Buffer.from('\0garbage'), hidden]);
    await writeText(path, content);

    const dryRun = await cleanup(setup, true);
    const realRun = await cleanup(setup, false);

    assert.equal(dryRun.error?.code, ErrorCode.FILE_UNREADABLE);
    assert.equal(realRun.error?.code, ErrorCode.FILE_UNREADABLE);
    assert.match(realRun.error!.message, /logs\.jsonl\.2\.gz: it has bytes after the end of its gzip data/);
    assert.deepEqual(await readFile(path), content);
  });
}

test('symbolic link is skipped', async (t) => {
  const setup = await fixture(t);
  const target = join(setup.directory, 'elsewhere.jsonl');
  await writeText(target, recordLine({ timestamp: daysAgo(300) }));
  await writeText(join(setup.logDirectory, 'logs.jsonl.1'), recordLine({ timestamp: daysAgo(1) }));
  await symlink(target, join(setup.logDirectory, 'logs.jsonl'));

  const outcome = await cleanup(setup, false);

  assert.equal(outcome.totalDeleted, 0);
  assert.deepEqual(outcome.skipped.map((skipped) => skipped.name), ['logs.jsonl']);
  assert.equal((await readFile(target, 'utf8')).length > 0, true);
});

test('leftover temporary file is removed', async (t) => {
  const setup = await fixture(t);
  const leftover = join(setup.logDirectory, `.logs.jsonl.123-abc${TEMPORARY_SUFFIX}`);
  await writeText(leftover, 'half a copy');
  await writeText(join(setup.logDirectory, 'logs.jsonl'), recordLine({ timestamp: daysAgo(1) }));

  const outcome = await cleanup(setup, false);

  assert.deepEqual(outcome.leftoversRemoved, [`.logs.jsonl.123-abc${TEMPORARY_SUFFIX}`]);
  assert.ok(!(await readdir(setup.logDirectory)).some((name) => name.endsWith(TEMPORARY_SUFFIX)));
});

test('leftover index temporary file is removed', async (t) => {
  const setup = await fixture(t);
  // What a crash during an index save leaves: the index's name, the saving process's PID and a random part, .tmp.
  const leftover = '.logs.jsonl.audit-retention-index.json.123-0123456789ab.tmp';
  const inProgress = '.logs.jsonl.audit-retention-index.json.456-0123456789ab.tmp';
  // Earlier versions named it by the PID alone.
  const olderLeftover = '.logs.jsonl.audit-retention-index.json.789.tmp';
  const lookAlike = '.logs.jsonl.audit-retention-index.json.bak';
  const elevenMinutesAgo = new Date(Date.now() - 11 * 60 * 1000);
  for (const name of [leftover, inProgress, olderLeftover, lookAlike]) {
    await writeText(join(setup.logDirectory, name), '{"format":');
    if (name !== inProgress) {
      await utimes(join(setup.logDirectory, name), elevenMinutesAgo, elevenMinutesAgo);
    }
  }
  await writeText(join(setup.logDirectory, 'logs.jsonl'), recordLine({ timestamp: daysAgo(1) }));

  const outcome = await cleanup(setup, false);

  assert.deepEqual([...outcome.leftoversRemoved].sort(), [leftover, olderLeftover].sort());
  const names = await readdir(setup.logDirectory);
  assert.ok(!names.includes(leftover));
  assert.ok(!names.includes(olderLeftover));
  // A younger one may belong to a dry run saving right now, which takes no run lock.
  assert.ok(names.includes(inProgress));
  assert.ok(names.includes(lookAlike));
});

test('numeric epoch timestamps with a custom field', async (t) => {
  const setup = await fixture(t, 'timestamp_field: time\ntimestamp_unit: s');
  const path = join(setup.logDirectory, 'logs.jsonl');
  const expiredSeconds = (NOW_MS - 91 * 86_400_000) / 1000;
  const keptSeconds = (NOW_MS - 89 * 86_400_000) / 1000;
  await writeText(path, `{"level":30,"time":${expiredSeconds},"msg":"old"}\n{"level":30,"time":${keptSeconds}.5,"msg":"new"}\n`);

  const outcome = await cleanup(setup, false);

  assert.deepEqual(deletedObject(outcome), { unknown: 1 });
  assert.equal(await readFile(path, 'utf8'), `{"level":30,"time":${keptSeconds}.5,"msg":"new"}\n`);
});

test('disabled profile is skipped', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = join(directory, 'audit-retention.yml');
  await writeFile(configPath, 'profiles:\n  staging:\n    audit:\n      enabled: false\n');
  const settings = testSettings(configPath);

  const outcome = await runCleanup({ profile: settings.profiles.get('staging')!, dryRun: false, nowMs: NOW_MS });

  assert.equal(outcome.status, 'skipped');
  assert.equal(outcome.files.length, 0);
});

for (const awaitScanHelper of [true, false]) {
  test(`helper thread gives same result${awaitScanHelper ? '' : ', while it starts'}`, async (t) => {
    const realRun = await helperRunMatchesReference(t, { awaitScanHelper });
    // A file under DIRECT_WRITE_MIN_BYTES is rewritten through the page cache.
    assert.equal(realRun.files[0]!.directBytes, 0);
  });
}

test('direct writes give same result', async (t) => {
  const setup = await fixture(t);
  if (!(await directWritesOrSkip(t, setup.directory))) {
    return;
  }

  const realRun = await helperRunMatchesReference(t, { awaitScanHelper: true, directWriteMinBytes: 0 }, setup);

  // Every whole page but the last goes directly; only a partial last page needs the page cache.
  const { bytesAfter, directBytes } = realRun.files[0]!;
  assert.ok(directBytes! > bytesAfter - 2 * 4096, `${directBytes} of ${bytesAfter} bytes written directly`);
});

test('direct writes start at the threshold size', async (t) => {
  const setup = await fixture(t);
  if (!(await directWritesOrSkip(t, setup.directory))) {
    return;
  }
  // Two segments of equal size, each with one expired record among 100 kept ones.
  const segment = recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(1), padding: 'p'.repeat(200) }).repeat(100);
  await writeText(join(setup.logDirectory, 'logs-20261101T000000.jsonl'), segment);
  await writeText(join(setup.logDirectory, 'logs-20261102T000000.jsonl'), segment);
  const segmentBytes = Buffer.byteLength(segment);

  const atThreshold = await cleanup(setup, false, { directWriteMinBytes: segmentBytes });
  await writeText(join(setup.logDirectory, 'logs-20261101T000000.jsonl'), segment);
  await writeText(join(setup.logDirectory, 'logs-20261102T000000.jsonl'), segment);
  const belowThreshold = await cleanup(setup, false, { directWriteMinBytes: segmentBytes + 1 });

  assert.ok(atThreshold.files.every((file) => file.action === 'rewritten' && file.directBytes! > 0));
  assert.ok(belowThreshold.files.every((file) => file.action === 'rewritten' && file.directBytes === 0));
});

async function helperRunMatchesReference(
  t: TestContext,
  overrides: { awaitScanHelper: boolean; directWriteMinBytes?: number },
  setup?: Fixture,
): Promise<CleanupOutcome> {
  setup ??= await fixture(t);
  const content = Buffer.from(mixedLog().repeat(3000), 'latin1');
  const path = join(setup.logDirectory, 'logs.jsonl');
  await writeText(path, content);
  await writeText(join(setup.logDirectory, 'logs_schemas.jsonl'), SCHEMAS_FILE);

  // 1 MiB chunks of a 6 MiB file. Once the helper has started, every chunk is split between the two threads.
  // Before that, this thread scans alone and copies deleted lines for the helper's digest.
  const dryRun = await cleanup(setup, true, { chunkBytes: 1024 * 1024, scanHelper: true, ...overrides });
  const realRun = await cleanup(setup, false, { chunkBytes: 1024 * 1024, scanHelper: true, ...overrides });

  const expected = referenceCleanup(content, MIXED_RETENTION);
  assert.deepEqual(deletedObject(dryRun), expected.deleted);
  assert.deepEqual(deletedObject(realRun), expected.deleted);
  assert.equal(realRun.files[0]!.tally.malformed, 5 * 3000);
  assert.deepEqual(await readFile(path), expected.kept);
  // With the helper, the digest of deleted lines is computed on its own thread from shared memory.
  const history = JSON.parse(await readFile(join(setup.logDirectory, 'logs_cleanup.jsonl'), 'utf8'));
  assert.equal(history.deleted_sha256, createHash('sha256').update(expected.deletedLines).digest('hex'));
  return realRun;
}

test('billion-day retention keeps everything', async (t) => {
  const setup = await fixture(t, 'retention:\n  debug.logs: 1000000000');
  const path = join(setup.logDirectory, 'logs.jsonl');
  await writeText(path, recordLine({ timestamp: daysAgo(300), schema_name: 'debug.logs' }) + recordLine({ timestamp: daysAgo(300) }));

  const outcome = await cleanup(setup, false);
  const response = cleanupResponse(outcome);

  assert.deepEqual(deletedObject(outcome), { 'mxcp.endpoints:1': 1 });
  assert.equal(response.details?.cutoffs['debug.logs:1']?.cutoff, null);
  assert.equal(response.details?.cutoffs['debug.logs:1']?.retention_days, 1000000000);
});

test('gzip overlong line is kept', async (t) => {
  const setup = await fixture(t);
  const path = join(setup.logDirectory, 'logs.jsonl.1.gz');
  const overlong = recordLine({ timestamp: daysAgo(300), padding: 'x'.repeat(5000) });
  const kept = recordLine({ timestamp: daysAgo(2) });
  await writeText(path, gzipSync(recordLine({ timestamp: daysAgo(300) }) + overlong + kept));

  const outcome = await cleanup(setup, false, { chunkBytes: 256, maxLineBytes: 1024 });

  assert.equal(outcome.status, 'success');
  assert.equal(outcome.totalDeleted, 1);
  assert.equal(outcome.files[0]!.tally.malformedByKind['too_long'], 1);
  assert.equal(gunzipSync(await readFile(path)).toString(), overlong + kept);
});

test('dry and real details agree', async (t) => {
  const setup = await fixture(t);
  const partialPath = join(setup.logDirectory, 'logs.jsonl.1');
  const markPath = join(setup.logDirectory, 'logs.jsonl.2');
  await writeText(partialPath, recordLine({ timestamp: daysAgo(1) }) + '{"partial": tr');
  await writeText(markPath, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(recordLine({ timestamp: daysAgo(300) }))]));

  const dryRun = cleanupResponse(await cleanup(setup, true)).details!;
  const realRun = cleanupResponse(await cleanup(setup, false)).details!;

  assert.deepEqual(dryRun.partial_last_lines, ['logs.jsonl.1']);
  assert.deepEqual(realRun.partial_last_lines, dryRun.partial_last_lines);
  assert.equal(realRun.bytes_freed, dryRun.bytes_freed);
  assert.deepEqual(realRun.files_removed, ['logs.jsonl.2']);
});

test('layout classifies every file name', async (t) => {
  const setup = await fixture(t);
  const names = [
    'logs.jsonl',
    'logs-20260101T000000.jsonl',
    'logs-20260101T000000-2.jsonl',
    'logs-20251201T000000.jsonl.gz',
    'logs.jsonl.1',
    'logs.jsonl.2.gz',
    'logs.jsonl-20260101',
    'logs.jsonl-20260102.gz',
    'logs.jsonl.3.xz',
    'logs_schemas.jsonl',
    'logs_cleanup.jsonl',
    'logs.jsonl.lock',
    'other.jsonl',
    `.logs.jsonl.1-abc${TEMPORARY_SUFFIX}`,
  ];
  for (const name of names) {
    await writeText(join(setup.logDirectory, name), '');
  }

  const layout = await discoverLayout(join(setup.logDirectory, 'logs.jsonl'), 'default');

  assert.deepEqual(
    layout.files.map((file) => [file.name, file.role, file.gzip, file.active]),
    [
      ['logs.jsonl.2.gz', 'rotated', true, false],
      ['logs.jsonl.1', 'rotated', false, false],
      ['logs.jsonl-20260101', 'rotated', false, false],
      ['logs.jsonl-20260102.gz', 'rotated', true, false],
      ['logs-20251201T000000.jsonl.gz', 'segment', true, false],
      ['logs-20260101T000000.jsonl', 'segment', false, false],
      ['logs-20260101T000000-2.jsonl', 'segment', false, true],
      ['logs.jsonl', 'single', false, false],
    ],
  );
  assert.deepEqual(layout.skipped.map((skipped) => skipped.name), ['logs.jsonl.3.xz']);
});
