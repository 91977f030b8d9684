/**
 * Timed runs of one command each: wall time of the command followed by sync(1),
 * the command's peak RSS from GNU time, and the user CPU time that other
 * processes used meanwhile, which shows runs disturbed by other work. Other
 * developers share the machine, so the pause before a run first waits for them
 * to go quiet.
 */

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** GNU time, whose %M is the peak RSS in KiB of the command and of every descendant it waited for. */
const GNU_TIME = '/usr/bin/time';

/** Kernel clock ticks per second of /proc/stat (USER_HZ), read once from getconf. */
const CLOCK_TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export interface TimedRun {
  /** Wall time of the command and the sync(1) after it, in seconds. */
  seconds: number;
  peakRssKiB: number;
  /** User CPU time of the command, in seconds. */
  userSeconds: number;
  /** User CPU time of all other processes during the run, in seconds (an estimate from /proc/stat at 1/USER_HZ resolution). */
  othersUserSeconds: number;
  stdout: string;
}

export interface RunRequest {
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** File that receives the command's stdout. Without it, stdout is captured and returned. */
  stdoutPath?: string;
  /** Scratch file for GNU time's output. */
  timeFile: string;
}

/** Sums the `user` and `nice` columns of the `cpu` line of /proc/stat, in clock ticks. */
async function userTicks(): Promise<number> {
  const text = await readFile('/proc/stat', 'utf8');
  const fields = text.slice(0, text.indexOf('\n')).trim().split(/\s+/);
  return Number(fields[1]) + Number(fields[2]);
}

/** Share of one CPU that other processes may use for the machine to count as quiet. */
const QUIET_CPU_SHARE = 0.05;
/** Bytes that the data's disk may read and write per second for the machine to count as quiet. */
const QUIET_DISK_BYTES_PER_SECOND = 2 * 1024 * 1024;
const QUIET_WINDOW_MS = 1000;
/** Maximum wait for a quiet machine before a run starts anyway, in seconds. */
const QUIET_TIMEOUT_SECONDS = 300;
const SECTOR_BYTES = 512;

/** Returns the sectors read plus written so far on the block device `major:minor`, from /proc/diskstats. */
async function diskSectors(device: { major: number; minor: number } | null): Promise<number> {
  if (device === null) {
    return 0;
  }
  for (const line of (await readFile('/proc/diskstats', 'utf8')).split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (Number(fields[0]) === device.major && Number(fields[1]) === device.minor) {
      // Fields 6 and 10 (1-based) are sectors read and sectors written, in 512-byte units.
      return Number(fields[5]) + Number(fields[9]);
    }
  }
  return 0;
}

/** Returns the block device that holds `path`, or null when /proc/diskstats does not list it (tmpfs, overlay). */
export async function deviceOf(path: string): Promise<{ major: number; minor: number } | null> {
  const { dev } = await stat(path);
  const device = { major: (dev >> 8) & 0xfff, minor: (dev & 0xff) | ((dev >> 12) & 0xfff00) };
  const text = await readFile('/proc/diskstats', 'utf8');
  const listed = text.split('\n').some((line) => {
    const [major, minor] = line.trim().split(/\s+/);
    return Number(major) === device.major && Number(minor) === device.minor;
  });
  return listed ? device : null;
}

/**
 * Waits until, over a 1 s window, other processes use less than QUIET_CPU_SHARE of
 * one CPU and the disk moves less than QUIET_DISK_BYTES_PER_SECOND, for at most
 * QUIET_TIMEOUT_SECONDS. Returns the seconds waited.
 */
async function waitForQuiet(device: { major: number; minor: number } | null): Promise<number> {
  const startedAt = Date.now();
  for (;;) {
    const ticksBefore = await userTicks();
    const sectorsBefore = await diskSectors(device);
    await sleep(QUIET_WINDOW_MS);
    const cpuShare = ((await userTicks()) - ticksBefore) / CLOCK_TICKS_PER_SECOND / (QUIET_WINDOW_MS / 1000);
    const diskRate = (((await diskSectors(device)) - sectorsBefore) * SECTOR_BYTES) / (QUIET_WINDOW_MS / 1000);
    const waited = (Date.now() - startedAt) / 1000;
    if ((cpuShare < QUIET_CPU_SHARE && diskRate < QUIET_DISK_BYTES_PER_SECOND) || waited >= QUIET_TIMEOUT_SECONDS) {
      return waited;
    }
  }
}

/** Reads every byte of `paths`, so that their pages are in the page cache and recently used. */
async function readThrough(paths: readonly string[]): Promise<void> {
  const buffer = Buffer.allocUnsafe(8 * 1024 * 1024);
  for (const path of paths) {
    const file = await open(path, 'r');
    try {
      while ((await file.read(buffer, 0, buffer.length, null)).bytesRead > 0) {
        // Reading is the point; the bytes are not needed.
      }
    } finally {
      await file.close();
    }
  }
}

/** Settings of the pause before a timed run. */
export interface PauseSettings {
  seconds: number;
  /** Block device of the data, watched for other disk traffic; null to watch the CPU only. */
  device: { major: number; minor: number } | null;
  /** Files that the command reads, read once beforehand. */
  warmFiles: readonly string[];
  log: (line: string) => void;
}

/**
 * Prepares the same machine state for every timed run: flushes dirty pages, waits
 * for other processes and the disk to go quiet, reads the command's input files,
 * flushes again and sleeps. The reads matter because the guest's DAMON pages out
 * page cache that sat idle for 60 s, so a long wait would turn cached reads into
 * disk reads.
 */
export async function pause(settings: PauseSettings): Promise<void> {
  spawnSync('sync');
  const waited = await waitForQuiet(settings.device);
  if (waited > 2 * (QUIET_WINDOW_MS / 1000)) {
    settings.log(`Waited ${waited.toFixed(0)} s for other processes and the disk to go quiet.`);
  }
  await readThrough(settings.warmFiles);
  spawnSync('sync');
  await sleep(settings.seconds * 1000);
}

/** Runs the command, then sync(1). Throws when the command exits with a code other than 0. */
export async function timedRun(request: RunRequest): Promise<TimedRun> {
  const stdoutFd = request.stdoutPath === undefined ? 'pipe' : openSync(request.stdoutPath, 'w');
  const ticksBefore = await userTicks();
  const startedAt = process.hrtime.bigint();

  const child = spawn(GNU_TIME, ['-f', '%M %U', '-o', request.timeFile, '--', request.command, ...request.args], {
    env: request.env ?? process.env,
    stdio: ['ignore', stdoutFd, 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  spawnSync('sync');

  const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  const ticksAfter = await userTicks();
  if (typeof stdoutFd === 'number') {
    closeSync(stdoutFd);
  }

  const errorText = Buffer.concat(stderr).toString('utf8');
  if (exitCode !== 0) {
    throw new Error(`${request.command} ${request.args.join(' ')} failed with exit code ${exitCode}:\n${errorText.slice(-2000)}`);
  }
  // GNU time writes its own line last, after any output of the command on the same file.
  const timeLines = (await readFile(request.timeFile, 'utf8')).trim().split('\n');
  const [rssText, userText] = timeLines[timeLines.length - 1]!.split(' ');
  await rm(request.timeFile, { force: true });

  const userSeconds = Number(userText);
  return {
    seconds,
    peakRssKiB: Number(rssText),
    userSeconds,
    othersUserSeconds: Math.max(0, (ticksAfter - ticksBefore) / CLOCK_TICKS_PER_SECOND - userSeconds),
    stdout: Buffer.concat(stdout).toString('utf8'),
  };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((left, right) => left - right);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
