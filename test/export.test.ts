/** Exports to each format with real DuckDB and real files: contents, timestamps, filters, malformed lines, partitions. */

import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';

import { runCleanup } from '../src/core/cleanup.js';
import { writeArchive } from '../src/core/export/archive.js';
import { StagingWriter, repairLoneSurrogates, stageLogFiles } from '../src/core/export/staging.js';
import { discoverLayout } from '../src/core/layout.js';
import { selectProfile } from '../src/config/load.js';
import { exportFixture, exportLog, queryDuckDB } from './export-helpers.js';
import { DAY_MS, NOW_MS, PROJECT_ROOT, recordLine, temporaryDirectory, writeText } from './helpers.js';

/** Timestamp forms the scanner accepts, with the normalized value each must become. */
const TIMESTAMP_FORMS: [written: unknown, normalized: string][] = [
  ['2026-03-01T10:20:30Z', '2026-03-01T10:20:30.000000Z'],
  ['2026-03-01T10:20:30z', '2026-03-01T10:20:30.000000Z'],
  ['2026-03-01T10:20:30.123456789+05:30', '2026-03-01T04:50:30.123456Z'],
  ['2026-03-01T10:20:30+0530', '2026-03-01T04:50:30.000000Z'],
  ['2026-03-01T10:20:30.5-08:00', '2026-03-01T18:20:30.500000Z'],
  ['2026-03-01T10:20:30-0130', '2026-03-01T11:50:30.000000Z'],
  ['2026-03-01 10:20:30', '2026-03-01T10:20:30.000000Z'],
  ['2026-03-01T10:20:30,25Z', '2026-03-01T10:20:30.250000Z'],
  ['2026-03-01T00:10:00.1+01:00', '2026-02-28T23:10:00.100000Z'],
  ['2026-03-01T10:20:30.1Z', '2026-03-01T10:20:30.100000Z'],
  ['2026-03-01T10:20:30.12Z', '2026-03-01T10:20:30.120000Z'],
  ['2026-03-01T10:20:30.123Z', '2026-03-01T10:20:30.123000Z'],
  ['2026-03-01T10:20:30.1234Z', '2026-03-01T10:20:30.123400Z'],
  ['2026-03-01T10:20:30.12345Z', '2026-03-01T10:20:30.123450Z'],
  ['2026-03-01T10:20:30.123456Z', '2026-03-01T10:20:30.123456Z'],
  ['2026-03-01T10:20:30.1234567Z', '2026-03-01T10:20:30.123456Z'],
  ['2026-03-01T10:20:30.12345678Z', '2026-03-01T10:20:30.123456Z'],
  ['2026-03-01T10:20:30.999999999Z', '2026-03-01T10:20:30.999999Z'],
  [1772360430123, '2026-03-01T10:20:30.123000Z'],
  [1772360430123.456, '2026-03-01T10:20:30.123456Z'],
  [1.7723604301e12, '2026-03-01T10:20:30.100000Z'],
];

/** Epoch-second forms for a profile with timestamp_unit s. */
const SECOND_FORMS: [written: number, normalized: string][] = [
  [1772360430, '2026-03-01T10:20:30.000000Z'],
  [1772360430.5, '2026-03-01T10:20:30.500000Z'],
  [1772360430.123456, '2026-03-01T10:20:30.123456Z'],
];

function formLines(forms: [unknown, string][]): string {
  return forms.map(([written], index) => recordLine({ timestamp: written, record_id: `form-${index}` })).join('');
}

test('duckdb export normalizes every timestamp form', async (t) => {
  const fixture = await exportFixture(t, formLines(TIMESTAMP_FORMS));

  const outcome = await exportLog(fixture, { format: 'duckdb', destination: 'forms.duckdb' });

  assert.equal(outcome.recordsExported, TIMESTAMP_FORMS.length);
  const rows = await queryDuckDB(
    [`SELECT a.record_id, a."timestamp", a.timestamp_original, epoch_us(l."timestamp") AS instant_us, typeof(l."timestamp") AS view_type
      FROM audit_logs a JOIN logs l USING (record_id) ORDER BY record_id`],
    { path: outcome.path },
  );
  const byId = new Map(rows.map((row) => [row['record_id'], row]));
  for (const [index, [written, normalized]] of TIMESTAMP_FORMS.entries()) {
    const row = byId.get(`form-${index}`)!;
    assert.equal(row['timestamp'], normalized, `timestamp of ${JSON.stringify(written)}`);
    assert.equal(row['view_type'], 'TIMESTAMP WITH TIME ZONE');
    const expectedMicros = BigInt(Date.parse(normalized)) * 1000n + BigInt(normalized.slice(23, 26));
    assert.equal(row['instant_us'], expectedMicros, `instant of ${JSON.stringify(written)} in the view`);
    if (typeof written === 'string') {
      assert.equal(row['timestamp_original'], written);
    }
  }
});

