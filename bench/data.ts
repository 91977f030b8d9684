/**
 * Benchmark data: logs written by the project's generator, cached under the data
 * directory, the cutoffs they imply, and the config files that point the CLI at
 * a copy of them.
 */

import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, rm, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEFAULT_NOW, generateAuditLog, parseInstant, type GenerationSummary } from '../scripts/generate-audit-log.js';

/** Clock of every run, given to the generator as --now and to the CLI as AUDIT_RETENTION_NOW. */
export const BENCH_NOW = DEFAULT_NOW;

/**
 * Generator settings shared by every data set. The log spans 180 days that end at
 * BENCH_NOW, so the 90-day cutoff of mxcp.endpoints (96 % of the records) falls in
 * the middle of the data.
 */
const GENERATOR_SETTINGS = {
  days: 180,
  seed: 1,
  disorder: 0.05,
  bad: 0.001,
} as const;

/** Retention of records whose schema has none of its own: the CLI's default when the config sets no `retention_days`. */
const DEFAULT_RETENTION_DAYS = 90;

const MS_PER_DAY = 86_400_000;

/** Sorts before every timestamp of the form `YYYY-MM-DDTHH:MM:SS…`. */
const KEEP_FOREVER_CUTOFF = '0000-01-01T00:00:00+00:00';

/** File names of log files in a data set: `audit.jsonl` or segments `audit-YYYYmmddTHHMMSS[-N].jsonl`. */
const LOG_FILE_NAME = /^audit(?:-\d{8}T\d{6}(?:-\d+)?)?\.jsonl$/;

export const LOG_NAME = 'audit.jsonl';
export const SCHEMAS_NAME = 'audit_schemas.jsonl';

export interface Dataset {
  /** Name of the cached directory, such as `1GiB-single` or `1GiB-segments20`. */
  name: string;
  /** Requested size, such as `1GiB`. The generator's output comes close to it but not exactly. */
  label: string;
  directory: string;
  segments: number;
  /** Log files in name order, which is time order. */
  logFiles: string[];
  bytes: number;
  summary: GenerationSummary;
}

interface CacheManifest {
  generatorSha256: string;
  options: Record<string, unknown>;
  fileSizes: Record<string, number>;
  summary: GenerationSummary;
}

/** Returns the log files of `directory` in name order, which for MXCP segments is time order. */
export async function listLogFiles(directory: string): Promise<string[]> {
  const names = (await readdir(directory)).filter((name) => LOG_FILE_NAME.test(name)).sort();
  return names.map((name) => join(directory, name));
}

async function generatorSha256(): Promise<string> {
  const generatorPath = fileURLToPath(new URL('../scripts/generate-audit-log.js', import.meta.url));
  return createHash('sha256').update(await readFile(generatorPath)).digest('hex');
}

/** Reads a cached data set, or returns null when it is missing, incomplete or made with other options or another generator. */
async function readCachedDataset(directory: string, expected: Omit<CacheManifest, 'fileSizes' | 'summary'>): Promise<CacheManifest | null> {
  let manifest: CacheManifest;
  try {
    manifest = JSON.parse(await readFile(join(directory, 'manifest.json'), 'utf8')) as CacheManifest;
  } catch {
    return null;
  }
  if (manifest.generatorSha256 !== expected.generatorSha256 || JSON.stringify(manifest.options) !== JSON.stringify(expected.options)) {
    return null;
  }
  for (const [name, size] of Object.entries(manifest.fileSizes)) {
    const info = await stat(join(directory, name)).catch(() => null);
    if (info === null || info.size !== size) {
      return null;
    }
  }
  return manifest;
}

/**
 * Returns the data set of about `bytes` bytes in `segments` files, generating it
 * under `dataDir/inputs` unless an identical one is cached there.
 */
