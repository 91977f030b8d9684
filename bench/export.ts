/**
 * Benchmark of the export: a generated MXCP log (1 GiB by default) exported to DuckDB
 * and to Parquet, against DuckDB reading the same files itself in the same run:
 * `CREATE TABLE … AS SELECT * FROM read_json(…)` and `COPY (SELECT * FROM read_json(…))
 * TO … (FORMAT parquet)`. Each measurement runs in its own child process, so its
 * peak RSS is its own. Runs of the four kinds alternate, so that load from other
 * processes on the machine falls on all of them alike.
 *
 *   npm run build && node dist/bench/export.js [--bytes 1GiB] [--repeat 3]
 *
 * Data goes to bench/data/export (git-ignored) and is reused while its settings match.
 */

import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { generateAuditLog, parseSize } from '../scripts/generate-audit-log.js';
import { loadSettings } from '../src/config/load.js';
import { runExport, type ExportOutcome } from '../src/core/export/run.js';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEFAULT_DATA_DIRECTORY = join(PROJECT_ROOT, 'bench', 'data', 'export');

/** The kinds of run, in the order each round runs them. */
const PHASES = ['baseline-table', 'export-duckdb', 'baseline-parquet', 'export-parquet'] as const;
type Phase = (typeof PHASES)[number];

interface Measurement {
  phase: Phase;
  seconds: number;
  peakRssMiB: number;
  records: number;
  outputBytes: number;
  /** The export's own split of its time, in ms; absent for the DuckDB baselines. */
  timings?: ExportOutcome['timings'];
}

interface DataManifest {
  bytes: number;
  segments: number;
  records: number;
  files: string[];
  generatedBytes: number;
}