test('epoch seconds follow timestamp_unit s', async (t) => {
  const fixture = await exportFixture(t, formLines(SECOND_FORMS), 'timestamp_unit: s');

  const outcome = await exportLog(fixture, { format: 'parquet', destination: 'seconds.parquet' });

  const rows = await queryDuckDB([`SELECT record_id, "timestamp" FROM read_parquet($path) ORDER BY record_id`], { parameters: { path: outcome.path } });
  assert.deepEqual(
    rows.map((row) => row['timestamp']),
    SECOND_FORMS.map(([, normalized]) => normalized),
  );
});

test('documented queries run unchanged on the duckdb export', async (t) => {
  const lines =
    recordLine({ timestamp: '2026-01-31T23:30:00-01:00', operation_name: 'get_user' }) +
    recordLine({ timestamp: '2026-02-01T00:30:00+05:30', operation_name: 'get_user' }) +
    recordLine({ timestamp: '2026-02-15T12:00:00Z', operation_name: 'list_orders' }) +
    recordLine({ timestamp: '2026-03-01T00:00:00Z', operation_name: 'get_user', operation_type: 'resource' });
  const fixture = await exportFixture(t, lines);
  const outcome = await exportLog(fixture, { format: 'duckdb', destination: 'audit.duckdb' });

  const months = await queryDuckDB(
    ['SELECT DATE_TRUNC(\'month\', timestamp::TIMESTAMP) AS month, COUNT(*) FROM audit_logs GROUP BY month ORDER BY month;'],
    { path: outcome.path },
  );
  const tools = await queryDuckDB(
    ["SELECT operation_name, COUNT(*) AS count FROM logs WHERE operation_type = 'tool' GROUP BY operation_name ORDER BY count DESC LIMIT 10;"],
    { path: outcome.path },
  );

  // 2026-01-31T23:30-01:00 is 2026-02-01T00:30Z, and 2026-02-01T00:30+05:30 is 2026-01-31T19:00Z.
  assert.deepEqual(
    months.map((row) => [(row['month'] as Date).toISOString(), row['count_star()']]),
    [
      ['2026-01-01T00:00:00.000Z', 1n],
      ['2026-02-01T00:00:00.000Z', 2n],
      ['2026-03-01T00:00:00.000Z', 1n],
    ],
  );
  assert.deepEqual(
    tools.map((row) => [row['operation_name'], row['count']]),
    [
      ['get_user', 2n],
      ['list_orders', 1n],
    ],
  );
});

test('documented DELETE works on the duckdb export', async (t) => {
  const old = new Date(Date.now() - 200 * DAY_MS).toISOString().replace('Z', '+05:30');
  const recent = new Date(Date.now() - DAY_MS).toISOString().replace('Z', '-08:00');
  const fixture = await exportFixture(t, recordLine({ timestamp: old }) + recordLine({ timestamp: old }) + recordLine({ timestamp: recent }));
  const outcome = await exportLog(fixture, { format: 'duckdb', destination: 'audit.duckdb' });

  const rows = await queryDuckDB(
    ["DELETE FROM audit_logs WHERE timestamp::TIMESTAMP < CURRENT_DATE - INTERVAL '90 days'", 'SELECT count(*) AS remaining FROM audit_logs'],
    { path: outcome.path },
  );

  assert.equal(rows[0]!['remaining'], 1n);
});

