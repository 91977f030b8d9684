/**
 * The methods that the benchmark times, and the timed rounds: our cleanup through
 * the CLI, cp + sync, jq, DuckDB and the Node.js filter, each with the check of its
 * output that must pass before its times count.
 */

import { copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  BENCH_NOW,
  LOG_NAME,
  SCHEMAS_NAME,
  copyDataset,
  listLogFiles,
  writeConfig,
  type Cutoffs,
  type Dataset,
} from './data.js';
import { DUCKDB_VARIANTS } from './duckdb-filter.js';
import { pause, timedRun, type RunRequest, type TimedRun } from './measure.js';
import { formatMiB, formatSeconds, log, sizeLabel } from './report.js';
import type { BuildSnapshot } from './snapshot.js';
import { compareOutputs, countLines, summarizeAgainst, summarizeLines, type LinesSummary, type OutputCheck } from './verify.js';

/** Returns the log files and the schemas file of a log directory, the files that a cleanup reads. */
async function cleanupInputs(directory: string): Promise<string[]> {
  return [...(await listLogFiles(directory)), join(directory, SCHEMAS_NAME)];
}

/** Number of files of the segmented layout. */
export const SEGMENTS = 20;

/** Settings of the timed rounds: their number and the pause before each timed run. */
export interface RoundSettings {
  runs: number;
  pauseSeconds: number;
  /** Block device of the data directory, watched for other disk traffic before each run. */
  dataDevice: { major: number; minor: number } | null;
}

/** Scope of the comparison: the size of its data in bytes and the sections to run. */
export interface ComparisonSettings {
  size: number;
  sections: ReadonlySet<string>;
}

/**
 * Clock of the run a day after the first, as a daily CronJob would make it: one day and
 * five minutes (in ms) later, since a scheduled job rarely starts at the same second.
 */
const NEXT_DAY_NOW = new Date(Date.parse(BENCH_NOW) + 86_400_000 + 300_000).toISOString();

function cliEnvironment(now: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, AUDIT_RETENTION_NOW: now };
  delete env['LOG_LEVEL'];
  delete env['AUDIT_RETENTION_CONFIG'];
  return env;
}

export function cliRequest(
  build: BuildSnapshot,
  configPath: string,
  dryRun: boolean,
  timeFile: string,
  nodeOptions: readonly string[] = [],
  now: string = BENCH_NOW,
): RunRequest {
  return {
    command: process.execPath,
    args: [...nodeOptions, build.cliPath, 'cleanup', '--json', ...(dryRun ? ['--dry-run'] : []), '--config', configPath],
    env: cliEnvironment(now),
    timeFile,
  };
}

// ---------------------------------------------------------------------------
// Counts that the generator expects from the cleanup
// ---------------------------------------------------------------------------

export interface Expectation {
  deleted: number;
  recordsKept: number;
  linesKept: number;
  malformedLines: number;
  blankLines: number;
}

export function expectationOf(dataset: Dataset): Expectation {
  const summary = dataset.summary;
  const deleted = Object.values(summary.retention).reduce((sum, schema) => sum + schema.expired, 0);
  return {
    deleted,
    recordsKept: summary.records - deleted,
    linesKept: summary.lines - deleted,
    malformedLines: summary.bad_lines.truncated + summary.bad_lines.invalid_utf8 + summary.bad_lines.missing_timestamp,
    blankLines: summary.bad_lines.blank,
  };
}

interface CliResponse {
  status: string;
  message?: string;
  deleted_per_schema: Record<string, number>;
  details?: {
    records_kept: number;
    malformed_lines: number;
    blank_lines: number;
    cutoffs: Record<string, { cutoff: string }>;
  };
}

