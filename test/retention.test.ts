/**
 * Retention precedence (config, schemas file by exact then latest version, profile, 90)
 * and the reader of the schemas file, on temporary files.
 */

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { ErrorCode, RetentionError } from '../src/core/errors.js';
import {
  DEFAULT_RETENTION_DAYS,
  RetentionRules,
  UNKNOWN_SCHEMA_KEY,
  type RetentionDays,
  type RetentionInputs,
} from '../src/core/retention.js';
import { readSchemasFile } from '../src/core/schemas-file.js';

const DAY_MS = 86_400_000;
const NOW_MS = Date.UTC(2026, 11, 4, 12);

/** Schemas file retention as plain objects: name, then version, then days. Undefined marks a version without retention_days. */
type SchemasTable = Record<string, Record<number, RetentionDays | undefined>>;

function rulesFor(
  config: Record<string, RetentionDays>,
  schemasFile: SchemasTable,
  profileRetentionDays: RetentionDays | undefined,
): RetentionRules {
  const schemasFileRetention = new Map(
    Object.entries(schemasFile).map(([name, versions]) => [
      name,
      new Map(Object.entries(versions).map(([version, days]) => [Number(version), days])),
    ]),
  );
  const inputs: RetentionInputs = { configRetention: new Map(Object.entries(config)), schemasFileRetention, profileRetentionDays };
  return new RetentionRules(inputs, NOW_MS);
}

/** One schema in every layer, and others in fewer layers, to show which layer wins. */
const LAYERED_CONFIG = { 'config.events': 10, 'forever.events': null };
const LAYERED_SCHEMAS: SchemasTable = {
  'config.events': { 1: 20 },
  'file.events': { 1: 30, 3: 40 },
  'forever.events': { 1: 50 },
  'kept.events': { 1: null, 2: 60 },
  'silent.events': { 1: undefined, 2: 70 },
  'silent-latest.events': { 1: 80, 4: undefined },
};

/** The profile's retention_days in most cases below. */
const PROFILE_DAYS = 365;

function layeredRules(profileRetentionDays: RetentionDays | undefined): RetentionRules {
  return rulesFor(LAYERED_CONFIG, LAYERED_SCHEMAS, profileRetentionDays);
}

// ---------------------------------------------------------------------------
// Precedence

test('precedence: config beats schemas file', () => {
  const rule = layeredRules(PROFILE_DAYS).ruleFor('config.events', 1);
  assert.equal(rule.retentionDays, 10);
  assert.equal(rule.source, 'config');
  assert.equal(rule.cutoffMs, NOW_MS - 10 * DAY_MS);
});

test('precedence: config forever beats file', () => {
  const rule = layeredRules(PROFILE_DAYS).ruleFor('forever.events', 1);
  assert.equal(rule.retentionDays, null);
  assert.equal(rule.source, 'config');
  assert.equal(rule.cutoffMs, -Infinity);
});

test('precedence: schemas file exact version', () => {
  const rules = layeredRules(PROFILE_DAYS);
  const first = rules.ruleFor('file.events', 1);
  assert.equal(first.retentionDays, 30);
  assert.equal(first.source, 'schemas_file');
  assert.equal(rules.ruleFor('file.events', 3).retentionDays, 40);
});

test('precedence: missing version uses latest', () => {
  const rules = layeredRules(PROFILE_DAYS);
  const between = rules.ruleFor('file.events', 2);
  assert.equal(between.retentionDays, 40);
  assert.equal(between.source, 'schemas_file');
  assert.equal(between.key, 'file.events:2');
  assert.equal(rules.ruleFor('file.events', 9).retentionDays, 40);
  assert.equal(rules.ruleFor('file.events', -1).retentionDays, 40);
});

test('precedence: profile when no file entry', () => {
  const rule = layeredRules(PROFILE_DAYS).ruleFor('other.events', 1);
  assert.equal(rule.retentionDays, PROFILE_DAYS);
  assert.equal(rule.source, 'profile');
  assert.equal(rule.cutoffMs, NOW_MS - PROFILE_DAYS * DAY_MS);
});