/** Reads an export back: Parquet and CSV through DuckDB (CSV as text), JSON lines with JSON.parse. */
async function readExport(format: 'parquet' | 'csv' | 'jsonl', path: string): Promise<Record<string, unknown>[]> {
  if (format === 'jsonl') {
    const bytes = await readFile(path);
    const text = (path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
    const rows = text.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    return rows.sort((left, right) => String(left['timestamp']).localeCompare(String(right['timestamp'])));
  }
  const reader = format === 'parquet' ? 'read_parquet($path)' : 'read_csv($path, header = true, all_varchar = true)';
  return queryDuckDB([`SELECT * FROM ${reader} ORDER BY "timestamp"`], { parameters: { path } });
}

test('each format round-trips fields and count', async (t) => {
  const lines =
    recordLine({ timestamp: '2026-03-01T10:00:00+02:00', duration_ms: 12, input_data: { id: 7, tags: ['a', 'b'] }, user_id: 'ana' }) +
    recordLine({ timestamp: '2026-03-02T10:00:00Z', duration_ms: 3.5, input_data: null, user_id: 'bo "quoted", comma' }) +
    recordLine({ timestamp: '2026-03-03T10:00:00Z', policies_evaluated: [{ name: 'p', decision: 'allow' }], user_id: 'zoë\nnewline' });
  const fixture = await exportFixture(t, lines);

  for (const destination of ['audit.parquet', 'audit.csv', 'audit.csv.gz', 'audit.jsonl', 'audit.jsonl.gz']) {
    const format = destination.includes('parquet') ? 'parquet' : destination.includes('csv') ? 'csv' : 'jsonl';
    const outcome = await exportLog(fixture, { format, destination });

    const rows = await readExport(format, outcome.path);
    assert.equal(outcome.recordsExported, 3, destination);
    assert.equal(rows.length, 3, destination);
    assert.deepEqual(
      rows.map((row) => String(row['timestamp'])),
      ['2026-03-01T08:00:00.000000Z', '2026-03-02T10:00:00.000000Z', '2026-03-03T10:00:00.000000Z'],
      destination,
    );
    assert.deepEqual(
      rows.map((row) => row['user_id']),
      ['ana', 'bo "quoted", comma', 'zoë\nnewline'],
      destination,
    );
    const inputData = rows[0]!['input_data'];
    assert.deepEqual(typeof inputData === 'string' ? JSON.parse(inputData) : inputData, { id: 7, tags: ['a', 'b'] }, destination);
    assert.equal(String(rows[0]!['timestamp_original']), '2026-03-01T10:00:00+02:00', destination);
    assert.equal(Number(rows[1]!['duration_ms']), 3.5, destination);
    assert.equal(outcome.compression, destination.endsWith('.gz') ? 'gzip' : 'none', destination);
  }
});

test('gz destination of jsonl is gzip', async (t) => {
  const fixture = await exportFixture(t, recordLine({ timestamp: '2026-03-01T10:00:00Z' }) + recordLine({ timestamp: '2026-03-02T10:00:00Z' }));

  const outcome = await exportLog(fixture, { format: 'jsonl', destination: 'audit.jsonl.gz' });

  const bytes = await readFile(outcome.path);
  assert.deepEqual([...bytes.subarray(0, 2)], [0x1f, 0x8b]);
  const lines = gunzipSync(bytes).toString('utf8').trimEnd().split('\n');
  assert.equal(lines.length, 2);
  assert.equal(JSON.parse(lines[1]!).timestamp, '2026-03-02T10:00:00.000000Z');
  assert.equal(outcome.bytes, bytes.length);
});

test('malformed lines counted as the cleanup counts them', async (t) => {
  const content = Buffer.concat([
    Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from(recordLine({ timestamp: '2026-03-01T10:00:00Z' })),
    Buffer.from('not json\n[1, 2]\n"text"\n{"no_timestamp": true}\n{"timestamp": "2026-02-30T00:00:00Z"}\n'),
    Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d, 0x0a]),
    Buffer.from('  \t\n\n'),
    Buffer.from(recordLine({ timestamp: '2026-03-02T10:00:00Z' }).replace('\n', '\r\n')),
    Buffer.from('{"timestamp": "2026-03-03T10:00:00Z", "partial": '),
  ]);
  const fixture = await exportFixture(t, content);

  const outcome = await exportLog(fixture, { format: 'jsonl', destination: 'audit.jsonl' });
  const dryRun = await runCleanup({ profile: selectProfile(fixture.settings, undefined), dryRun: true, nowMs: NOW_MS });

  const exported = (await readFile(outcome.path, 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line));
  assert.equal(outcome.recordsExported, 2);
  assert.equal(outcome.malformedLines, 6);
  assert.deepEqual(outcome.malformedByKind, { not_json: 1, not_object: 2, no_timestamp: 2, invalid_utf8: 1 });
  assert.equal(outcome.blankLines, 2);
  assert.deepEqual(outcome.partialLastLines, ['logs.jsonl']);
  const cleanupCounts = dryRun.files[0]!.tally;
  assert.equal(outcome.malformedLines, cleanupCounts.malformed);
  assert.deepEqual(outcome.malformedByKind, cleanupCounts.malformedByKind);
  assert.equal(outcome.blankLines, cleanupCounts.blankLines);
  assert.equal(outcome.recordsRead, cleanupCounts.records);
  assert.deepEqual(
    exported.map((record) => record.timestamp),
    ['2026-03-01T10:00:00.000000Z', '2026-03-02T10:00:00.000000Z'],
  );
});

