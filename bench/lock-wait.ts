/**
 * Lock wait of a writer during a cleanup: a writer process appends one record at a
 * time through AuditLogWriter while the cleanup CLI rewrites a large log (1 GB by
 * default) that the writer appends to. Reports the writer's wait for the lock and
 * its append latency per append, before and during the cleanup.
 *
 *   npx tsc -p . && node dist/bench/lock-wait.js [--bytes 1G] [--fsync always|interval|none]
 *
 * The log comes from the project's generator (generateAuditLog) and is cached under
 * bench/data/lock-wait/; each run works on a fresh copy of it.
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { AuditLogWriter, type FsyncPolicy } from '../src/index.js';
import { DEFAULT_NOW, generateAuditLog, parseInstant, parseSize } from '../scripts/generate-audit-log.js';

const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI_PATH = join(PROJECT_ROOT, 'dist', 'src', 'bin.cjs');
const DATA_DIRECTORY = join(PROJECT_ROOT, 'bench', 'data', 'lock-wait');

/** Appends measured before the cleanup starts, as the baseline, and the pause after it ends, in ms. */
const BASELINE_MS = 2000;
const TRAILING_MS = 500;

interface Sample {
  /** Start of the append, in ms since the writer started. */
  at: number;
  lockWaitMs: number;
  latencyMs: number;
}

/** Writer mode: appends until stdin closes, then prints every sample as one JSON array. */
async function runWriter(logPath: string, fsync: FsyncPolicy): Promise<void> {
  const writer = await AuditLogWriter.open({ logPath, fsync, maxFileSize: Number.MAX_SAFE_INTEGER, lockTimeoutMs: 600_000 });
  const samples: Sample[] = [];
  let stopping = false;
  process.stdin.resume();
  process.stdin.on('end', () => (stopping = true));
  process.stdout.write('ready\n');

  const origin = performance.now();
  for (let sequence = 0; !stopping; sequence++) {
    const startedAt = performance.now();
    const result = await writer.append([
      { schema_name: 'mxcp.endpoints', schema_version: 1, operation_type: 'tool', operation_name: 'bench', operation_status: 'success', seq: sequence },
    ]);
    samples.push({ at: startedAt - origin, lockWaitMs: result.lockWaitMs, latencyMs: performance.now() - startedAt });
  }
  await writer.close();
  process.stdout.write(`${JSON.stringify(samples)}\n`);
}

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

function summarize(samples: readonly Sample[]) {
  const waits = samples.map((sample) => sample.lockWaitMs).sort((left, right) => left - right);
  const latencies = samples.map((sample) => sample.latencyMs).sort((left, right) => left - right);
  const round = (value: number) => Math.round(value * 1000) / 1000;
  return {
    appends: samples.length,
    lock_wait_ms: { median: round(percentile(waits, 0.5)), p99: round(percentile(waits, 0.99)), max: round(waits.at(-1) ?? NaN) },
    append_latency_ms: { median: round(percentile(latencies, 0.5)), p99: round(percentile(latencies, 0.99)), max: round(latencies.at(-1) ?? NaN) },
  };
}

/** Generates the log once per size and returns the directory that contains it and its schemas file. */
async function cachedLog(bytes: number): Promise<{ directory: string; names: string[] }> {
  const directory = join(DATA_DIRECTORY, `source-${bytes}`);
  const manifest = join(directory, 'manifest.json');
  const names = ['audit.jsonl', 'audit_schemas.jsonl'];
  if (await stat(manifest).catch(() => null)) {
    return { directory, names };
  }
  await rm(directory, { recursive: true, force: true });
  process.stderr.write(`generating a log of ${bytes} bytes in ${directory} ...\n`);
  const summary = await generateAuditLog({ bytes, out: join(directory, 'audit.jsonl'), days: 180, seed: 1, nowUs: parseInstant(DEFAULT_NOW) });
  await writeFile(manifest, `${JSON.stringify(summary, null, 2)}\n`);
  return { directory, names };
}

async function runBenchmark(bytes: number, fsync: FsyncPolicy): Promise<void> {
  const source = await cachedLog(bytes);
  const work = join(DATA_DIRECTORY, 'work');
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, 'audit'), { recursive: true });
  for (const name of source.names) {
    await copyFile(join(source.directory, name), join(work, 'audit', name));
  }
  const configPath = join(work, 'audit-retention.yml');
  await writeFile(configPath, 'profiles:\n  default:\n    audit:\n      enabled: true\n      path: audit/audit.jsonl\n      lock_timeout_ms: 600000\n');
  const logPath = join(work, 'audit', 'audit.jsonl');

  const writer = spawn(process.execPath, [fileURLToPath(import.meta.url), '--writer', logPath, '--fsync', fsync], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: writer.stdout! })[Symbol.asyncIterator]();
  const ready = await lines.next();
  if (ready.value !== 'ready') {
    throw new Error(`writer did not start: ${String(ready.value)}`);
  }
  const writerStartedAt = performance.now();
  await new Promise((resolve) => setTimeout(resolve, BASELINE_MS));

  const cleanupStart = performance.now() - writerStartedAt;
  const cleanup = spawn(process.execPath, [CLI_PATH, 'cleanup', '--config', configPath, '--json'], {
    env: { PATH: process.env['PATH'] ?? '', AUDIT_RETENTION_NOW: DEFAULT_NOW },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let cleanupOutput = '';
  cleanup.stdout!.on('data', (chunk: Buffer) => (cleanupOutput += chunk.toString()));
  const [cleanupCode] = (await once(cleanup, 'exit')) as [number | null];
  const cleanupEnd = performance.now() - writerStartedAt;
  await new Promise((resolve) => setTimeout(resolve, TRAILING_MS));

  writer.stdin!.end();
  const result = await lines.next();
  const samples = JSON.parse(String(result.value)) as Sample[];
  const report = JSON.parse(cleanupOutput) as {
    status: string;
    message: string;
    details?: { files?: { path: string; action: string; bytes_before: number; bytes_after: number; lock_wait_ms?: number }[] };
  };

  const during = samples.filter((sample) => sample.at + sample.latencyMs >= cleanupStart && sample.at <= cleanupEnd);
  const before = samples.filter((sample) => sample.at + sample.latencyMs < cleanupStart);
  process.stdout.write(
    `${JSON.stringify(
      {
        log_bytes: (await stat(join(source.directory, 'audit.jsonl'))).size,
        fsync,
        cleanup: {
          exit_code: cleanupCode,
          status: report.status,
          message: report.message,
          duration_ms: Math.round(cleanupEnd - cleanupStart),
          files: report.details?.files?.map((file) => ({ path: file.path, action: file.action, bytes_before: file.bytes_before, bytes_after: file.bytes_after, lock_wait_ms: file.lock_wait_ms })),
        },
        writer_before_cleanup: summarize(before),
        writer_during_cleanup: summarize(during),
      },
      null,
      2,
    )}\n`,
  );
  await rm(work, { recursive: true, force: true });
}

const { values } = parseArgs({
  options: {
    bytes: { type: 'string', default: '1G' },
    fsync: { type: 'string', default: 'always' },
    writer: { type: 'string' },
  },
});
const fsync = values.fsync as FsyncPolicy;
if (values.writer !== undefined) {
  await runWriter(values.writer, fsync);
} else {
  await runBenchmark(parseSize(values.bytes!), fsync);
}
