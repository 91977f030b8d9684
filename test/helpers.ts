/** Shared fixtures: temporary log directories, record lines, settings and the CLI as a child process. */

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { isUtf8 } from 'node:buffer';
import { constants } from 'node:fs';
import { mkdtemp, mkdir, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

import { loadSettings, type ProfileSettings, type Settings } from '../src/config/load.js';
import { allocateStagingBuffers } from '../src/core/staged-output.js';
import { parseIsoString } from '../src/core/timestamp.js';

/** Root of the compiled project: tests run from dist/test. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The installed command, which runs the bundled command line (dist/cli) that the build made. */
export const CLI_PATH = join(PROJECT_ROOT, 'dist', 'src', 'bin.cjs');
/** A cleanup process that writes every copy directly, as the CLI does only for files of 64 MiB or more; see cleanup-child.ts. */
export const DIRECT_CLEANUP_PATH = join(PROJECT_ROOT, 'dist', 'test', 'cleanup-child.js');

/** Returns the bytes that a run of DIRECT_CLEANUP_PATH wrote directly, from its stderr. */
export function directBytesOf(stderr: string): number {
  const match = /^direct_bytes (\d+)$/m.exec(stderr);
  assert.ok(match !== null, `no direct_bytes line in: ${stderr}`);
  return Number(match[1]);
}

/** The clock of most tests. */
export const NOW = '2026-12-04T12:00:00.000Z';
export const NOW_MS = Date.parse(NOW);
export const DAY_MS = 86_400_000;

/** Creates a temporary directory that is removed when the test ends. */
export async function temporaryDirectory(t: TestContext, prefix = 'audit-retention-'): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

export interface RecordFields {
  timestamp?: unknown;
  schema_name?: unknown;
  schema_version?: unknown;
  [field: string]: unknown;
}

let recordCounter = 0;

/** One MXCP-style record line with a line feed, serialized like MXCP's writer (", " and ": "). */
export function recordLine(fields: RecordFields): string {
  const record = {
    schema_name: 'mxcp.endpoints',
    schema_version: 1,
    record_id: `record-${++recordCounter}`,
    operation_type: 'tool',
    operation_name: 'get_user',
    operation_status: 'success',
    ...fields,
  };
  return `${JSON.stringify(record).replace(/","/g, '", "').replace(/":"/g, '": "')}\n`;
}

/** ISO timestamp `days` days before NOW, plus `extraMs`. */
export function daysAgo(days: number, extraMs = 0): string {
  return new Date(NOW_MS - days * DAY_MS + extraMs).toISOString();
}

export async function writeText(path: string, content: string | Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
}

/** Writes a config file with one profile `default` whose log is `audit/logs.jsonl`, plus `extraAudit` lines. */
export async function writeConfig(directory: string, extraAudit = '', extraTop = ''): Promise<string> {
  const path = join(directory, 'audit-retention.yml');
  const audit = extraAudit
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => `      ${line}`)
    .join('\n');
  await writeText(
    path,
    `${extraTop}profiles:\n  default:\n    audit:\n      enabled: true\n      path: audit/logs.jsonl\n${audit}\n`,
  );
  return path;
}

/** Settings as the service loads them, with the test clock and silent logs. */
export function testSettings(configPath: string, env: Record<string, string> = {}): Settings {
  return loadSettings({ configPath, env: { AUDIT_RETENTION_NOW: NOW, LOG_LEVEL: 'silent', ...env } });
}

export function defaultProfile(settings: Settings): ProfileSettings {
  return settings.profiles.get(settings.defaultProfile!)!;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a child process. */
export function runCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return runProcess(process.execPath, [CLI_PATH, ...args], options);
}

