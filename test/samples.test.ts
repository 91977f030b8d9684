/**
 * Real log files of other formats (bunyan, Kubernetes audit via Falco, CloudTrail),
 * copied from public projects into test/fixtures/samples with their licences.
 * Each sample is cleaned as a single-file log and checked against the reference model.
 */

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';

import { loadSettings } from '../src/config/load.js';
import { runCleanup } from '../src/core/cleanup.js';
import { PROJECT_ROOT, referenceCleanup, temporaryDirectory, writeText } from './helpers.js';

const SAMPLES = join(PROJECT_ROOT, 'test', 'fixtures', 'samples');

interface SampleCase {
  file: string;
  timestampField: string;
  /** The run's clock; with a one-day retention it splits each sample into expired and kept records. */
  now: string;
}

const CASES: SampleCase[] = [
  { file: 'bunyan/log1.log', timestampField: 'time', now: '2012-05-09T17:00:00Z' },
  { file: 'bunyan/log2.log', timestampField: 'time', now: '2012-05-09T17:00:00Z' },
  { file: 'bunyan/all.log', timestampField: 'time', now: '2012-02-09T22:56:52Z' },
  { file: 'bunyan/bogus.log', timestampField: 'time', now: '2026-12-04T00:00:00Z' },
  { file: 'bunyan/simple.log', timestampField: 'time', now: '2026-12-04T00:00:00Z' },
  { file: 'bunyan/extrafield.log', timestampField: 'time', now: '2026-12-04T00:00:00Z' },
  { file: 'falco-k8s-audit/create_configmap_sensitive_values.json', timestampField: 'timestamp', now: '2018-10-27T09:51:30Z' },
  { file: 'falco-k8s-audit/create_secret.json', timestampField: 'stageTimestamp', now: '2026-12-04T00:00:00Z' },
  { file: 'falco-k8s-audit/create_secret.json', timestampField: 'timestamp', now: '2026-12-04T00:00:00Z' },
  { file: 'falco-k8s-audit/delete_serviceaccount.json', timestampField: 'requestReceivedTimestamp', now: '2026-12-04T00:00:00Z' },
  { file: 'falco-k8s-audit/fal_01_003.json', timestampField: 'timestamp', now: '2026-12-04T00:00:00Z' },
  { file: 'cloudtrail/otel-cloudtrail-records.jsonl', timestampField: 'eventTime', now: '2025-01-01T00:00:00Z' },
];

/** Byte-level variants that must not change the verdicts. */
const VARIANTS: Record<string, (content: Buffer) => Buffer> = {
  original: (content) => content,
  crlf: (content) => Buffer.from(content.toString('latin1').replace(/\n/g, '\r\n'), 'latin1'),
  bom: (content) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), content]),
};

async function cleanSample(t: Parameters<typeof temporaryDirectory>[0], sample: SampleCase, content: Buffer, dryRun: boolean) {
  const directory = await temporaryDirectory(t);
  const configPath = join(directory, 'audit-retention.yml');
  await writeFile(
    configPath,
    `profiles:\n  default:\n    audit:\n      enabled: true\n      path: logs/audit.jsonl\n      retention_days: 1\n      timestamp_field: ${sample.timestampField}\n`,
  );
  const logPath = join(directory, 'logs', 'audit.jsonl');
  await writeText(logPath, content);

  const settings = loadSettings({ configPath, env: { LOG_LEVEL: 'silent' } });
  const outcome = await runCleanup({ profile: settings.profiles.get('default')!, dryRun, nowMs: Date.parse(sample.now) });
  const after = await readFile(logPath).catch(() => null);
  return { outcome, after };
}

for (const sample of CASES) {
  for (const [variant, transform] of Object.entries(VARIANTS)) {
    test(`sample ${sample.file} (${sample.timestampField}, ${variant})`, async (t) => {
      const content = transform(await readFile(join(SAMPLES, sample.file)));
      const expected = referenceCleanup(content, { bySchema: {}, defaultDays: 1, timestampField: sample.timestampField }, Date.parse(sample.now));
      const expectedTotal = Object.values(expected.deleted).reduce((sum, count) => sum + count, 0);

      const dry = await cleanSample(t, sample, content, true);
      const real = await cleanSample(t, sample, content, false);

      assert.equal(dry.outcome.totalDeleted, expectedTotal);
      assert.equal(real.outcome.totalDeleted, expectedTotal);
      assert.deepEqual(Object.fromEntries(real.outcome.deletedPerSchema), expected.deleted);
      const keptLines = expected.kept.toString('latin1').replace(/^\ufeff|^\u00ef\u00bb\u00bf/, '');
      if (keptLines.length === 0) {
        assert.equal(real.after, null);
      } else {
        assert.deepEqual(real.after, expected.kept);
      }
    });
  }
}

test('bunyan sample counts by kind', async (t) => {
  const sample = { file: 'bunyan/all.log', timestampField: 'time', now: '2030-01-01T00:00:00Z' };
  const content = await readFile(join(SAMPLES, sample.file));

  const { outcome } = await cleanSample(t, sample, content, true);

  // all.log: 14 JSON objects, one of them without `time`, 4 non-JSON lines and 2 blank lines.
  const tally = outcome.files[0]!.tally;
  assert.equal(tally.records, 13);
  assert.equal(tally.malformedByKind['no_timestamp'], 1);
  assert.equal(tally.malformedByKind['not_json'], 4);
  assert.equal(tally.blankLines, 2);
});

test('gzip sample is read', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = join(directory, 'audit-retention.yml');
  await writeFile(configPath, 'profiles:\n  default:\n    audit:\n      enabled: true\n      path: logs/log1.log\n      retention_days: 1\n      timestamp_field: time\n');
  const compressed = await readFile(join(SAMPLES, 'bunyan', 'log1.log.gz'));
  // logrotate names a compressed rotation with a number; the sample is renamed to that form.
  await writeText(join(directory, 'logs', 'log1.log.1.gz'), compressed);

  const settings = loadSettings({ configPath, env: { LOG_LEVEL: 'silent' } });
  const outcome = await runCleanup({ profile: settings.profiles.get('default')!, dryRun: false, nowMs: Date.parse('2012-05-09T17:00:00Z') });

  const expected = referenceCleanup(gunzipSync(compressed), { bySchema: {}, defaultDays: 1, timestampField: 'time' }, Date.parse('2012-05-09T17:00:00Z'));
  assert.deepEqual(Object.fromEntries(outcome.deletedPerSchema), expected.deleted);
  assert.deepEqual(gunzipSync(await readFile(join(directory, 'logs', 'log1.log.1.gz'))), expected.kept);
});
