/**
 * Cleanup next to other processes and a full disk: real child processes, real
 * flock(1), and a real size-limited tmpfs where the test may mount one.
 */

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFile, lstat, open, readdir, readFile, rename, stat, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { gunzipSync, gzipSync } from 'node:zlib';
import { test, type TestContext } from 'node:test';

import request from 'supertest';

import { buildApp } from '../src/app.js';
import { runCleanup, type CleanupOutcome } from '../src/core/cleanup.js';
import { ErrorCode } from '../src/core/errors.js';
import { TEMPORARY_SUFFIX } from '../src/core/layout.js';
import {
  CLI_PATH,
  NOW,
  NOW_MS,
  daysAgo,
  defaultProfile,
  directWritesOrSkip,
  recordLine,
  runCli,
  smallFileSystem,
  temporaryDirectory,
  testSettings,
  writeConfig,
  writeText,
} from './helpers.js';

/** Starts a Node child that runs `source` and resolves once it prints "ready". */
async function startChild(t: TestContext, source: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', source, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    child.kill('SIGKILL');
  });
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.equal(chunk.toString().trim(), 'ready');
  return child;
}

/** Node source of a process that keeps the files named in argv open, the first for appending. */
const HOLD_OPEN = `
const fs = require('node:fs');
const [logPath, lockPath] = process.argv.slice(1);
fs.openSync(logPath, 'a');
if (lockPath) fs.openSync(lockPath, 'r');
console.log('ready');
setInterval(() => {}, 1000);
`;

async function cleanupIn(configPath: string, dryRun: boolean, lockTimeoutMs?: number, directWriteMinBytes?: number): Promise<CleanupOutcome> {
  const settings = testSettings(configPath);
  return runCleanup({ profile: defaultProfile(settings), dryRun, nowMs: NOW_MS, lockTimeoutMs, directWriteMinBytes });
}

/** The two ways a rewrite writes its copy: through the page cache (any file under 64 MiB) and directly (tmpfs takes O_DIRECT since Linux 6.6). */
const WRITE_PATHS = [
  { name: 'page cache', directWriteMinBytes: undefined },
  { name: 'direct writes', directWriteMinBytes: 0 },
];

test('writer without lock is skipped', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logPath = join(directory, 'audit', 'logs.jsonl');
  const content = recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(1) });
  await writeText(logPath, content);
  const child = await startChild(t, HOLD_OPEN, [logPath]);

  const dryRun = await cleanupIn(configPath, true);
  const realRun = await cleanupIn(configPath, false);

  assert.equal(dryRun.totalDeleted, 0);
  assert.equal(realRun.totalDeleted, 0);
  assert.equal(realRun.files[0]!.action, 'skipped');
  assert.match(realRun.files[0]!.skipReason!, new RegExp(`PID ${child.pid}`));
  assert.equal(await readFile(logPath, 'utf8'), content);
});

test('skip reason names the log lock', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const segmentPath = join(directory, 'audit', 'logs-20260101T000000.jsonl');
  await writeText(segmentPath, recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(1) }));
  await startChild(t, HOLD_OPEN, [segmentPath]);

  const realRun = await cleanupIn(configPath, false);

  assert.equal(realRun.files[0]!.action, 'skipped');
  assert.ok(realRun.files[0]!.skipReason!.includes(`without the lock file ${join(directory, 'audit', 'logs.jsonl.lock')};`));
});

test('writer holding the lock file is cleaned', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logPath = join(directory, 'audit', 'logs.jsonl');
  await writeText(logPath, recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(1) }));
  await writeText(`${logPath}.lock`, '');
  await startChild(t, HOLD_OPEN, [logPath, `${logPath}.lock`]);

  const realRun = await cleanupIn(configPath, false);

  assert.equal(realRun.files[0]!.action, 'rewritten');
  assert.equal(realRun.totalDeleted, 1);
});

