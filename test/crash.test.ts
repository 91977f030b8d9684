/**
 * Crash harness: kills the cleanup CLI with SIGKILL at random instants, then runs
 * it again, and checks after each kill that no kept record was lost or duplicated.
 *
 * The log has a fully expired segment, which the cleanup removes, and a segment of
 * a few MB whose expired records lie between 30 % and 60 % of its bytes. Kills thus
 * land in the scan before any copy, in the copy, in the fsync and rename, and after it.
 * Every second kill hits a run on a warm scan index, left by a dry run, so that its
 * scan stops after the last expired record and copies the rest undecided. Half of
 * the kills hit a process that writes its copy directly instead of through the page
 * cache, as the CLI does for files of 64 MiB or more.
 * Before each kill the harness stops the process (SIGSTOP) and records the phase
 * from its open descriptors and the files on disk.
 *
 * CRASH_ITERATIONS sets the number of kills (default 50); CRASH_SEED fixes the
 * random kill instants, for replaying a failure.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readlinkSync } from 'node:fs';
import { readdir, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { TEMPORARY_SUFFIX, discoverLayout } from '../src/core/layout.js';
import {
  CLI_PATH,
  DIRECT_CLEANUP_PATH,
  NOW,
  daysAgo,
  directBytesOf,
  randomSource,
  recordLine,
  referenceCleanup,
  runCli,
  runProcess,
  supportsDirectWrites,
  temporaryDirectory,
  writeConfig,
} from './helpers.js';

const ITERATIONS = Number(process.env['CRASH_ITERATIONS'] ?? 50);
const SEED = Number(process.env['CRASH_SEED'] ?? Date.now() % 1_000_000);

/** Size of the large segment, in bytes: more than one 4 MiB read, so reads, scans and copies overlap. */
const LARGE_SEGMENT_BYTES = 6 * 1024 * 1024;
const RETENTION_DAYS = 30;

/**
 * Where a kill landed, in order: before any log file was opened, while the fully
 * expired segment was read and removed, while the large segment was read and
 * scanned before its copy began, and during the copy. `fsync/rename` covers the
 * fsync, the wait for the lock, the final tail scan and the rename. Then come the
 * steps after the rename (directory fsync, history, exit) and the exited process.
 */
type Phase = 'startup' | 'expired segment' | 'scan' | 'copy' | 'fsync/rename' | 'after rename' | 'finished';

interface Template {
  smallName: string;
  largeName: string;
  small: Buffer;
  large: Buffer;
  /** The large segment as a complete cleanup leaves it. */
  largeCleaned: Buffer;
  /** `seq` of every record within retention. */
  kept: Set<string>;
}

function buildTemplate(): Template {
  let small = '';
  for (let index = 0; index < 200; index++) {
    small += recordLine({ seq: `s-${index}`, timestamp: daysAgo(90) });
  }

  const kept = new Set<string>();
  const parts: string[] = [];
  let bytes = 0;
  for (let index = 0; bytes < LARGE_SEGMENT_BYTES; index++) {
    const expired = bytes > LARGE_SEGMENT_BYTES * 0.3 && bytes < LARGE_SEGMENT_BYTES * 0.6 && index % 3 === 0;
    const seq = `l-${index}`;
    const line = recordLine({ seq, timestamp: daysAgo(expired ? 60 : 1), padding: 'p'.repeat(400) });
    parts.push(line);
    bytes += Buffer.byteLength(line);
    if (!expired) kept.add(seq);
  }
  const large = Buffer.from(parts.join(''));
  const largeCleaned = referenceCleanup(large, { bySchema: {}, defaultDays: RETENTION_DAYS }).kept;
  return { smallName: 'logs-20261001T000000.jsonl', largeName: 'logs-20261101T000000.jsonl', small: Buffer.from(small), large, largeCleaned, kept };
}

/** Paths the process has open, as /proc shows them; an unlinked file ends with " (deleted)". */
function openPaths(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        return [readlinkSync(`/proc/${pid}/fd/${fd}`)];
      } catch {
        return [];
      }
    });
  } catch {
    return [];
  }
}

async function readOrNull(path: string): Promise<Buffer | null> {
  return readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
}

async function temporaries(directory: string): Promise<{ name: string; size: number }[]> {
  const names = (await readdir(directory)).filter((name) => name.endsWith(TEMPORARY_SUFFIX));
  return Promise.all(names.map(async (name) => ({ name, size: (await stat(join(directory, name))).size })));
}