test('lines longer than the scan limit are too_long', async (t) => {
  const long = recordLine({ timestamp: '2026-03-01T10:00:00Z', blob: 'x'.repeat(80 * 1024 * 1024) });
  const fixture = await exportFixture(t, recordLine({ timestamp: '2026-03-02T10:00:00Z' }) + long + recordLine({ timestamp: '2026-03-03T10:00:00Z' }));

  const outcome = await exportLog(fixture, { format: 'csv', destination: 'audit.csv' });

  assert.equal(outcome.recordsExported, 2);
  assert.deepEqual(outcome.malformedByKind, { too_long: 1 });
});

test('records of 20 MiB are exported', async (t) => {
  const fixture = await exportFixture(t, recordLine({ timestamp: '2026-03-01T10:00:00Z', blob: 'y'.repeat(20 * 1024 * 1024) }));

  const outcome = await exportLog(fixture, { format: 'duckdb', destination: 'big.duckdb' });

  const rows = await queryDuckDB(['SELECT length(blob) AS length FROM audit_logs'], { path: outcome.path });
  assert.equal(rows[0]!['length'], 20n * 1024n * 1024n);
});

test('heterogeneous CloudTrail records keep every field', async (t) => {
  const sample = await readFile(join(PROJECT_ROOT, 'test', 'fixtures', 'samples', 'cloudtrail', 'otel-cloudtrail-records.jsonl'));
  const fixture = await exportFixture(t, sample, 'timestamp_field: eventTime');
  const records = sample.toString('utf8').trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  const keys = new Set(records.flatMap((record) => Object.keys(record)));

  const outcome = await exportLog(fixture, { format: 'duckdb', destination: 'cloudtrail.duckdb' });

  assert.equal(outcome.recordsExported, records.length);
  for (const key of keys) {
    assert.ok(outcome.columns.includes(key), `column ${key}`);
  }
  assert.ok(outcome.columns.includes('timestamp'));
  assert.ok(outcome.columns.includes('timestamp_original'));
  const rows = await queryDuckDB(['SELECT "timestamp", timestamp_original, "eventTime", errorCode, userIdentity FROM audit_logs'], { path: outcome.path });
  for (const [index, row] of rows.entries()) {
    const record = records[index]!;
    assert.equal(row['timestamp_original'], record['eventTime']);
    assert.equal(row['timestamp'], String(record['eventTime']).replace('Z', '.000000Z'));
    assert.equal(row['errorCode'] ?? undefined, record['errorCode']);
    assert.deepEqual(row['userIdentity'] === null ? undefined : JSON.parse(String(row['userIdentity'])), record['userIdentity']);
  }
});