test('copytruncate during cleanup is skipped', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logPath = join(directory, 'audit', 'logs.jsonl');
  let content = '';
  for (let index = 0; index < 2000; index++) {
    content += recordLine({ timestamp: daysAgo(index % 2 === 0 ? 300 : 1) });
  }
  await writeText(logPath, content);
  await writeText(`${logPath}.lock`, '');

  // flock(1) holds the writers' lock, so the cleanup scans and then waits before its rename.
  const holder = spawn('flock', [`${logPath}.lock`, '-c', 'echo ready; sleep 1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    holder.kill('SIGKILL');
  });
  await once(holder.stdout!, 'data');
  const running = cleanupIn(configPath, false, 10_000);

  // What logrotate's copytruncate does while the cleanup waits: copy the log aside, then empty it.
  await new Promise((resolve) => setTimeout(resolve, 300));
  await copyFile(logPath, `${logPath}.1`);
  await truncate(logPath, 0);
  const outcome = await running;

  const result = outcome.files.find((file) => file.file.name === 'logs.jsonl')!;
  assert.equal(result.action, 'skipped');
  assert.match(result.skipReason!, /truncated/);
  assert.equal((await stat(logPath)).size, 0);
  assert.ok(!(await readdir(join(directory, 'audit'))).some((name) => name.endsWith(TEMPORARY_SUFFIX)));
});

test('symlink over the temporary copy is refused', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logDirectory = join(directory, 'audit');
  const logPath = join(logDirectory, 'logs.jsonl');
  let content = '';
  for (let index = 0; index < 2000; index++) {
    content += recordLine({ timestamp: daysAgo(index % 2 === 0 ? 300 : 1) });
  }
  await writeText(logPath, content);
  const victimPath = join(directory, 'victim.txt');
  const victim = 'not a log\n'.repeat(1000);
  await writeText(victimPath, victim);

  // While the cleanup waits for the lock, another process renames a symlink to the victim over the temporary copy.
  await holdLock(t, logPath, 1);
  const running = cleanupIn(configPath, false, 10_000);
  let temporaryName: string | undefined;
  while (temporaryName === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    temporaryName = (await readdir(logDirectory)).find((name) => name.endsWith(TEMPORARY_SUFFIX));
  }
  await symlink(victimPath, join(logDirectory, 'swap'));
  await rename(join(logDirectory, 'swap'), join(logDirectory, temporaryName));
  const outcome = await running;

  const result = outcome.files.find((file) => file.file.name === 'logs.jsonl')!;
  assert.equal(result.action, 'skipped');
  assert.match(result.skipReason!, /temporary copy was replaced/);
  assert.equal(await readFile(logPath, 'utf8'), content);
  assert.ok((await lstat(logPath)).isFile());
  assert.equal(await readFile(victimPath, 'utf8'), victim);
});