const USAGE = `Usage: node dist/bench/export.js [options]

Options:
  --bytes SIZE     Size of the generated log, such as 1GiB or 200M (default 1GiB).
  --segments N     Number of segment files of the log (default 20).
  --repeat N       Rounds of the four measurements (default 3).
  --data DIR       Directory of the generated log and the outputs (default bench/data/export).
  --help           Show this text.
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      bytes: { type: 'string', default: '1GiB' },
      segments: { type: 'string', default: '20' },
      repeat: { type: 'string', default: '3' },
      data: { type: 'string', default: DEFAULT_DATA_DIRECTORY },
      phase: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const dataDirectory = resolve(values.data);

  if (values.phase !== undefined) {
    const measurement = await measure(values.phase as Phase, dataDirectory);
    process.stdout.write(`${JSON.stringify(measurement)}\n`);
    return;
  }

  const manifest = await ensureData(dataDirectory, parseSize(values.bytes), Number(values.segments));
  const rounds = Number(values.repeat);
  const startLoad = loadavg()[0]!;
  const measurements: Measurement[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const phase of PHASES) {
      await rm(join(dataDirectory, 'out'), { recursive: true, force: true });
      const measurement = await runPhase(phase, dataDirectory);
      measurements.push(measurement);
      const split = measurement.timings === undefined ? '' : `, ${describeTimings(measurement.timings)}`;
      process.stderr.write(`round ${round} ${phase}: ${measurement.seconds.toFixed(2)} s, peak RSS ${measurement.peakRssMiB} MiB, ${measurement.records} records${split}\n`);
    }
  }
  await rm(join(dataDirectory, 'out'), { recursive: true, force: true });

  const report = summarize(measurements, manifest, startLoad, loadavg()[0]!);
  await writeFile(join(dataDirectory, 'results.json'), `${JSON.stringify({ manifest, measurements, report }, null, 2)}\n`);
  process.stdout.write(report.text);
}

/** Generates the log unless the data directory already has one of the same settings. */
async function ensureData(directory: string, bytes: number, segments: number): Promise<DataManifest> {
  const manifestPath = join(directory, 'manifest.json');
  const existing = await readFile(manifestPath, 'utf8').then((text) => JSON.parse(text) as DataManifest, () => null);
  if (existing !== null && existing.bytes === bytes && existing.segments === segments) {
    return existing;
  }

  await rm(directory, { recursive: true, force: true });
  await mkdir(join(directory, 'log'), { recursive: true });
  process.stderr.write(`generating ${bytes} bytes of log in ${segments} segments under ${directory}\n`);
  // No malformed lines, so that DuckDB's own read_json, the baseline, reads every file without ignore_errors.
  const summary = await generateAuditLog({ bytes, segments, out: join(directory, 'log', 'audit.jsonl'), seed: 1, days: 180 });
  const manifest: DataManifest = { bytes, segments, records: summary.records, files: summary.files, generatedBytes: summary.bytes };
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Runs one measurement in a child process and returns what it reports. */
function runPhase(phase: Phase, dataDirectory: string): Promise<Measurement> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--phase', phase, '--data', dataDirectory], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`phase ${phase} exited with code ${code}`));
        return;
      }
      resolvePromise(JSON.parse(stdout) as Measurement);
    });
  });
}

/** Runs one measurement inside the child process. */
async function measure(phase: Phase, dataDirectory: string): Promise<Measurement> {
  const outputDirectory = join(dataDirectory, 'out');
  await mkdir(outputDirectory, { recursive: true });
  const logDirectory = join(dataDirectory, 'log');
  const files = (await readdir(logDirectory)).filter((name) => /^audit-.*\.jsonl$/.test(name)).sort().map((name) => join(logDirectory, name));

  const startedAt = performance.now();
  let records: number;
  let outputBytes: number;
  let timings: ExportOutcome['timings'] | undefined;
  if (phase === 'baseline-table' || phase === 'baseline-parquet') {
    ({ records, outputBytes } = await readWithDuckDB(phase, files, outputDirectory));
  } else {
    const settings = loadSettings({ builtInOnly: true, cwd: dataDirectory });
    const profile = { ...settings.profiles.get('default')!, logPath: join(logDirectory, 'audit.jsonl') };
    const outcome = await runExport({
      profile,
      exportDirectory: outputDirectory,
      format: phase === 'export-duckdb' ? 'duckdb' : 'parquet',
      destination: phase === 'export-duckdb' ? 'export.duckdb' : 'export.parquet',
      overwrite: true,
      nowMs: Date.now(),
    });
    records = outcome.recordsExported;
    outputBytes = outcome.bytes;
    timings = outcome.timings;
  }
  const seconds = (performance.now() - startedAt) / 1000;
  return { phase, seconds, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024), records, outputBytes, timings };
}

/** Reads the log files with DuckDB alone, as a user would without this tool. */
async function readWithDuckDB(phase: 'baseline-table' | 'baseline-parquet', files: string[], outputDirectory: string): Promise<{ records: number; outputBytes: number }> {
  const { DuckDBInstance, listValue } = await import('@duckdb/node-api');
  const { stat } = await import('node:fs/promises');
  const table = phase === 'baseline-table';
  const outputPath = join(outputDirectory, table ? 'baseline.duckdb' : 'baseline.parquet');
  const instance = await DuckDBInstance.create(table ? outputPath : ':memory:', { autoinstall_known_extensions: 'false' });
  const connection = await instance.connect();
  let records: number;
  try {
    const parameters = { files: listValue(files) };
    if (table) {
      await connection.run('CREATE TABLE audit_logs AS SELECT * FROM read_json($files)', parameters);
      await connection.run('CHECKPOINT');
      const counted = await connection.runAndReadAll('SELECT count(*) FROM audit_logs');
      records = Number(counted.getRowsJS()[0]![0]);
    } else {
      const copied = await connection.run(`COPY (SELECT * FROM read_json($files)) TO '${outputPath.replaceAll("'", "''")}' (FORMAT parquet, COMPRESSION zstd)`, parameters);
      records = copied.rowsChanged;
    }
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
  return { records, outputBytes: (await stat(outputPath)).size };
}