/** Checks the CLI's JSON output against the generator's counts and returns the problems found. */
export function checkCliResponse(stdout: string, dryRun: boolean, expected: Expectation): string[] {
  let response: CliResponse;
  try {
    response = JSON.parse(stdout) as CliResponse;
  } catch {
    return [`the CLI printed no JSON: ${stdout.slice(0, 200)}`];
  }
  if (response.details === undefined) {
    // An error answer carries only status, message and code.
    return [`the CLI answered ${response.status}: ${response.message ?? 'no message'}`];
  }
  const problems: string[] = [];
  const expectedStatus = dryRun ? 'dry_run' : 'success';
  if (response.status !== expectedStatus) {
    problems.push(`status ${response.status}, expected ${expectedStatus}`);
  }
  const deleted = Object.values(response.deleted_per_schema).reduce((sum, count) => sum + count, 0);
  if (deleted !== expected.deleted) {
    problems.push(`${deleted} records deleted, the generator expects ${expected.deleted}`);
  }
  if (response.details.records_kept !== expected.recordsKept) {
    problems.push(`${response.details.records_kept} records kept, the generator expects ${expected.recordsKept}`);
  }
  if (response.details.malformed_lines !== expected.malformedLines || response.details.blank_lines !== expected.blankLines) {
    problems.push(
      `${response.details.malformed_lines} malformed and ${response.details.blank_lines} blank lines, ` +
        `the generator wrote ${expected.malformedLines} and ${expected.blankLines}`,
    );
  }
  return problems;
}

// ---------------------------------------------------------------------------
// Methods and the timed loop
// ---------------------------------------------------------------------------

export interface Method {
  key: string;
  label: string;
  /** Description of the method for the notes under the table. */
  description?: string;
  data: string;
  inputBytes: number;
  /** False for the one row that measures a run right after another write. */
  paused: boolean;
  /** True for our cleanup, whose runs count toward the peak RSS target. */
  ours: boolean;
  prepare?: () => Promise<void>;
  /** Files that the timed command reads, read once before the run so that all of them start in the page cache. */
  readFiles: () => Promise<string[]>;
  request: (timeFile: string) => RunRequest;
  verify: (run: TimedRun) => Promise<OutputCheck>;
  cleanup?: () => Promise<void>;
}

export interface MethodResult {
  method: Method;
  runs: TimedRun[];
  check: OutputCheck | null;
  /** Why the method's times are not reported: a failed command or a failed output check. */
  failure: string | null;
  /** Runs discarded and repeated because other processes used the CPU meanwhile. */
  redone: number;
}

/** Times a run is repeated at most when other processes disturb it. */
const MAX_REDOS = 3;

/** True when other processes used more than 10 % of the run's wall time (at least 0.05 s) of CPU during it. */
function isDisturbed(run: TimedRun): boolean {
  return run.othersUserSeconds > Math.max(0.05, 0.1 * run.seconds);
}

/**
 * Runs every method once per round, in the given order, so all methods see the
 * same machine state across rounds. Each timed run follows the same pause, except
 * for methods marked unpaused. A run that other processes disturbed is prepared
 * and run again, up to MAX_REDOS times, which works because every `prepare`
 * resets the method's files.
 */
export async function runRounds(methods: readonly Method[], options: RoundSettings, workDir: string): Promise<MethodResult[]> {
  const results = methods.map((method): MethodResult => ({ method, runs: [], check: null, failure: null, redone: 0 }));
  const timeFile = join(workDir, 'time.out');
  for (let round = 1; round <= options.runs; round++) {
    for (const result of results) {
      if (result.failure !== null) {
        continue;
      }
      const { method } = result;
      try {
        let run: TimedRun;
        for (let attempt = 0; ; attempt++) {
          await method.prepare?.();
          if (method.paused) {
            await pause({ seconds: options.pauseSeconds, device: options.dataDevice, warmFiles: await method.readFiles(), log });
          }
          run = await timedRun(method.request(timeFile));
          if (!isDisturbed(run) || attempt === MAX_REDOS) {
            break;
          }
          result.redone++;
          log(`[round ${round}/${options.runs}] ${method.label} (${method.data}): other processes used ${run.othersUserSeconds.toFixed(2)} s CPU during ${formatSeconds(run.seconds)} s; running it again`);
        }
        const check = await method.verify(run);
        await method.cleanup?.();
        if (!check.ok) {
          result.failure = `output check failed: ${check.note}`;
          log(`[round ${round}/${options.runs}] ${method.label}: ${result.failure}`);
          continue;
        }
        result.check = check;
        result.runs.push(run);
        log(
          `[round ${round}/${options.runs}] ${method.label} (${method.data}): ${formatSeconds(run.seconds)} s, ` +
            `${formatMiB(run.peakRssKiB)} MiB, other processes ${run.othersUserSeconds.toFixed(2)} s CPU`,
        );
      } catch (error) {
        result.failure = error instanceof Error ? error.message : String(error);
        log(`[round ${round}/${options.runs}] ${method.label}: failed: ${result.failure}`);
        await method.cleanup?.().catch(() => undefined);
      }
    }
  }
  return results;
}