/** Starts flock(1) holding the writers' lock of `logPath` for `seconds`; resolves once it holds it. */
async function holdLock(t: TestContext, logPath: string, seconds: number): Promise<void> {
  const holder = spawn('flock', [`${logPath}.lock`, '-c', `echo ready; sleep ${seconds}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    holder.kill('SIGKILL');
  });
  await once(holder.stdout!, 'data');
}

/**
 * Overwrites the start of `path` with `bytes` in place and restores the mtime to the
 * nanosecond with touch(1) (utimes from Node.js rounds it), as a careless editor could.
 */
async function editInPlace(path: string, bytes: Buffer): Promise<void> {
  const reference = `${path}.times`;
  execFileSync('touch', ['-r', path, reference]);
  const handle = await open(path, 'r+');
  await handle.write(bytes, 0, bytes.length, 0);
  await handle.close();
  execFileSync('touch', ['-r', reference, path]);
  await unlink(reference);
}

for (const [label, name, dryRunFirst] of [
  ['indexed expired file', 'logs.jsonl.1', true],
  ['expired gzip file', 'logs.jsonl.2.gz', false],
] as const) {
  test(`edit under lock wait keeps ${label}`, async (t) => {
    const directory = await temporaryDirectory(t);
    const configPath = await writeConfig(directory);
    const logDirectory = join(directory, 'audit');
    const path = join(logDirectory, name);
    const expired = recordLine({ timestamp: daysAgo(300) });
    const edited = expired.replace(daysAgo(300), daysAgo(1));
    const plain = expired + recordLine({ timestamp: daysAgo(300) });
    await writeText(path, name.endsWith('.gz') ? gzipSync(plain) : plain);
    assert.equal(edited.length, expired.length);
    await writeText(join(logDirectory, 'logs.jsonl'), recordLine({ timestamp: daysAgo(1) }));
    if (dryRunFirst) {
      await cleanupIn(configPath, true);
    }

    // The cleanup plans, then waits for the lock while the first record is edited to yesterday.
    await holdLock(t, join(logDirectory, 'logs.jsonl'), 1);
    const running = cleanupIn(configPath, false, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const editedPlain = edited + recordLine({ timestamp: daysAgo(300) });
    await editInPlace(path, name.endsWith('.gz') ? gzipSync(editedPlain) : Buffer.from(edited));
    const outcome = await running;

    const result = outcome.files.find((file) => file.file.name === name)!;
    assert.notEqual(result.action, 'removed');
    const content = await readFile(path);
    assert.ok((name.endsWith('.gz') ? gunzipSync(content) : content).toString().includes(edited));
  });
}

test('lock held too long answers locked', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logDirectory = join(directory, 'audit');
  const first = join(logDirectory, 'logs-20260101T000000.jsonl');
  const second = join(logDirectory, 'logs-20260201T000000.jsonl');
  const content = recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(1) });
  await writeText(first, content);
  await writeText(second, content);
  await writeText(join(logDirectory, 'logs.jsonl.lock'), '');
  const holder = spawn('flock', [join(logDirectory, 'logs.jsonl.lock'), '-c', 'echo ready; sleep 5'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    holder.kill('SIGKILL');
  });
  await once(holder.stdout!, 'data');

  const outcome = await cleanupIn(configPath, false, 200);

  assert.equal(outcome.status, 'error');
  assert.equal(outcome.error?.code, ErrorCode.LOG_LOCKED);
  assert.match(outcome.error!.message, /^Log file locked: .*logs-20260101T000000\.jsonl/);
  assert.deepEqual(outcome.notProcessed, ['logs-20260201T000000.jsonl']);
  assert.equal(await readFile(first, 'utf8'), content);
  assert.equal(await readFile(second, 'utf8'), content);
});


/**
 * Mounts a 2 MiB tmpfs with a configured log directory. Returns null after skipping
 * the test where none can be mounted, or where `directWriteMinBytes` selects direct
 * writes and the tmpfs rejects them (before Linux 6.6).
 */
async function fullDiskFixture(t: TestContext, directWriteMinBytes: number | undefined): Promise<{ directory: string; logDirectory: string; configPath: string } | null> {
  const fileSystem = await smallFileSystem(t, 2048);
  if (fileSystem === null) {
    t.skip('mounting a tmpfs needs root; run the suite as root to test a real full disk');
    return null;
  }

  if (directWriteMinBytes !== undefined && !(await directWritesOrSkip(t, fileSystem.logDirectory))) {
    return null;
  }
  return { ...fileSystem, configPath: await writeConfig(fileSystem.directory) };
}

/** Returns records of about 1 KB each, the first 100 expired and the rest kept. */
function paddedRecords(count: number): string {
  let content = '';
  for (let index = 0; index < count; index++) {
    content += recordLine({ timestamp: daysAgo(index < 100 ? 300 : 1), padding: 'p'.repeat(1000) });
  }
  return content;
}

for (const { name, directWriteMinBytes } of WRITE_PATHS) {
  test(`full disk keeps the original, ${name}`, async (t) => {
    await fullDiskKeepsOriginal(t, directWriteMinBytes);
  });
}

async function fullDiskKeepsOriginal(t: TestContext, directWriteMinBytes: number | undefined): Promise<void> {
  const fileSystem = await fullDiskFixture(t, directWriteMinBytes);
  if (fileSystem === null) {
    return;
  }
  const { logDirectory, configPath } = fileSystem;

  // 1.3 MB of which 1.2 MB stays: the copy cannot fit beside the original in 2 MiB.
  const content = paddedRecords(1200);
  const bigPath = join(logDirectory, 'logs-20260601T000000.jsonl');
  const expiredPath = join(logDirectory, 'logs-20250101T000000.jsonl');
  await writeText(expiredPath, recordLine({ timestamp: daysAgo(400) }));
  await writeText(bigPath, content);

  const outcome = await cleanupIn(configPath, false, undefined, directWriteMinBytes);

  assert.equal(outcome.status, 'error');
  assert.equal(outcome.error?.code, ErrorCode.DISK_FULL);
  assert.match(outcome.error!.message, /could not write a temporary copy of/);
  assert.equal(await readFile(bigPath, 'utf8'), content);
  const names = await readdir(logDirectory);
  assert.ok(!names.some((name) => name.endsWith(TEMPORARY_SUFFIX)));
  // Removing a fully expired file needs no space, so it still happens.
  assert.ok(!names.includes('logs-20250101T000000.jsonl'));
  assert.deepEqual(Object.fromEntries(outcome.deletedPerSchema), { 'mxcp.endpoints:1': 1 });
}

for (const { name, directWriteMinBytes } of WRITE_PATHS) {
  test(`full disk under the lock names the write, ${name}`, async (t) => {
    await fullDiskUnderLock(t, directWriteMinBytes);
  });
}

async function fullDiskUnderLock(t: TestContext, directWriteMinBytes: number | undefined): Promise<void> {
  const fileSystem = await fullDiskFixture(t, directWriteMinBytes);
  if (fileSystem === null) {
    return;
  }
  const { directory, logDirectory, configPath } = fileSystem;
  const content = paddedRecords(600);
  const logPath = join(logDirectory, 'logs.jsonl');
  await writeText(logPath, content);
  const appended = recordLine({ timestamp: daysAgo(0), padding: 'a'.repeat(1000) }).repeat(50);
  const appendedPath = join(directory, 'appended.jsonl');
  await writeFile(appendedPath, appended);

  // A second process holds the lock while the cleanup copies the file. Then it appends kept
  // lines and fills the disk, so only the copy of the appended lines, made under the lock, fails.
  const fill = `cat "$1" >> "$2"; dd if=/dev/zero of="$3" bs=4096 2>/dev/null; true`;
  const writer = spawn('flock', [join(logDirectory, 'logs.jsonl.lock'), 'sh', '-c', `echo locked; sleep 1; ${fill}`, 'sh', appendedPath, logPath, join(logDirectory, 'fill')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => writer.kill());
  await once(writer.stdout!, 'data');

  const outcome = await cleanupIn(configPath, false, 30_000, directWriteMinBytes);

  assert.equal(outcome.status, 'error');
  assert.ok(outcome.files[0]!.lockWaitMs! > 0, 'the cleanup waited for the lock');
  assert.equal(outcome.error?.code, ErrorCode.DISK_FULL);
  assert.match(outcome.error!.message, /could not write a temporary copy of .*logs\.jsonl/);
  assert.equal(await readFile(logPath, 'utf8'), content + appended);
  assert.ok(!(await readdir(logDirectory)).some((name) => name.endsWith(TEMPORARY_SUFFIX)));
}

test('CLI exits with stderr on a full disk', async (t) => {
  const fileSystem = await smallFileSystem(t, 256);
  if (fileSystem === null) {
    t.skip('mounting a tmpfs needs root; run the suite as root to test a real full disk');
    return;
  }
  const { directory, logDirectory } = fileSystem;
  const configPath = await writeConfig(directory);
  let content = '';
  for (let index = 0; index < 200; index++) {
    content += recordLine({ timestamp: daysAgo(index % 2 === 0 ? 300 : 1), padding: 'p'.repeat(200) });
  }
  await writeText(join(logDirectory, 'logs.jsonl'), content);
  // Fill the rest, so the rewrite and every log line on stderr fail with ENOSPC.
  await writeFile(join(logDirectory, 'fill'), Buffer.alloc(256 * 1024)).catch(() => undefined);
  const stderrPath = join(logDirectory, 'stderr.txt');
  const stderr = await open(stderrPath, 'w').catch(() => null);
  assert.ok(stderr !== null, 'tmpfs keeps room for an empty file');
  t.after(() => stderr.close());

  const result = spawnSync(process.execPath, [CLI_PATH, 'cleanup', '--json', '--config', configPath], {
    env: { PATH: process.env['PATH'] ?? '', AUDIT_RETENTION_NOW: NOW },
    stdio: ['ignore', 'pipe', stderr.fd],
    timeout: 30_000,
  });

  assert.equal(result.error, undefined, 'the CLI exits by itself');
  assert.equal(result.status, 1);
  assert.equal((JSON.parse(result.stdout.toString()) as { code: string }).code, ErrorCode.DISK_FULL);
  assert.equal(await readFile(join(logDirectory, 'logs.jsonl'), 'utf8'), content);
});

test('HTTP cleanup answers 423 with Retry-After', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logDirectory = join(directory, 'audit');
  const content = recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(1) });
  await writeText(join(logDirectory, 'logs-20260101T000000.jsonl'), content);
  await writeText(join(logDirectory, 'logs-20260201T000000.jsonl'), content);
  await writeText(join(logDirectory, 'logs.jsonl.lock'), '');
  const holder = spawn('flock', [join(logDirectory, 'logs.jsonl.lock'), '-c', 'echo ready; sleep 5'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    holder.kill('SIGKILL');
  });
  await once(holder.stdout!, 'data');
  const app = await buildApp(testSettings(configPath));
  await app.ready();
  t.after(() => app.close());

  const response = await request(app.server).post('/cleanup?lockTimeoutMs=200').expect(423);

  assert.equal(response.headers['retry-after'], '1');
  assert.equal(response.body.status, 'error');
  assert.match(response.body.message, /^Log file locked: .*logs-20260101T000000\.jsonl/);
  assert.deepEqual(response.body.details.files_not_processed, ['logs-20260201T000000.jsonl']);
  assert.equal(await readFile(join(logDirectory, 'logs-20260101T000000.jsonl'), 'utf8'), content);
});

test('concurrent cleanup answers 409', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logDirectory = join(directory, 'audit');
  await writeText(join(logDirectory, 'logs.jsonl'), recordLine({ timestamp: daysAgo(300) }) + recordLine({ timestamp: daysAgo(1) }));
  await writeText(join(logDirectory, 'logs.jsonl.lock'), '');
  // The first cleanup waits at the writers' lock, holding the run lock of the directory.
  const holder = spawn('flock', [join(logDirectory, 'logs.jsonl.lock'), '-c', 'echo ready; sleep 2'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    holder.kill('SIGKILL');
  });
  await once(holder.stdout!, 'data');
  const app = await buildApp(testSettings(configPath));
  await app.ready();
  t.after(() => app.close());

  const first = request(app.server).post('/cleanup?lockTimeoutMs=10000').then((response) => response);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const second = await request(app.server).post('/cleanup').expect(409);
  const cli = await runCli(['cleanup', '--config', configPath]);

  assert.equal(second.body.code, 'AR_CLEANUP_RUNNING');
  assert.ok(second.headers['retry-after']);
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /already running/);
  assert.equal((await first).status, 200);
});