export async function prepareDataset(dataDir: string, sizeLabel: string, bytes: number, segments: number, log: (line: string) => void): Promise<Dataset> {
  const name = segments === 1 ? `${sizeLabel}-single` : `${sizeLabel}-segments${segments}`;
  const directory = join(dataDir, 'inputs', name);
  const options = { bytes, segments, now: BENCH_NOW, ...GENERATOR_SETTINGS };
  const expected = { generatorSha256: await generatorSha256(), options };

  let manifest = await readCachedDataset(directory, expected);
  if (manifest === null) {
    log(`Generating ${name} (${bytes} bytes in ${segments} file${segments === 1 ? '' : 's'})...`);
    // Generate beside the cache and rename, so an interrupted run never leaves a partial data set that looks complete.
    const partial = join(dataDir, 'inputs', `.${name}.partial`);
    await rm(partial, { recursive: true, force: true });
    const summary = await generateAuditLog({
      bytes,
      segments,
      nowUs: parseInstant(BENCH_NOW),
      days: GENERATOR_SETTINGS.days,
      seed: GENERATOR_SETTINGS.seed,
      disorder: GENERATOR_SETTINGS.disorder,
      bad: GENERATOR_SETTINGS.bad,
      out: join(partial, LOG_NAME),
    });
    const fileSizes: Record<string, number> = {};
    for (const file of await readdir(partial)) {
      fileSizes[file] = (await stat(join(partial, file))).size;
    }
    manifest = { ...expected, fileSizes, summary };
    await writeFile(join(partial, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await rm(directory, { recursive: true, force: true });
    await rename(partial, directory);
  } else {
    log(`Using cached ${name}.`);
  }

  const logFiles = await listLogFiles(directory);
  return { name, label: sizeLabel, directory, segments, logFiles, bytes: manifest.summary.bytes, summary: manifest.summary };
}

/** Copies a data set's log and schemas files into `target`, which is emptied first. */
export async function copyDataset(dataset: Dataset, target: string): Promise<void> {
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  for (const file of [...dataset.logFiles, join(dataset.directory, SCHEMAS_NAME)]) {
    await copyFile(file, join(target, file.slice(dataset.directory.length + 1)));
  }
}

/** Writes a config with one enabled profile `bench` whose log is `logPath`, and returns its path. */
export async function writeConfig(path: string, logPath: string): Promise<string> {
  const text = [
    '# Written by bench/run.ts. Audit is off unless enabled, as in MXCP.',
    'profile: bench',
    'profiles:',
    '  bench:',
    '    audit:',
    '      enabled: true',
    `      path: ${JSON.stringify(logPath)}`,
    '',
  ].join('\n');
  await writeFile(path, text);
  return path;
}

/** Cutoff instants of the run's clock: one per schema name in the schemas file, and the default for other schemas. */
export interface Cutoffs {
  /** Schema name to cutoff in the data's timestamp form, `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`. */
  perSchema: Record<string, string>;
  default: string;
}

/**
 * Reads the cutoffs from the schemas file: `now - retention_days` per schema, and
 * DEFAULT_RETENTION_DAYS for the rest. This repeats the CLI's rule for this data,
 * where every schema has one version and the config sets no retention of its own.
 */
export async function readCutoffs(schemasPath: string): Promise<Cutoffs> {
  const nowMs = Date.parse(BENCH_NOW);
  const perSchema: Record<string, string> = {};
  for (const line of (await readFile(schemasPath, 'utf8')).split('\n')) {
    if (line.trim() === '') {
      continue;
    }
    const schema = JSON.parse(line) as { schema_name: string; retention_days: number | null };
    // null keeps the schema's records for good, so its cutoff precedes every timestamp.
    perSchema[schema.schema_name] = schema.retention_days === null ? KEEP_FOREVER_CUTOFF : isoOffset(nowMs - schema.retention_days * MS_PER_DAY);
  }
  return { perSchema, default: isoOffset(nowMs - DEFAULT_RETENTION_DAYS * MS_PER_DAY) };
}

/** Formats epoch ms as Python's isoformat() does in UTC, the form of the data's timestamps. */
function isoOffset(epochMs: number): string {
  const iso = new Date(epochMs).toISOString();
  const milliseconds = iso.slice(20, 23);
  const fraction = milliseconds === '000' ? '' : `.${milliseconds}000`;
  return `${iso.slice(0, 19)}${fraction}+00:00`;
}