function fileCheck(ok: boolean, summary: string, note: string): OutputCheck {
  return { ok, byteIdentical: false, summary, note };
}

/** Checks that a copy has the input's size, which suffices because cp(1) either copies every byte or fails. */
async function verifyCopy(path: string, bytes: number): Promise<OutputCheck> {
  const size = (await stat(path)).size;
  return size === bytes ? fileCheck(true, 'same size', `copy of ${bytes} bytes`) : fileCheck(false, 'size differs', `copy has ${size} bytes, expected ${bytes}`);
}

/** Checks a real run: the CLI's counts, then the files it left against the reference, byte for byte. */
async function verifyRealRun(run: TimedRun, directory: string, expected: Expectation, reference: LinesSummary): Promise<OutputCheck> {
  const problems = checkCliResponse(run.stdout, false, expected);
  if (problems.length > 0) {
    return fileCheck(false, 'counts differ', problems.join('; '));
  }
  const check = compareOutputs(await summarizeAgainst(await listLogFiles(directory), reference), reference);
  return check.byteIdentical ? check : fileCheck(false, 'bytes differ', `not byte-identical to the reference run: ${check.note}`);
}

/** Checks a dry run: the CLI's counts, and that the files kept their sizes. */
async function verifyDryRun(run: TimedRun, directory: string, dataset: Dataset, expected: Expectation): Promise<OutputCheck> {
  const problems = checkCliResponse(run.stdout, true, expected);
  const files = await listLogFiles(directory);
  let bytes = 0;
  for (const file of files) {
    bytes += (await stat(file)).size;
  }
  if (bytes !== dataset.bytes) {
    problems.push(`the log files have ${bytes} bytes after the dry run, ${dataset.bytes} before`);
  }
  return problems.length > 0
    ? fileCheck(false, 'counts differ', problems.join('; '))
    : fileCheck(true, 'counts as expected', `reports ${expected.deleted} deletions and ${expected.recordsKept} kept records, as the generator expects; files unchanged`);
}

async function verifyAgainstReference(paths: readonly string[], reference: LinesSummary): Promise<OutputCheck> {
  return compareOutputs(await summarizeAgainst(paths, reference), reference);
}

function totalDeleted(response: CliResponse): number {
  return Object.values(response.deleted_per_schema ?? {}).reduce((sum, count) => sum + count, 0);
}

/** The lines that a run one day later keeps, and the number of records that this run deletes after the first run. */
interface NextDayReference {
  summary: LinesSummary;
  deletedAfterFirstRun: number;
}

/**
 * Runs our cleanup once, untimed, on a fresh copy at NEXT_DAY_NOW, a full scan without
 * index, and keeps a summary of what it kept. The next-day run after a first run must
 * keep exactly these lines, whatever its scan index decided without reading.
 */