test('field that first appears late is exported', async (t) => {
  let lines = '';
  for (let index = 0; index < 30_000; index++) {
    lines += recordLine({ timestamp: '2026-03-01T10:00:00Z', record_id: `r-${index}`, duration_ms: index });
  }
  lines += recordLine({ timestamp: '2026-03-01T10:00:00Z', record_id: 'last', late_field: 'present', duration_ms: 'not a number' });
  const fixture = await exportFixture(t, lines);

  const outcome = await exportLog(fixture, { format: 'parquet', destination: 'late.parquet' });

  const rows = await queryDuckDB(["SELECT late_field, duration_ms FROM read_parquet($path) WHERE record_id IN ('last', 'r-7') ORDER BY record_id"], {
    parameters: { path: outcome.path },
  });
  assert.equal(outcome.recordsExported, 30_001);
  assert.equal(rows[0]!['late_field'], 'present');
  assert.equal(JSON.parse(String(rows[0]!['duration_ms'])), 'not a number');
  assert.equal(JSON.parse(String(rows[1]!['duration_ms'])), 7);
});

test('fields differing only in case are reported', async (t) => {
  const fixture = await exportFixture(t, recordLine({ timestamp: '2026-03-01T10:00:00Z', level: 'info', Level: 'INFO' }));

  const outcome = await exportLog(fixture, { format: 'duckdb', destination: 'case.duckdb' });

  assert.equal(outcome.recordsExported, 1);
  assert.deepEqual(
    outcome.droppedFields.map((dropped) => dropped.field),
    ['Level'],
  );
});

test('duplicate keys and lone surrogates are exported', async (t) => {
  const lines =
    '{"timestamp": "2026-03-01T10:00:00Z", "level": 30, "level": 40}\n' +
    '{"timestamp": "2026-03-01T11:00:00Z", "text": "broken \\ud800 pair \\\\ud800 kept \\ud83d\\ude00"}\n' +
    recordLine({ timestamp: '2026-03-01T12:00:00Z' });
  const fixture = await exportFixture(t, lines);

  const outcome = await exportLog(fixture, { format: 'jsonl', destination: 'repaired.jsonl' });

  const exported = (await readFile(outcome.path, 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line));
  assert.equal(outcome.recordsExported, 3);
  assert.equal(outcome.repairedRecords, 2);
  assert.equal(exported[0].level, 40);
  assert.equal(exported[1].text, 'broken \ufffd pair \\ud800 kept \u{1f600}');
});

test('lone surrogate repair keeps escaped backslashes', () => {
  const cases: [string, string | null][] = [
    ['{"a": "\\ud800"}\n', '{"a": "\\ufffd"}\n'],
    ['{"a": "\\udc00x"}\n', '{"a": "\\ufffdx"}\n'],
    ['{"a": "\\\\ud800"}\n', null],
    ['{"a": "\\ud83d\\ude00"}\n', null],
    ['{"a": "\\ud83d\\ud83d\\ude00"}\n', '{"a": "\\ufffd\\ud83d\\ude00"}\n'],
  ];
  for (const [line, expected] of cases) {
    const repaired = repairLoneSurrogates(Buffer.from(line));
    assert.equal(repaired?.toString() ?? null, expected, line);
  }
});

test('gz segments of the log are read', async (t) => {
  const fixture = await exportFixture(t, recordLine({ timestamp: '2026-03-03T10:00:00Z' }));
  await writeText(join(fixture.directory, 'audit', 'logs.jsonl.1.gz'), gzipSync(recordLine({ timestamp: '2026-03-01T10:00:00Z' }) + 'bad line\n'));

  const outcome = await exportLog(fixture, { format: 'csv', destination: 'all.csv' });

  assert.equal(outcome.recordsExported, 2);
  assert.equal(outcome.malformedLines, 1);
  assert.deepEqual(outcome.filesRead, ['logs.jsonl.1.gz', 'logs.jsonl']);
});