test('precedence: default 90 without profile', () => {
  const rule = layeredRules(undefined).ruleFor('other.events', 1);
  assert.equal(rule.retentionDays, DEFAULT_RETENTION_DAYS);
  assert.equal(rule.retentionDays, 90);
  assert.equal(rule.source, 'default');
  assert.equal(rule.cutoffMs, NOW_MS - 90 * DAY_MS);
});

test('precedence: profile forever', () => {
  const rule = layeredRules(null).ruleFor('other.events', 1);
  assert.equal(rule.retentionDays, null);
  assert.equal(rule.source, 'profile');
  assert.equal(rule.cutoffMs, -Infinity);
});

test('schemas file null keeps forever', () => {
  const rules = layeredRules(PROFILE_DAYS);
  const keptForever = rules.ruleFor('kept.events', 1);
  assert.equal(keptForever.retentionDays, null);
  assert.equal(keptForever.source, 'schemas_file');
  assert.equal(keptForever.cutoffMs, -Infinity);
  assert.equal(rules.ruleFor('kept.events', 2).retentionDays, 60);
});

test('version without retention_days uses profile', () => {
  const rules = layeredRules(PROFILE_DAYS);
  const silent = rules.ruleFor('silent.events', 1);
  assert.equal(silent.retentionDays, PROFILE_DAYS);
  assert.equal(silent.source, 'profile');
  // The name's other version sets 70, but the defined version is the one that counts.
  assert.equal(rules.ruleFor('silent.events', 2).retentionDays, 70);
});

test('latest version without retention_days', () => {
  const rules = layeredRules(undefined);
  const missing = rules.ruleFor('silent-latest.events', 3);
  assert.equal(missing.retentionDays, 90);
  assert.equal(missing.source, 'default');
  assert.equal(rules.ruleFor('silent-latest.events', 1).retentionDays, 80);
});

test('empty version map uses profile', () => {
  const rules = new RetentionRules(
    { configRetention: new Map(), schemasFileRetention: new Map([['empty.events', new Map()]]), profileRetentionDays: 7 },
    NOW_MS,
  );
  assert.equal(rules.ruleFor('empty.events', 1).retentionDays, 7);
  assert.equal(rules.ruleFor('empty.events', 1).source, 'profile');
});

test('latest of 200,000 versions', () => {
  const versions = new Map<number, RetentionDays | undefined>();
  for (let version = 1; version <= 200_000; version++) {
    versions.set(version, version === 200_000 ? 12 : 5);
  }
  const rules = new RetentionRules(
    { configRetention: new Map(), schemasFileRetention: new Map([['many.events', versions]]), profileRetentionDays: undefined },
    NOW_MS,
  );
  assert.equal(rules.ruleFor('many.events', 0).retentionDays, 12);
});

// ---------------------------------------------------------------------------
// Records without a schema name

test('unknown schema uses profile', () => {
  // A config or schemas file entry named "unknown" is for a schema of that name, not for records without one.
  const rules = rulesFor({ unknown: 5 }, { unknown: { 1: 6 } }, 30);
  const rule = rules.ruleFor(null, 1);
  assert.equal(rule.key, UNKNOWN_SCHEMA_KEY);
  assert.equal(rule.key, 'unknown');
  assert.equal(rule.schemaName, null);
  assert.equal(rule.retentionDays, 30);
  assert.equal(rule.source, 'profile');
});

test('unknown schema ignores version', () => {
  const rules = layeredRules(PROFILE_DAYS);
  assert.equal(rules.ruleFor(null, 7), rules.ruleFor(null, 1));
  assert.equal(rules.ruleFor(null, -3).key, 'unknown');
});

test('unknown schema default without profile', () => {
  const rule = layeredRules(undefined).ruleFor(null, 1);
  assert.equal(rule.retentionDays, 90);
  assert.equal(rule.source, 'default');
});

test('schema named unknown is distinct', () => {
  const rules = rulesFor({ unknown: 5 }, {}, 30);
  const named = rules.ruleFor('unknown', 1);
  assert.equal(named.key, 'unknown:1');
  assert.equal(named.retentionDays, 5);
  assert.notEqual(named, rules.ruleFor(null, 1));
});