async function buildNextDayReference(build: BuildSnapshot, dataset: Dataset, reference: Reference, workDir: string): Promise<NextDayReference> {
  const directory = join(workDir, 'reference-next-day');
  await copyDataset(dataset, directory);
  const config = await writeConfig(join(workDir, 'reference-next-day.yml'), join(directory, LOG_NAME));
  const run = await timedRun(cliRequest(build, config, false, join(workDir, 'time.out'), [], NEXT_DAY_NOW));
  const deleted = totalDeleted(JSON.parse(run.stdout) as CliResponse);
  const summary = await summarizeLines(await listLogFiles(directory));
  await rm(directory, { recursive: true, force: true });
  return { summary, deletedAfterFirstRun: deleted - reference.expected.deleted };
}

/** Checks the next-day run: its deletions, then the files it left against a full scan at the same clock, byte for byte. */
async function verifyNextDay(run: TimedRun, directory: string, nextDay: NextDayReference): Promise<OutputCheck> {
  let deleted: number;
  try {
    deleted = totalDeleted(JSON.parse(run.stdout) as CliResponse);
  } catch {
    return fileCheck(false, 'not JSON', 'the CLI did not print a JSON object');
  }
  if (deleted !== nextDay.deletedAfterFirstRun) {
    return fileCheck(false, 'counts differ', `deleted ${deleted} records, a full scan at the same clock deletes ${nextDay.deletedAfterFirstRun} after the first run`);
  }
  const check = compareOutputs(await summarizeAgainst(await listLogFiles(directory), nextDay.summary), nextDay.summary);
  return check.byteIdentical ? check : fileCheck(false, 'bytes differ', `not byte-identical to a full scan at the same clock: ${check.note}`);
}

/** Returns the jq program: parse each raw line, skip what is not JSON, keep records at or after their schema's cutoff. */
export function jqProgram(cutoffs: Cutoffs): string {
  return `fromjson? | select(type == "object" and .timestamp >= (${JSON.stringify(cutoffs.perSchema)}[.schema_name // ""] // ${JSON.stringify(cutoffs.default)}))`;
}

export interface Reference {
  summary: LinesSummary;
  expected: Expectation;
}

/**
 * Runs our cleanup once, untimed, on a fresh copy and keeps a summary of what it
 * kept, after checking it against the generator's own counts and the cutoffs
 * against ours. Every later output is compared with this summary.
 */
export async function buildReference(build: BuildSnapshot, dataset: Dataset, cutoffs: Cutoffs, workDir: string): Promise<Reference> {
  const expected = expectationOf(dataset);
  const directory = join(workDir, 'reference');
  await copyDataset(dataset, directory);
  const config = await writeConfig(join(workDir, 'reference.yml'), join(directory, LOG_NAME));
  const run = await timedRun(cliRequest(build, config, false, join(workDir, 'time.out')));

  const problems = checkCliResponse(run.stdout, false, expected);
  let reportedCutoffs: Record<string, { cutoff: string }> = {};
  try {
    reportedCutoffs = (JSON.parse(run.stdout) as CliResponse).details?.cutoffs ?? {};
  } catch {
    // checkCliResponse has already reported output that is not JSON.
  }
  for (const [key, { cutoff }] of Object.entries(reportedCutoffs)) {
    const schemaName = key.slice(0, key.lastIndexOf(':'));
    const ours = cutoffs.perSchema[schemaName] ?? cutoffs.default;
    if (Date.parse(cutoff) !== Date.parse(ours)) {
      problems.push(`the CLI's cutoff of ${key} is ${cutoff}, the benchmark computed ${ours}`);
    }
  }

  const summary = await summarizeLines(await listLogFiles(directory));
  if (summary.records !== expected.recordsKept || summary.lines !== expected.linesKept) {
    problems.push(`the output has ${summary.records} records in ${summary.lines} lines, the generator expects ${expected.recordsKept} in ${expected.linesKept}`);
  }
  if (summary.malformedLines !== expected.malformedLines || summary.blankLines !== expected.blankLines) {
    problems.push(`the output has ${summary.malformedLines} malformed and ${summary.blankLines} blank lines, the generator wrote ${expected.malformedLines} and ${expected.blankLines}`);
  }
  if (problems.length > 0) {
    throw new Error(`The reference run of our cleanup is wrong, so no method can be checked: ${problems.join('; ')}`);
  }
  await rm(directory, { recursive: true, force: true });
  log(`Reference: ${summary.lines} lines, ${summary.bytes} bytes, ${summary.records} records kept, ${expected.deleted} deleted.`);
  return { summary, expected };
}