/** Runs `command` with the test clock and a minimal environment, and collects its output. */
export function runProcess(command: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? PROJECT_ROOT,
      env: { PATH: process.env['PATH'] ?? '', AUDIT_RETENTION_NOW: NOW, ...options.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** Retention by schema name for the reference model; other names get `defaultDays`. */
export interface ReferenceRetention {
  bySchema: Record<string, number | null>;
  defaultDays: number;
  timestampField?: string;
}

/**
 * An independent model of the retention rule, built on JSON.parse and Date.parse:
 * returns the bytes that must remain and the deletions per schema key. Lines the
 * model cannot judge are kept, as the contract requires.
 */
export function referenceCleanup(
  content: Buffer,
  retention: ReferenceRetention,
  nowMs = NOW_MS,
): { kept: Buffer; deleted: Record<string, number>; deletedLines: Buffer } {
  const keptParts: Buffer[] = [];
  const deletedParts: Buffer[] = [];
  const deleted: Record<string, number> = {};
  let start = 0;
  let first = true;
  while (start < content.length) {
    const newline = content.indexOf(0x0a, start);
    if (newline < 0) {
      keptParts.push(content.subarray(start));
      break;
    }
    let line = content.subarray(start, newline);
    let prefix: Buffer = Buffer.alloc(0);
    if (first && line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf) {
      prefix = line.subarray(0, 3);
      line = line.subarray(3);
    }
    first = false;

    const key = expiredKey(line, retention, nowMs);
    if (key === null) {
      keptParts.push(content.subarray(start, newline + 1));
    } else {
      deleted[key] = (deleted[key] ?? 0) + 1;
      keptParts.push(prefix);
      deletedParts.push(content.subarray(start + prefix.length, newline + 1));
    }
    start = newline + 1;
  }
  return { kept: Buffer.concat(keptParts), deleted, deletedLines: Buffer.concat(deletedParts) };
}

function expiredKey(line: Buffer, retention: ReferenceRetention, nowMs: number): string | null {
  if (!isUtf8(line)) return null;
  let value: unknown;
  try {
    value = JSON.parse(line.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const record = value as Record<string, unknown>;
  const stamp = record[retention.timestampField ?? 'timestamp'];
  const instant = typeof stamp === 'number' ? Math.floor(stamp) : typeof stamp === 'string' ? parseIsoString(stamp) : NaN;
  if (Number.isNaN(instant)) return null;

  const name = typeof record['schema_name'] === 'string' && record['schema_name'] !== '' ? record['schema_name'] : null;
  const version = Number.isSafeInteger(record['schema_version']) ? (record['schema_version'] as number) : 1;
  const days = name === null ? retention.defaultDays : (retention.bySchema[name] === undefined ? retention.defaultDays : retention.bySchema[name]!);
  if (days === null || instant >= nowMs - days * DAY_MS) return null;
  return name === null ? 'unknown' : `${name}:${version}`;
}

/**
 * Creates a directory `audit` on a fresh tmpfs of `sizeKiB`, inside a temporary
 * directory that is unmounted and removed when the test ends. Returns null where
 * mounting is not permitted (not root), and the caller skips.
 */
export async function smallFileSystem(t: TestContext, sizeKiB: number): Promise<{ directory: string; logDirectory: string } | null> {
  const directory = await mkdtemp(join(tmpdir(), 'audit-retention-full-'));
  const logDirectory = join(directory, 'audit');
  await mkdir(logDirectory);
  let mounted = false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k`, 'tmpfs', logDirectory], { stdio: 'ignore' });
    mounted = true;
  } catch {
    // Not permitted here; the caller skips.
  }
  t.after(async () => {
    if (mounted) execFileSync('umount', ['-l', logDirectory]);
    await rm(directory, { recursive: true, force: true });
  });
  return mounted ? { directory, logDirectory } : null;
}

/** Returns a small deterministic generator (mulberry32) of numbers in [0, 1), so a seed repeats a run. */
export function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), 1 | state);
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Returns true when the file system of `directory` takes a direct write of one page from a staging buffer. */
export async function supportsDirectWrites(directory: string): Promise<boolean> {
  const page = allocateStagingBuffers()?.[0];
  if (page === undefined) {
    return false;
  }

  const probePath = join(directory, '.direct-write-probe');
  const probe = await open(probePath, constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT, 0o600).catch(() => null);
  if (probe === null) {
    return false;
  }
  try {
    return (await probe.write(page, 0, 4096, 0)).bytesWritten === 4096;
  } catch {
    return false;
  } finally {
    await probe.close();
    await rm(probePath, { force: true });
  }
}

/** Returns true where the file system of `directory` takes direct writes, or skips the test and returns false. */
export async function directWritesOrSkip(t: TestContext, directory: string): Promise<boolean> {
  if (!(await supportsDirectWrites(directory))) {
    t.skip('this file system rejects O_DIRECT');
    return false;
  }
  return true;
}