// ---------------------------------------------------------------------------
// Keys and memoization

test('rule key is name:version', () => {
  assert.equal(layeredRules(PROFILE_DAYS).ruleFor('file.events', 3).key, 'file.events:3');
});

test('rules are memoized', () => {
  const rules = layeredRules(PROFILE_DAYS);
  assert.equal(rules.ruleFor('file.events', 1), rules.ruleFor('file.events', 1));
  assert.notEqual(rules.ruleFor('file.events', 1), rules.ruleFor('file.events', 3));
});

test('resolvedRules sorted by key', () => {
  const rules = layeredRules(PROFILE_DAYS);
  rules.ruleFor('file.events', 3);
  rules.ruleFor(null, 1);
  rules.ruleFor('config.events', 1);
  rules.ruleFor('file.events', 1);
  assert.deepEqual(
    rules.resolvedRules().map((rule) => rule.key),
    ['config.events:1', 'file.events:1', 'file.events:3', 'unknown'],
  );
});

// ---------------------------------------------------------------------------
// readSchemasFile

async function writeSchemasFile(t: TestContext, lines: readonly string[]): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'audit-retention-schemas-'));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const path = join(directory, 'logs_schemas.jsonl');
  await writeFile(path, lines.join('\n'));
  return path;
}

/** Awaits `promise` and returns what it rejected with, or fails when it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

test('readSchemasFile reads retention by version', async (t) => {
  const path = await writeSchemasFile(t, [
    '{"schema_name": "mxcp.endpoints", "version": 1, "retention_days": 90}',
    '{"schema_name": "mxcp.endpoints", "version": 2, "retention_days": 30}',
    '{"schema_name": "auth.events", "version": 1, "retention_days": null}',
    '{"schema_name": "debug.logs", "version": 1}',
    '',
  ]);
  const file = await readSchemasFile(path);
  assert.equal(file.found, true);
  assert.equal(file.ignoredLines, 0);
  assert.equal(file.retention.get('mxcp.endpoints')?.get(1), 90);
  assert.equal(file.retention.get('mxcp.endpoints')?.get(2), 30);
  assert.equal(file.retention.get('auth.events')?.get(1), null);
  assert.ok(file.retention.get('debug.logs')?.has(1));
  assert.equal(file.retention.get('debug.logs')?.get(1), undefined);
});

test('readSchemasFile later lines replace earlier', async (t) => {
  const path = await writeSchemasFile(t, [
    '{"schema_name": "auth.events", "version": 1, "retention_days": 30}',
    '{"schema_name": "debug.logs", "version": 1, "retention_days": 5}',
    '{"schema_name": "auth.events", "version": 1, "retention_days": 365}',
    '{"schema_name": "debug.logs", "version": 1}',
  ]);
  const file = await readSchemasFile(path);
  assert.equal(file.retention.get('auth.events')?.get(1), 365);
  assert.ok(file.retention.get('debug.logs')?.has(1));
  assert.equal(file.retention.get('debug.logs')?.get(1), undefined);
});

test('readSchemasFile replaced invalid value', async (t) => {
  // Only the final entry of a name and version is validated.
  const path = await writeSchemasFile(t, [
    '{"schema_name": "auth.events", "version": 1, "retention_days": 0}',
    '{"schema_name": "auth.events", "version": 1, "retention_days": 30}',
  ]);
  const file = await readSchemasFile(path);
  assert.equal(file.retention.get('auth.events')?.get(1), 30);
});

const INVALID_FILE_RETENTION: readonly [label: string, valueText: string][] = [
  ['0', '0'],
  ['-1', '-1'],
  ['1.5', '1.5'],
  ['"x"', '"x"'],
  ['"forever"', '"forever"'],
  ['"30"', '"30"'],
  ['true', 'true'],
  ['object', '{"days": 30}'],
];

for (const [label, valueText] of INVALID_FILE_RETENTION) {
  test(`readSchemasFile rejects retention ${label}`, async (t) => {
    const path = await writeSchemasFile(t, [
      '{"schema_name": "mxcp.endpoints", "version": 1, "retention_days": 90}',
      `{"schema_name": "auth.events", "version": 2, "retention_days": ${valueText}}`,
    ]);
    const error = await rejectionOf(readSchemasFile(path));
    assert.ok(error instanceof RetentionError, `expected a RetentionError, got ${String(error)}`);
    assert.equal(error.code, ErrorCode.SCHEMAS_INVALID);
    assert.match(error.message, /'auth\.events'/);
    assert.match(error.message, /version 2/);
    assert.ok(error.message.includes(path), `message does not name ${path}: ${error.message}`);
  });
}

test('readSchemasFile missing file is fine', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'audit-retention-schemas-'));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const file = await readSchemasFile(join(directory, 'absent_schemas.jsonl'));
  assert.equal(file.found, false);
  assert.equal(file.retention.size, 0);
  assert.equal(file.ignoredLines, 0);
});

test('readSchemasFile counts malformed lines', async (t) => {
  const path = await writeSchemasFile(t, [
    'not json',
    '{"schema_name": "auth.events", "version": 1, "retention_days": 30',
    '[1, 2]',
    '"auth.events"',
    'null',
    '{"version": 1, "retention_days": 30}',
    '{"schema_name": "", "retention_days": 30}',
    '{"schema_name": 5, "retention_days": 30}',
    '   ',
    '',
    '{"schema_name": "auth.events", "version": 1, "retention_days": 30}',
  ]);
  const file = await readSchemasFile(path);
  assert.equal(file.ignoredLines, 8);
  assert.equal(file.found, true);
  assert.deepEqual([...file.retention.keys()], ['auth.events']);
  assert.equal(file.retention.get('auth.events')?.get(1), 30);
});

test('readSchemasFile version forms', async (t) => {
  const path = await writeSchemasFile(t, [
    '{"schema_name": "a", "retention_days": 11}',
    '{"schema_name": "b", "version": 2.0, "retention_days": 12}',
    '{"schema_name": "c", "schema_version": 3, "retention_days": 13}',
    '{"schema_name": "d", "version": "4", "retention_days": 14}',
    '{"schema_name": "e", "version": 1.5, "retention_days": 15}',
  ]);
  const file = await readSchemasFile(path);
  assert.equal(file.retention.get('a')?.get(1), 11);
  assert.equal(file.retention.get('b')?.get(2), 12);
  assert.equal(file.retention.get('c')?.get(3), 13);
  assert.equal(file.retention.get('d')?.get(1), 14);
  assert.equal(file.retention.get('e')?.get(1), 15);
});

test('readSchemasFile CRLF and byte order mark', async (t) => {
  const path = await writeSchemasFile(t, [
    '\ufeff{"schema_name": "auth.events", "version": 1, "retention_days": 30}\r',
    '{"schema_name": "debug.logs", "version": 1, "retention_days": 5}\r',
    '',
  ]);
  const file = await readSchemasFile(path);
  assert.equal(file.ignoredLines, 0);
  assert.equal(file.retention.get('auth.events')?.get(1), 30);
  assert.equal(file.retention.get('debug.logs')?.get(1), 5);
});

test('readSchemasFile feeds RetentionRules', async (t) => {
  const path = await writeSchemasFile(t, [
    '{"schema_name": "mxcp.endpoints", "version": 1, "retention_days": 90}',
    '{"schema_name": "mxcp.endpoints", "version": 3, "retention_days": 30}',
    '{"schema_name": "auth.events", "version": 1, "retention_days": null}',
  ]);
  const file = await readSchemasFile(path);
  const rules = new RetentionRules(
    { configRetention: new Map([['debug.logs', 1]]), schemasFileRetention: file.retention, profileRetentionDays: 200 },
    NOW_MS,
  );
  assert.equal(rules.ruleFor('mxcp.endpoints', 1).retentionDays, 90);
  assert.equal(rules.ruleFor('mxcp.endpoints', 2).retentionDays, 30);
  assert.equal(rules.ruleFor('auth.events', 1).cutoffMs, -Infinity);
  assert.equal(rules.ruleFor('debug.logs', 1).retentionDays, 1);
  assert.equal(rules.ruleFor(null, 1).retentionDays, 200);
});