function describeTimings(timings: ExportOutcome['timings']): string {
  return `pass ${timings.stagingMs} ms, detection ${timings.detectMs} ms, write ${timings.writeMs} ms, fsync and rename ${timings.publishMs} ms`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((left, right) => left - right);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function summarize(measurements: Measurement[], manifest: DataManifest, startLoad: number, endLoad: number) {
  const byPhase = new Map<Phase, Measurement[]>();
  for (const measurement of measurements) {
    byPhase.set(measurement.phase, [...(byPhase.get(measurement.phase) ?? []), measurement]);
  }
  const medianSeconds = (phase: Phase) => median(byPhase.get(phase)!.map((measurement) => measurement.seconds));
  // The fastest run of each kind is the one least slowed by other processes, so its ratio is shown too.
  const minimumSeconds = (phase: Phase) => Math.min(...byPhase.get(phase)!.map((measurement) => measurement.seconds));
  const ratioOf = (seconds: (phase: Phase) => number) => ({
    duckdb_vs_table: seconds('export-duckdb') / seconds('baseline-table'),
    parquet_vs_table: seconds('export-parquet') / seconds('baseline-table'),
    parquet_vs_parquet: seconds('export-parquet') / seconds('baseline-parquet'),
  });
  const ratios = { median: ratioOf(medianSeconds), minimum: ratioOf(minimumSeconds) };

  const rows = PHASES.map((phase) => {
    const runs = byPhase.get(phase)!;
    const seconds = runs.map((run) => run.seconds);
    return `| ${phase} | ${median(seconds).toFixed(2)} | ${Math.min(...seconds).toFixed(2)} | ${Math.max(...seconds).toFixed(2)} | ${Math.max(...runs.map((run) => run.peakRssMiB))} | ${runs[0]!.records} | ${(runs[0]!.outputBytes / 1024 ** 2).toFixed(0)} |`;
  });
  const text = [
    `Log: ${(manifest.generatedBytes / 1024 ** 3).toFixed(2)} GiB, ${manifest.records} records in ${manifest.segments} segments.`,
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}; load average ${startLoad.toFixed(2)} at start, ${endLoad.toFixed(2)} at end.`,
    `Runs per kind: ${byPhase.get('baseline-table')!.length}.`,
    '',
    '| run | median s | min s | max s | peak RSS MiB | records | output MiB |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    '| ratio | of medians | of minimums |',
    '|---|---|---|',
    `| export-duckdb / baseline-table | ${ratios.median.duckdb_vs_table.toFixed(2)} | ${ratios.minimum.duckdb_vs_table.toFixed(2)} |`,
    `| export-parquet / baseline-table | ${ratios.median.parquet_vs_table.toFixed(2)} | ${ratios.minimum.parquet_vs_table.toFixed(2)} |`,
    `| export-parquet / baseline-parquet | ${ratios.median.parquet_vs_parquet.toFixed(2)} | ${ratios.minimum.parquet_vs_parquet.toFixed(2)} |`,
    '',
    'Time split of the exports, medians in ms (the pass classifies every line and collects the column types):',
    '',
    '| run | pass | schema detection | write | fsync and rename |',
    '|---|---|---|---|---|',
    ...(['export-duckdb', 'export-parquet'] as const).map((phase) => {
      const runs = byPhase.get(phase)!.flatMap((run) => (run.timings === undefined ? [] : [run.timings]));
      const part = (key: keyof ExportOutcome['timings']) => median(runs.map((timings) => timings[key])).toFixed(0);
      return `| ${phase} | ${part('stagingMs')} | ${part('detectMs')} | ${part('writeMs')} | ${part('publishMs')} |`;
    }),
    '',
  ].join('\n');
  return { ratios, text };
}

main().catch((error: unknown) => {
  process.stderr.write(`Error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