/** Builds the methods of the comparison, in the order of each round. */
export async function comparisonMethods(
  build: BuildSnapshot,
  options: ComparisonSettings,
  single: Dataset,
  segmented: Dataset | null,
  cutoffs: Cutoffs,
  reference: Reference,
  workDir: string,
): Promise<Method[]> {
  const input = single.logFiles[0]!;
  const data = `${sizeLabel(options.size)}, 1 file`;
  const methods: Method[] = [];
  const { expected } = reference;

  if (options.sections.has('cleanup')) {
    const emptyDirectory = join(workDir, 'empty');
    await mkdir(emptyDirectory, { recursive: true });
    await writeFile(join(emptyDirectory, LOG_NAME), '');
    await copyFile(join(single.directory, SCHEMAS_NAME), join(emptyDirectory, SCHEMAS_NAME));
    const emptyConfig = await writeConfig(join(workDir, 'empty.yml'), join(emptyDirectory, LOG_NAME));
    methods.push({
      key: 'start-up',
      label: 'audit-retention cleanup --dry-run on an empty log (start-up cost)',
      data: 'empty file',
      inputBytes: 0,
      paused: true,
      ours: true,
      readFiles: () => cleanupInputs(emptyDirectory),
      request: (timeFile) => cliRequest(build, emptyConfig, true, timeFile),
      verify: async (run) => {
        const problems = checkCliResponse(run.stdout, true, { deleted: 0, recordsKept: 0, linesKept: 0, malformedLines: 0, blankLines: 0 });
        return problems.length > 0 ? fileCheck(false, 'counts differ', problems.join('; ')) : fileCheck(true, 'nothing to delete', 'reports no deletions');
      },
    });

    const dryDirectory = join(workDir, 'dry');
    const dryConfig = await writeConfig(join(workDir, 'dry.yml'), join(dryDirectory, LOG_NAME));
    methods.push({
      key: 'dry-run',
      label: 'audit-retention cleanup --dry-run',
      data,
      inputBytes: single.bytes,
      paused: true,
      ours: true,
      prepare: () => copyDataset(single, dryDirectory),
      readFiles: () => cleanupInputs(dryDirectory),
      request: (timeFile) => cliRequest(build, dryConfig, true, timeFile),
      verify: (run) => verifyDryRun(run, dryDirectory, single, expected),
    });
    methods.push({
      key: 'second-dry-run',
      label: 'audit-retention cleanup --dry-run, again on the unchanged files',
      data,
      inputBytes: single.bytes,
      paused: true,
      ours: true,
      readFiles: () => cleanupInputs(dryDirectory),
      request: (timeFile) => cliRequest(build, dryConfig, true, timeFile),
      verify: (run) => verifyDryRun(run, dryDirectory, single, expected),
      cleanup: () => rm(dryDirectory, { recursive: true, force: true }),
    });

    const realDirectory = join(workDir, 'real');
    const realConfig = await writeConfig(join(workDir, 'real.yml'), join(realDirectory, LOG_NAME));
    methods.push({
      key: 'real-run',
      label: 'audit-retention cleanup (real run)',
      data,
      inputBytes: single.bytes,
      paused: true,
      ours: true,
      prepare: () => copyDataset(single, realDirectory),
      readFiles: () => cleanupInputs(realDirectory),
      request: (timeFile) => cliRequest(build, realConfig, false, timeFile),
      verify: (run) => verifyRealRun(run, realDirectory, expected, reference.summary),
      cleanup: () => rm(realDirectory, { recursive: true, force: true }),
    });
  }

  const copyPath = join(workDir, 'copy.out');
  const copyMethod = (paused: boolean): Method => ({
    key: paused ? 'cp-sync' : 'cp-sync-unpaused',
    label: paused ? 'cp + sync (baseline)' : 'cp + sync, right after the previous cp + sync (no pause)',
    data,
    inputBytes: single.bytes,
    paused,
    ours: false,
    prepare: () => rm(copyPath, { force: true }),
    readFiles: async () => [input],
    request: (timeFile) => ({ command: 'cp', args: ['--', input, copyPath], timeFile }),
    verify: () => verifyCopy(copyPath, single.bytes),
    // The baseline leaves its copy in place. The unpaused row deletes it in `prepare` and copies again at once.
    cleanup: paused ? undefined : () => rm(copyPath, { force: true }),
  });
  methods.push(copyMethod(true), copyMethod(false));

  // Our rewrite bypasses the page cache with O_DIRECT, so the copy limit of that path is shown beside cp's.
  const directCopyPath = join(workDir, 'copy.direct');
  methods.push({
    key: 'dd-direct',
    label: 'dd bs=4M oflag=direct + sync (a copy that bypasses the page cache, as our rewrite does)',
    data,
    inputBytes: single.bytes,
    paused: true,
    ours: false,
    prepare: () => rm(directCopyPath, { force: true }),
    readFiles: async () => [input],
    request: (timeFile) => ({ command: 'dd', args: [`if=${input}`, `of=${directCopyPath}`, 'bs=4M', 'oflag=direct', 'status=none'], timeFile }),
    verify: () => verifyCopy(directCopyPath, single.bytes),
    cleanup: () => rm(directCopyPath, { force: true }),
  });

  if (segmented !== null) {
    const segmentsDirectory = join(workDir, 'segments');
    const segmentsConfig = await writeConfig(join(workDir, 'segments.yml'), join(segmentsDirectory, LOG_NAME));
    methods.push({
      key: 'segments-first-run',
      label: 'audit-retention cleanup (real run), first run',
      data: `${sizeLabel(options.size)}, ${SEGMENTS} segments`,
      inputBytes: segmented.bytes,
      paused: true,
      ours: true,
      prepare: () => copyDataset(segmented, segmentsDirectory),
      readFiles: () => cleanupInputs(segmentsDirectory),
      request: (timeFile) => cliRequest(build, segmentsConfig, false, timeFile),
      verify: (run) => verifyRealRun(run, segmentsDirectory, expected, reference.summary),
      cleanup: () => rm(segmentsDirectory, { recursive: true, force: true }),
    });

    // The daily CronJob: the first run leaves a warm scan index, and a day later only files with newly expired records are read.
    const nextDay = await buildNextDayReference(build, single, reference, workDir);
    const nextDayDirectory = join(workDir, 'segments-next-day');
    const nextDayConfig = await writeConfig(join(workDir, 'segments-next-day.yml'), join(nextDayDirectory, LOG_NAME));
    methods.push({
      key: 'segments-next-day',
      label: 'audit-retention cleanup (real run), a day and 5 minutes after the first run (warm scan index)',
      data: `${sizeLabel(options.size)}, ${SEGMENTS} segments`,
      inputBytes: segmented.bytes,
      paused: true,
      ours: true,
      prepare: async () => {
        await copyDataset(segmented, nextDayDirectory);
        await timedRun(cliRequest(build, nextDayConfig, false, join(workDir, 'time.out')));
      },
      readFiles: () => cleanupInputs(nextDayDirectory),
      request: (timeFile) => cliRequest(build, nextDayConfig, false, timeFile, [], NEXT_DAY_NOW),
      verify: (run) => verifyNextDay(run, nextDayDirectory, nextDay),
      cleanup: () => rm(nextDayDirectory, { recursive: true, force: true }),
    });
  }

  if (options.sections.has('jq')) {
    const output = join(workDir, 'jq.out');
    methods.push({
      key: 'jq',
      label: "jq -R -c 'fromjson? | select(.timestamp >= cutoff of .schema_name)'",
      data,
      inputBytes: single.bytes,
      paused: true,
      ours: false,
      prepare: () => rm(output, { force: true }),
      readFiles: async () => [input],
      request: (timeFile) => ({ command: 'jq', args: ['-R', '-c', jqProgram(cutoffs), input], stdoutPath: output, timeFile }),
      verify: () => verifyAgainstReference([output], reference.summary),
      cleanup: () => rm(output, { force: true }),
    });
  }

  if (options.sections.has('duckdb')) {
    const script = join(build.benchDir, 'duckdb-filter.js');
    for (const variant of DUCKDB_VARIANTS) {
      const output = join(workDir, `duckdb-${variant.name}.out`);
      methods.push({
        key: `duckdb-${variant.name}`,
        label: `DuckDB ${variant.name}`,
        description: variant.description,
        data,
        inputBytes: single.bytes,
        paused: true,
        ours: false,
        prepare: () => rm(output, { force: true }),
        readFiles: async () => [input],
        request: (timeFile) => ({ command: process.execPath, args: [script, variant.name, output, JSON.stringify(cutoffs), input], timeFile }),
        verify: () => verifyAgainstReference([output], reference.summary),
        cleanup: () => rm(output, { force: true }),
      });
    }
  }

  if (options.sections.has('node')) {
    const output = join(workDir, 'node-filter.out');
    const script = join(build.benchDir, 'node-filter.js');
    const cutoffArgument = JSON.stringify({ cutoffs: cutoffs.perSchema, default: cutoffs.default });
    methods.push({
      key: 'node-readline',
      label: 'Node.js readline + JSON.parse filter (bench/node-filter.ts)',
      data,
      inputBytes: single.bytes,
      paused: true,
      ours: false,
      prepare: () => rm(output, { force: true }),
      readFiles: async () => [input],
      request: (timeFile) => ({ command: process.execPath, args: [script, input, output, cutoffArgument], timeFile }),
      verify: () => verifyAgainstReference([output], reference.summary),
      cleanup: () => rm(output, { force: true }),
    });
  }
  return methods;
}