async function layDown(directory: string, template: Template): Promise<void> {
  await rm(directory, { recursive: true, force: true });
  await mkdir(directory);
  await writeFile(join(directory, template.smallName), template.small);
  await writeFile(join(directory, template.largeName), template.large);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((left, right) => left - right);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Which process a kill hits: the CLI, whose copies of this test's small files go through the page cache, or one that writes directly. */
type WritePath = 'page cache' | 'direct';

function spawnCleanup(configPath: string, writePath: WritePath = 'page cache'): ChildProcess {
  const args = writePath === 'direct' ? [DIRECT_CLEANUP_PATH, configPath] : [CLI_PATH, 'cleanup', '--config', configPath];
  return spawn(process.execPath, args, { env: { PATH: process.env['PATH'] ?? '', AUDIT_RETENTION_NOW: NOW }, stdio: 'ignore' });
}

/**
 * Polls /proc every millisecond until the process opens a log file; returns false
 * when it exits first. Timing from that moment leaves out Node's start-up time,
 * which varies far more than the cleanup itself.
 */
async function logFileOpened(child: ChildProcess, logDirectory: string, exit: Promise<unknown>): Promise<boolean> {
  let exited = false;
  void exit.then(() => (exited = true));
  while (!exited) {
    if (openPaths(child.pid!).some((path) => path.startsWith(logDirectory) && path.endsWith('.jsonl'))) {
      return true;
    }
    await sleep(1);
  }
  return false;
}

/** Time from the first open of a log file to the exit of a complete run, in ms. */
async function calibrate(configPath: string, logDirectory: string, template: Template): Promise<number> {
  await layDown(logDirectory, template);
  const child = spawnCleanup(configPath);
  const exit = once(child, 'exit');
  assert.ok(await logFileOpened(child, logDirectory, exit), 'the calibration run exited before it opened a log file');
  const openedAt = performance.now();
  const [code] = (await exit) as [number | null];
  assert.equal(code, 0);
  return performance.now() - openedAt;
}

/** Starts a cleanup, stops it `delayMs` after it opened its first log file, records the phase it was in, and kills it. */
async function killDuringCleanup(
  configPath: string,
  logDirectory: string,
  template: Template,
  delayMs: number,
  writePath: WritePath,
): Promise<{ phase: Phase; completeRunMs: number | null }> {
  const child = spawnCleanup(configPath, writePath);
  const exit = once(child, 'exit');
  const opened = await logFileOpened(child, logDirectory, exit);
  const openedAt = performance.now();
  const finished = !opened || (await Promise.race([exit.then(() => true), sleep(delayMs).then(() => false)]));
  if (finished) {
    await exit;
    return { phase: 'finished', completeRunMs: opened ? performance.now() - openedAt : null };
  }
  return { phase: await stopAndKill(child, exit, logDirectory, template), completeRunMs: null };
}

/** Stops the process, reads its phase from /proc and the log directory, then kills it. */
async function stopAndKill(child: ChildProcess, exit: Promise<unknown>, logDirectory: string, template: Template): Promise<Phase> {
  child.kill('SIGSTOP');
  const descriptors = openPaths(child.pid!);
  const temporary = await temporaries(logDirectory);
  const large = await readOrNull(join(logDirectory, template.largeName));
  child.kill('SIGKILL');
  await exit;

  const largeTemporary = temporary.find((file) => file.name.startsWith(`.${template.largeName}.`));
  if (largeTemporary !== undefined) {
    return largeTemporary.size >= template.largeCleaned.length ? 'fsync/rename' : 'copy';
  }
  if (large !== null && large.equals(template.largeCleaned)) {
    return 'after rename';
  }
  if (temporary.length > 0 || descriptors.some((path) => path.includes(template.smallName))) {
    return 'expired segment';
  }
  if (descriptors.some((path) => path.endsWith(template.largeName))) {
    return 'scan';
  }
  return 'startup';
}

/** Checks the files right after a kill: each log file is either untouched or completely cleaned. */
async function checkAtomic(logDirectory: string, template: Template, iteration: number): Promise<void> {
  const large = await readOrNull(join(logDirectory, template.largeName));
  const small = await readOrNull(join(logDirectory, template.smallName));
  assert.ok(large !== null && (large.equals(template.large) || large.equals(template.largeCleaned)), `kill ${iteration}: large segment is neither original nor cleaned`);
  assert.ok(small === null || small.equals(template.small), `kill ${iteration}: expired segment changed without being removed`);
}

/** Checks the files after the restart: cleaned exactly, no temporary file, every line a record, each kept record once. */
async function checkRecovered(logPath: string, logDirectory: string, template: Template, iteration: number): Promise<void> {
  assert.deepEqual(await temporaries(logDirectory), [], `kill ${iteration}: temporary file left after the restart`);
  assert.equal(await readOrNull(join(logDirectory, template.smallName)), null, `kill ${iteration}: expired segment not removed`);

  const seen = new Map<string, number>();
  for (const file of (await discoverLayout(logPath, 'default')).files) {
    const content = await readFile(file.path, 'utf8');
    assert.ok(content.endsWith('\n'), `kill ${iteration}: ${file.name} ends with a partial line`);
    for (const line of content.slice(0, -1).split('\n')) {
      const seq = (JSON.parse(line) as { seq: string }).seq;
      seen.set(seq, (seen.get(seq) ?? 0) + 1);
    }
  }
  const wrong = [...template.kept].filter((seq) => seen.get(seq) !== 1);
  assert.deepEqual(wrong, [], `kill ${iteration}: kept records missing or duplicated`);
  assert.equal(seen.size, template.kept.size, `kill ${iteration}: expired records left`);
  assert.ok((await readFile(join(logDirectory, template.largeName))).equals(template.largeCleaned), `kill ${iteration}: kept bytes changed`);
}

test(`cleanup survives ${ITERATIONS} kills`, async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory, `retention_days: ${RETENTION_DAYS}`);
  const logDirectory = join(directory, 'audit');
  const logPath = join(logDirectory, 'logs.jsonl');
  const template = buildTemplate();
  const random = randomSource(SEED);

  // A complete run of the direct child first, so that kills labelled direct really hit direct writes.
  await layDown(logDirectory, template);
  const directWrites = await supportsDirectWrites(directory);
  const directRun = await runProcess(process.execPath, [DIRECT_CLEANUP_PATH, configPath]);
  assert.equal(directRun.code, 0, directRun.stderr);
  if (directWrites) {
    assert.ok(directBytesOf(directRun.stderr) > 0, 'the direct child wrote nothing directly');
  } else {
    t.diagnostic('this file system rejects O_DIRECT, so the kills labelled direct hit the page-cache path');
  }

  const durations: number[] = [];
  for (let run = 0; run < 5; run++) {
    durations.push(await calibrate(configPath, logDirectory, template));
  }
  t.diagnostic(`seed ${SEED}; complete runs took ${durations.map((duration) => duration.toFixed(0)).join(', ')} ms after the first log file was opened`);

  const strata = Array.from({ length: ITERATIONS }, (_, index) => index);
  for (let index = strata.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1));
    [strata[index], strata[other]] = [strata[other]!, strata[index]!];
  }

  const phases = new Map<Phase, number>();
  let directKills = 0;
  for (let iteration = 1; iteration <= ITERATIONS; iteration++) {
    await layDown(logDirectory, template);
    if (iteration % 2 === 0) {
      const dryRun = await runCli(['cleanup', '--dry-run', '--config', configPath]);
      assert.equal(dryRun.code, 0, `kill ${iteration}: dry run for the warm index failed: ${dryRun.stderr}`);
    }
    // Stratified over the median length of a complete run, so each phase gets kills in proportion to its length.
    const delayMs = ((strata[iteration - 1]! + random()) / ITERATIONS) * median(durations);
    // Two kills in four hit the direct path, one of them on a warm index.
    const writePath: WritePath = iteration % 4 >= 2 ? 'direct' : 'page cache';
    const { phase, completeRunMs } = await killDuringCleanup(configPath, logDirectory, template, delayMs, writePath);
    if (completeRunMs !== null && writePath === 'page cache') {
      // A run that finished before its kill shows that runs got faster: later kills come sooner.
      durations.push(completeRunMs);
    }
    phases.set(phase, (phases.get(phase) ?? 0) + 1);
    if (writePath === 'direct' && phase !== 'finished') {
      directKills += 1;
    }

    await checkAtomic(logDirectory, template, iteration);
    const restart = await runCli(['cleanup', '--config', configPath]);
    assert.equal(restart.code, 0, `kill ${iteration} (${phase}, ${delayMs.toFixed(1)} ms): restart failed: ${restart.stderr}`);
    await checkRecovered(logPath, logDirectory, template, iteration);
  }

  t.diagnostic(`median complete run at the end: ${median(durations).toFixed(0)} ms`);
  t.diagnostic(`kills by phase: ${[...phases].map(([phase, count]) => `${phase} ${count}`).join(', ')}; ${directKills} of the kills hit the direct write path`);
  const killed = ITERATIONS - (phases.get('finished') ?? 0);
  assert.ok(killed >= ITERATIONS / 2, `only ${killed} of ${ITERATIONS} runs were killed before they finished`);
});