/** Six records that differ in one field each, for the field filters. */
function filterLog(): string {
  return (
    recordLine({ timestamp: '2026-03-01T00:00:00Z', record_id: 'base', schema_name: 'mxcp.endpoints', operation_type: 'tool', operation_name: 'get_user', operation_status: 'success', policy_decision: 'allow', user_id: 'ana' }) +
    recordLine({ timestamp: '2026-03-01T00:00:00Z', record_id: 'schema', schema_name: 'auth.events', operation_type: 'tool', operation_name: 'get_user', operation_status: 'success', policy_decision: 'allow', user_id: 'ana' }) +
    recordLine({ timestamp: '2026-03-01T00:00:00Z', record_id: 'type', schema_name: 'mxcp.endpoints', operation_type: 'resource', operation_name: 'get_user', operation_status: 'success', policy_decision: 'allow', user_id: 'ana' }) +
    recordLine({ timestamp: '2026-03-01T00:00:00Z', record_id: 'name', schema_name: 'mxcp.endpoints', operation_type: 'tool', operation_name: 'list_orders', operation_status: 'success', policy_decision: 'allow', user_id: 'ana' }) +
    recordLine({ timestamp: '2026-03-01T00:00:00Z', record_id: 'status', schema_name: 'mxcp.endpoints', operation_type: 'tool', operation_name: 'get_user', operation_status: 'error', policy_decision: 'allow', user_id: 'ana' }) +
    recordLine({ timestamp: '2026-03-01T00:00:00Z', record_id: 'policy', schema_name: 'mxcp.endpoints', operation_type: 'tool', operation_name: 'get_user', operation_status: 'success', policy_decision: 'deny', user_id: 'ana' }) +
    recordLine({ timestamp: '2026-03-01T00:00:00Z', record_id: 'user', schema_name: 'mxcp.endpoints', operation_type: 'tool', operation_name: 'get_user', operation_status: 'success', policy_decision: 'allow', user_id: 'bo' })
  );
}

async function exportedIds(path: string): Promise<string[]> {
  const rows = await queryDuckDB(['SELECT record_id FROM read_parquet($path) ORDER BY record_id'], { parameters: { path } });
  return rows.map((row) => String(row['record_id']));
}

test('field filters select records', async (t) => {
  const fixture = await exportFixture(t, filterLog());
  const cases: [string, Parameters<typeof exportLog>[1]['filters'], string[]][] = [
    ['schema', { schema: 'auth.events' }, ['schema']],
    ['operation type', { operationType: 'resource' }, ['type']],
    ['operation name', { operationName: 'list_orders' }, ['name']],
    ['status', { status: 'error' }, ['status']],
    ['policy', { policy: 'deny' }, ['policy']],
    ['user', { userId: 'bo' }, ['user']],
    ['two filters', { operationType: 'tool', userId: 'ana' }, ['base', 'name', 'policy', 'schema', 'status']],
    ['no match', { userId: 'nobody' }, []],
  ];

  for (const [name, filters, expected] of cases) {
    const outcome = await exportLog(fixture, { format: 'parquet', destination: `filter-${name.replaceAll(' ', '-')}.parquet`, filters });
    assert.deepEqual(await exportedIds(outcome.path), expected, name);
    assert.equal(outcome.recordsRead, 7, name);
  }
});

test('filter on a field no record has matches nothing', async (t) => {
  const fixture = await exportFixture(t, '{"timestamp": "2026-03-01T00:00:00Z", "msg": "no operation fields"}\n');

  const outcome = await exportLog(fixture, { format: 'csv', destination: 'none.csv', filters: { operationName: 'get_user' } });

  assert.equal(outcome.recordsExported, 0);
  assert.equal(outcome.recordsRead, 1);
});

test('since is inclusive and until exclusive', async (t) => {
  const lines = [
    '2026-03-01T09:59:59.999999Z',
    '2026-03-01T10:00:00Z',
    '2026-03-01T15:30:00.000001+05:30',
    '2026-03-01T11:59:59.999999Z',
    '2026-03-01T12:00:00Z',
  ]
    .map((timestamp, index) => recordLine({ timestamp, record_id: `t${index}` }))
    .join('');
  const fixture = await exportFixture(t, lines);
  const cases: [string, { since?: string; until?: string }, string[]][] = [
    ['since', { since: '2026-03-01T10:00:00Z' }, ['t1', 't2', 't3', 't4']],
    ['since with offset', { since: '2026-03-01T15:30:00+05:30' }, ['t1', 't2', 't3', 't4']],
    ['since in microseconds', { since: '2026-03-01T10:00:00.000001Z' }, ['t2', 't3', 't4']],
    ['until', { until: '2026-03-01T12:00:00Z' }, ['t0', 't1', 't2', 't3']],
    ['window', { since: '2026-03-01T10:00:00Z', until: '2026-03-01T10:00:00.000001Z' }, ['t1']],
  ];

  for (const [name, filters, expected] of cases) {
    const outcome = await exportLog(fixture, { format: 'parquet', destination: `${name.replaceAll(' ', '-')}.parquet`, filters });
    assert.deepEqual(await exportedIds(outcome.path), expected, name);
  }
});