/** Builds a dry-run and a real-run method for each size. Each run gets its own fresh copy. */
export async function memoryMethods(build: BuildSnapshot, datasets: readonly Dataset[], workDir: string): Promise<Method[]> {
  const methods: Method[] = [];
  for (const dataset of datasets) {
    const expected = expectationOf(dataset);
    for (const dryRun of [true, false]) {
      const directory = join(workDir, `memory-${dataset.label}-${dryRun ? 'dry' : 'real'}`);
      const config = await writeConfig(`${directory}.yml`, join(directory, LOG_NAME));
      methods.push({
        key: `memory-${dataset.label}-${dryRun ? 'dry' : 'real'}`,
        label: dryRun ? 'audit-retention cleanup --dry-run' : 'audit-retention cleanup (real run)',
        data: `${dataset.label}, 1 file`,
        inputBytes: dataset.bytes,
        paused: true,
        ours: true,
        prepare: () => copyDataset(dataset, directory),
        readFiles: () => cleanupInputs(directory),
        request: (timeFile) => cliRequest(build, config, dryRun, timeFile),
        verify: async (run) => (dryRun ? verifyDryRun(run, directory, dataset, expected) : verifyRealRunCounts(run, directory, expected)),
        cleanup: () => rm(directory, { recursive: true, force: true }),
      });
    }
  }
  return methods;
}

/** Checks a real run without a byte reference: the CLI's counts and the number of lines left. */
async function verifyRealRunCounts(run: TimedRun, directory: string, expected: Expectation): Promise<OutputCheck> {
  const problems = checkCliResponse(run.stdout, false, expected);
  const lines = await countLines(await listLogFiles(directory));
  if (lines !== expected.linesKept) {
    problems.push(`${lines} lines left, the generator expects ${expected.linesKept}`);
  }
  return problems.length > 0
    ? fileCheck(false, 'counts differ', problems.join('; '))
    : fileCheck(true, 'counts as expected', `deleted ${expected.deleted} records and left ${lines} lines, as the generator expects`);
}
