/**
 * Benchmark of GET /stats's work, in process: the first call on a cold index, a call
 * with nothing new (median of many), and a call after 10 MB were appended, compared
 * with `cat` reading the same 10 MB. Run: `npm run build && node dist/bench/stats.js
 * [--size 1GiB] [--calls 200]`.
 */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { appendFile, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { loadSettings } from '../src/config/load.js';
import { ScanIndex } from '../src/core/scan-index.js';
import { collectStats } from '../src/core/stats.js';

const GENERATOR = fileURLToPath(new URL('../scripts/generate-audit-log.js', import.meta.url));

/** Bytes appended between the calls of the append measurement (10 MB as in the target). */
const APPEND_BYTES = 10 * 1000 * 1000;

/** Clock of the generated data and of the stats calls, so that cutoffs fall inside the data. */
const NOW = '2026-08-01T12:00:00Z';

function median(values: number[]): number {
  const sorted = [...values].sort((left, right) => left - right);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Peak resident memory of this process so far, in MiB (VmHWM of /proc/self/status, Linux). */
function peakRssMiB(): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { size: { type: 'string', default: '1GiB' }, calls: { type: 'string', default: '200' }, keep: { type: 'boolean', default: false } },
  });
  const directory = resolve('bench/data/stats');
  await rm(directory, { recursive: true, force: true });
  await mkdir(directory, { recursive: true });
  const logPath = join(directory, 'audit', 'logs.jsonl');
  const configPath = join(directory, 'audit-retention.yml');
  await writeFile(configPath, 'profiles:\n  default:\n    audit:\n      enabled: true\n      path: audit/logs.jsonl\n');

  // The generator runs as a child process, so the peak memory below is that of stats alone.
  process.stderr.write(`generating ${values.size} in 20 segments under ${directory}\n`);
  const manifestPath = join(directory, 'manifest.json');
  execFileSync(
    process.execPath,
    [GENERATOR, '--bytes', values.size, '--segments', '20', '--disorder', '0.05', '--bad', '0.001', '--now', NOW, '--out', logPath, '--manifest', manifestPath, '--quiet'],
    { stdio: 'inherit' },
  );
  const summary = JSON.parse(await readFile(manifestPath, 'utf8')) as { files: string[] };
  const activePath = summary.files.at(-1)!;

  // 10 MB of further records to append: the head of the first segment, cut at a line feed.
  const head = Buffer.alloc(APPEND_BYTES);
  const handle = await open(summary.files[0]!, 'r');
  await handle.read(head, 0, APPEND_BYTES, 0);
  await handle.close();
  const chunk = head.subarray(0, head.lastIndexOf(0x0a) + 1);
  const chunkPath = join(directory, 'append-chunk.jsonl');
  await writeFile(chunkPath, chunk);

  const settings = loadSettings({ configPath, env: { LOG_LEVEL: 'silent' } });
  const profile = settings.profiles.get('default')!;
  const index = ScanIndex.inMemory(profile.logPath);
  const nowMs = Date.parse(NOW);
  const call = async () => {
    const startedAt = performance.now();
    const report = await collectStats({ profile, nowMs, index });
    return { ms: performance.now() - startedAt, report };
  };

  const first = await call();

  const idleCalls: number[] = [];
  for (let round = 0; round < Number(values.calls); round++) {
    idleCalls.push((await call()).ms);
  }

  const appendCalls: number[] = [];
  const catRuns: number[] = [];
  for (let round = 0; round < 5; round++) {
    await appendFile(activePath, chunk);
    appendCalls.push((await call()).ms);
    const catStart = performance.now();
    execFileSync('cat', [chunkPath], { stdio: ['ignore', 'ignore', 'inherit'] });
    catRuns.push(performance.now() - catStart);
  }

  const result = {
    records: first.report.total_records,
    bytes: first.report.total_bytes,
    firstCallMs: Math.round(first.ms),
    nothingNewMedianMs: Number(median(idleCalls).toFixed(2)),
    nothingNewMaxMs: Number(Math.max(...idleCalls).toFixed(2)),
    appended10MbMedianMs: Number(median(appendCalls).toFixed(1)),
    cat10MbMedianMs: Number(median(catRuns).toFixed(1)),
    appendRatioToCat: Number((median(appendCalls) / median(catRuns)).toFixed(2)),
    peakRssMiB: Math.round(peakRssMiB()),
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  if (!values.keep) {
    await rm(directory, { recursive: true, force: true });
  }
}

await main();