test('relative since counts back from now', async (t) => {
  const lines = [
    [30 * DAY_MS + 1, 'older'],
    [30 * DAY_MS, 'boundary'],
    [2 * 3_600_000, 'hours'],
    [0, 'now'],
  ]
    .map(([agoMs, id]) => recordLine({ timestamp: new Date(NOW_MS - (agoMs as number)).toISOString(), record_id: id }))
    .join('');
  const fixture = await exportFixture(t, lines);
  const cases: [string, string[]][] = [
    ['30d', ['boundary', 'hours', 'now']],
    ['2h', ['hours', 'now']],
    ['121m', ['hours', 'now']],
    ['7199s', ['now']],
  ];

  for (const [since, expected] of cases) {
    const outcome = await exportLog(fixture, { format: 'parquet', destination: `since-${since}.parquet`, filters: { since } });
    assert.deepEqual((await exportedIds(outcome.path)).sort(), [...expected].sort(), since);
  }
});

test('hostile filter values are compared as data', async (t) => {
  const hostile = "'; DROP TABLE audit_logs; --";
  const lines = recordLine({ timestamp: '2026-03-01T00:00:00Z', operation_name: hostile, record_id: 'hostile' }) + recordLine({ timestamp: '2026-03-01T00:00:00Z', record_id: 'plain' });
  const fixture = await exportFixture(t, lines);
  const values = [hostile, '" OR 1=1 --', "$since'); SELECT 1; --", '\\', '%', "x' OR 'x'='x"];

  for (const [index, value] of values.entries()) {
    const outcome = await exportLog(fixture, {
      format: 'duckdb',
      destination: `hostile-${index}.duckdb`,
      filters: { schema: value === hostile ? undefined : value, operationName: value, status: value === hostile ? undefined : value },
    });
    const tables = await queryDuckDB(["SELECT count(*) AS tables FROM duckdb_tables() WHERE table_name = 'audit_logs'"], { path: outcome.path });
    assert.equal(tables[0]!['tables'], 1n, value);
    assert.equal(outcome.recordsExported, value === hostile ? 1 : 0, value);
  }
});

test('partition by day writes hive folders', async (t) => {
  const lines =
    recordLine({ timestamp: '2026-03-01T10:00:00Z', record_id: 'a' }) +
    recordLine({ timestamp: '2026-03-02T01:00:00+05:30', record_id: 'b' }) +
    recordLine({ timestamp: '2026-03-02T23:59:59.999999Z', record_id: 'c' }) +
    recordLine({ timestamp: '2026-03-03T00:00:00Z', record_id: 'd' }) +
    'broken\n';
  const fixture = await exportFixture(t, lines);

  const outcome = await exportLog(fixture, { format: 'parquet', destination: 'archive/hosts/web-1', partition: 'day' });

  const folders = (await readdir(outcome.path)).sort();
  assert.deepEqual(folders, ['date=2026-03-01', 'date=2026-03-02', 'date=2026-03-03']);
  for (const folder of folders) {
    const files = await readdir(join(outcome.path, folder));
    assert.equal(files.length, 1, folder);
    assert.match(files[0]!, /\.parquet$/);
  }
  const rows = await queryDuckDB(
    ["SELECT CAST(\"date\" AS VARCHAR) AS day, list(record_id ORDER BY record_id) AS ids FROM read_parquet($glob, hive_partitioning = true) GROUP BY day ORDER BY day"],
    { parameters: { glob: join(outcome.path, '*', '*.parquet') } },
  );
  assert.deepEqual(
    rows.map((row) => [row['day'], row['ids']]),
    [
      ['2026-03-01', ['a', 'b']],
      ['2026-03-02', ['c']],
      ['2026-03-03', ['d']],
    ],
  );
  assert.equal(outcome.recordsExported, 4);
  assert.equal(outcome.filesWritten, 3);
  assert.equal(outcome.name, 'archive/hosts/web-1');
});

test('partition with a date field is rejected', async (t) => {
  const fixture = await exportFixture(t, recordLine({ timestamp: '2026-03-01T10:00:00Z', date: '2026-03-01' }));

  await assert.rejects(exportLog(fixture, { format: 'parquet', destination: 'dated', partition: 'day' }), /field 'date'/);
  assert.deepEqual(await readdir(fixture.exportDirectory), []);
});

test('partition needs parquet', async (t) => {
  const fixture = await exportFixture(t, recordLine({ timestamp: '2026-03-01T10:00:00Z' }));

  await assert.rejects(exportLog(fixture, { format: 'csv', destination: 'x.csv', partition: 'day' }), { code: 'AR_INVALID_INPUT' });
});

test('empty log exports an empty table', async (t) => {
  const fixture = await exportFixture(t, 'not a record\n');

  const outcome = await exportLog(fixture, { format: 'duckdb', destination: 'empty.duckdb' });

  const rows = await queryDuckDB(['SELECT count(*) AS count FROM logs'], { path: outcome.path });
  assert.equal(outcome.recordsExported, 0);
  assert.equal(rows[0]!['count'], 0n);
  assert.deepEqual(outcome.columns, ['timestamp', 'timestamp_original']);
});

test('staging helper thread stages the same bytes', async (t) => {
  const fixture = await exportFixture(t, '');
  const kinds = ['not json\n', '[1]\n', '{"no_timestamp": 1}\n', '\n', '{"timestamp": "2026-02-30T00:00:00Z"}\n'];
  let content = '\ufeff';
  for (let index = 0; index < 20_000; index++) {
    content += index % 7 === 3 ? kinds[index % kinds.length]! : recordLine({ timestamp: '2026-03-01T10:00:00Z', record_id: `r-${index}`, text: 'x'.repeat(index % 300) });
  }
  await writeText(fixture.logPath, content);
  const profile = selectProfile(fixture.settings, undefined);
  const layout = await discoverLayout(profile.logPath, profile.name);

  const results = [];
  for (const helper of [false, true]) {
    const directory = join(fixture.directory, `staging-${helper}`);
    const result = await stageLogFiles(layout.files, directory, { scanner: { timestampField: 'timestamp', timestampUnit: 'ms' }, helper });
    const bytes = Buffer.concat(await Promise.all(result.staging.paths.map((path) => readFile(path))));
    results.push({ result, bytes });
  }

  const [single, split] = results;
  assert.ok(single!.bytes.length > 1024 * 1024);
  assert.ok(single!.bytes.equals(split!.bytes));
  assert.equal(split!.result.records, single!.result.records);
  assert.deepEqual(split!.result.malformedByKind, single!.result.malformedByKind);
  assert.equal(split!.result.blankLines, single!.result.blankLines);
  assert.equal(single!.bytes.subarray(0, 3).toString('latin1'), '{"s');
});

test('writeArchive writes a staging file from add and flush', async (t) => {
  const directory = await temporaryDirectory(t);
  const writer = await StagingWriter.create(join(directory, 'staging'));
  const chunk = Buffer.from(recordLine({ timestamp: '2026-03-01T10:00:00+01:00' }) + recordLine({ timestamp: 1772360430123 }));
  writer.add(chunk.subarray(0, chunk.indexOf(0x0a) + 1));
  writer.add(chunk.subarray(chunk.indexOf(0x0a) + 1));
  chunk.fill(0x20);
  await writer.flush();
  const staging = await writer.close();

  const result = await writeArchive(staging.paths, 'duckdb', join(directory, 'archive.duckdb'), { expectedRecords: staging.records });

  const rows = await queryDuckDB(['SELECT "timestamp" FROM audit_logs ORDER BY "timestamp"'], { path: join(directory, 'archive.duckdb') });
  assert.equal(staging.records, 2);
  assert.equal(result.records, 2);
  assert.equal(result.bytes, (await readFile(join(directory, 'archive.duckdb'))).length);
  assert.deepEqual(
    rows.map((row) => row['timestamp']),
    ['2026-03-01T09:00:00.000000Z', '2026-03-01T10:20:30.123000Z'],
  );
  assert.deepEqual((await readdir(directory)).sort(), ['archive.duckdb', 'staging']);
});
