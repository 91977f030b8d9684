/**
 * The export's own column types and its reading of log files in place: kinds of
 * number, types per mix of kinds, files that must be staged, files that change after
 * their scan, and equal output from both ways of reading.
 */

import assert from 'node:assert/strict';
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';

import { selectProfile } from '../src/config/load.js';
import { writeArchive } from '../src/core/export/archive.js';
import { MAX_COLUMNS, ValueKind, numberKind, readTypeForKinds } from '../src/core/export/columns.js';
import { changedInPlaceFiles, closeInPlaceFiles } from '../src/core/export/in-place.js';
import { createInputCheck } from '../src/core/export/run.js';
import { planObservedColumns } from '../src/core/export/sql.js';
import { stageLogFiles, type StagingResult } from '../src/core/export/staging.js';
import { discoverLayout } from '../src/core/layout.js';
import { exportFixture, exportLog, queryDuckDB, type ExportFixture } from './export-helpers.js';
import { recordLine, writeText } from './helpers.js';

const SCANNER = { timestampField: 'timestamp', timestampUnit: 'ms' } as const;

test('numberKind sorts numbers by the type that holds them', () => {
  const cases: [string, number][] = [
    ['0', ValueKind.SAFE_INTEGER],
    ['-0', ValueKind.SAFE_INTEGER],
    ['9007199254740992', ValueKind.SAFE_INTEGER],
    ['-9007199254740992', ValueKind.SAFE_INTEGER],
    ['9007199254740993', ValueKind.BIGINT_INTEGER],
    ['9223372036854775807', ValueKind.BIGINT_INTEGER],
    ['-9223372036854775808', ValueKind.BIGINT_INTEGER],
    ['9223372036854775808', ValueKind.HUGEINT_INTEGER],
    ['-9223372036854775809', ValueKind.HUGEINT_INTEGER],
    ['170141183460469231731687303715884105727', ValueKind.HUGEINT_INTEGER],
    ['-170141183460469231731687303715884105728', ValueKind.HUGEINT_INTEGER],
    ['170141183460469231731687303715884105728', ValueKind.HUGE_INTEGER],
    ['1000000000000000000000000000000000000000', ValueKind.HUGE_INTEGER],
    ['1.5', ValueKind.FLOAT],
    ['-0.0', ValueKind.FLOAT],
    ['1e3', ValueKind.FLOAT],
    ['1E+308', ValueKind.FLOAT],
    ['1e-400', ValueKind.FLOAT],
    ['1e309', ValueKind.FLOAT_OUT_OF_RANGE],
    ['-1.8e308', ValueKind.FLOAT_OUT_OF_RANGE],
    [`${'9'.repeat(309)}.5`, ValueKind.FLOAT_OUT_OF_RANGE],
  ];
  for (const [text, expected] of cases) {
    const bytes = Buffer.from(`[${text}]`);
    assert.equal(numberKind(bytes, 1, bytes.length - 1), expected, text);
  }
});

test('readTypeForKinds follows the mix of kinds', () => {
  const { STRING, BOOLEAN, NULL, OBJECT, ARRAY, SAFE_INTEGER, BIGINT_INTEGER, HUGEINT_INTEGER, HUGE_INTEGER, FLOAT, FLOAT_OUT_OF_RANGE } = ValueKind;
  const cases: [string, number, string][] = [
    ['strings', STRING, 'VARCHAR'],
    ['strings and nulls', STRING | NULL, 'VARCHAR'],
    ['booleans', BOOLEAN | NULL, 'BOOLEAN'],
    ['small integers', SAFE_INTEGER, 'BIGINT'],
    ['int64 integers', SAFE_INTEGER | BIGINT_INTEGER | NULL, 'BIGINT'],
    ['int128 integers', SAFE_INTEGER | HUGEINT_INTEGER, 'HUGEINT'],
    ['integers beyond int128', SAFE_INTEGER | HUGE_INTEGER, 'JSON'],
    ['floats and small integers', FLOAT | SAFE_INTEGER | NULL, 'DOUBLE'],
    ['floats and int64 integers', FLOAT | BIGINT_INTEGER, 'JSON'],
    ['floats beyond double', FLOAT | FLOAT_OUT_OF_RANGE, 'JSON'],
    ['objects', OBJECT | NULL, 'JSON'],
    ['arrays', ARRAY, 'JSON'],
    ['objects and arrays', OBJECT | ARRAY, 'JSON'],
    ['only nulls', NULL, 'JSON'],
    ['strings and integers', STRING | SAFE_INTEGER, 'JSON'],
    ['booleans and integers', BOOLEAN | SAFE_INTEGER, 'JSON'],
    ['strings and objects', STRING | OBJECT, 'JSON'],
  ];
  for (const [name, kinds, expected] of cases) {
    assert.equal(readTypeForKinds(kinds), expected, name);
  }
});

/** Writes rotated files `logs.jsonl.N` (oldest first in `rotated`) and the active `logs.jsonl`, and returns the layout's files. */
async function writeRotatedLog(fixture: ExportFixture, rotated: (string | Buffer)[], active: string | Buffer) {
  for (const [index, content] of rotated.entries()) {
    await writeText(join(fixture.directory, 'audit', `logs.jsonl.${rotated.length - index}`), content);
  }
  await writeText(fixture.logPath, active);
  const profile = selectProfile(fixture.settings, undefined);
  return (await discoverLayout(profile.logPath, profile.name)).files;
}

function records(prefix: string, count: number, extra: Record<string, unknown> = {}): string {
  let lines = '';
  for (let index = 0; index < count; index++) {
    lines += recordLine({ timestamp: `2026-03-01T10:00:${String(index % 60).padStart(2, '0')}Z`, record_id: `${prefix}-${index}`, ...extra });
  }
  return lines;
}

test('column types keep every number exact', async (t) => {
  const lines = [
    '{"timestamp": "2026-03-01T10:00:00Z", "id": 1, "big": 9223372036854775807, "huge": 1, "beyond": 1, "ratio": 1, "mixed": 1.5, "wide": 1e400, "flag": true, "day": "2026-03-01", "uuid": "2a640f6a-43ff-4f6b-ac4c-05b7e8329192", "nothing": null, "text_or_number": "a"}',
    '{"timestamp": "2026-03-01T10:00:01Z", "id": 2, "big": -9223372036854775808, "huge": 170141183460469231731687303715884105727, "beyond": 1701411834604692317316873037158841057270, "ratio": 0.25, "mixed": 9007199254740993, "wide": 2.5, "flag": null, "day": "2026-03-02", "uuid": null, "nothing": null, "text_or_number": 7}',
  ];
  const fixture = await exportFixture(t, '');
  await writeRotatedLog(fixture, [`${lines.join('\n')}\n`], '');

  const outcome = await exportLog(fixture, { format: 'duckdb', destination: 'types.duckdb' });

  const types = await queryDuckDB(['SELECT column_name, data_type FROM information_schema.columns WHERE table_name = \'audit_logs\''], { path: outcome.path });
  const typeOf = new Map(types.map((row) => [row['column_name'], row['data_type']]));
  const expectedTypes: [string, string][] = [
    ['id', 'BIGINT'],
    ['big', 'BIGINT'],
    ['huge', 'HUGEINT'],
    ['beyond', 'JSON'],
    ['ratio', 'DOUBLE'],
    ['mixed', 'JSON'],
    ['wide', 'JSON'],
    ['flag', 'BOOLEAN'],
    ['day', 'VARCHAR'],
    ['uuid', 'VARCHAR'],
    ['nothing', 'JSON'],
    ['text_or_number', 'JSON'],
  ];
  for (const [column, type] of expectedTypes) {
    assert.equal(typeOf.get(column), type, column);
  }
  const rows = await queryDuckDB(
    ['SELECT CAST(big AS VARCHAR) AS big, CAST(huge AS VARCHAR) AS huge, CAST(beyond AS VARCHAR) AS beyond, CAST(mixed AS VARCHAR) AS mixed, CAST(wide AS VARCHAR) AS wide FROM audit_logs ORDER BY id'],
    { path: outcome.path },
  );
  assert.deepEqual(rows[0], { big: '9223372036854775807', huge: '1', beyond: '1', mixed: '1.5', wide: '1e400' });
  assert.deepEqual(rows[1], {
    big: '-9223372036854775808',
    huge: '170141183460469231731687303715884105727',
    beyond: '1701411834604692317316873037158841057270',
    mixed: '9007199254740993',
    wide: '2.5',
  });
  assert.deepEqual(outcome.columns.slice(0, 4), ['timestamp', 'timestamp_original', 'id', 'big']);
});

test('clean rotated files are read in place, in log order', async (t) => {
  const fixture = await exportFixture(t, '');
  const files = await writeRotatedLog(fixture, [records('a', 50), records('b', 40) + 'broken\n' + records('c', 10), records('d', 30)], records('e', 20));

  const staged = await stageLogFiles(files, join(fixture.directory, 'staging'), { scanner: SCANNER, collectColumns: true, readInPlace: true });
  t.after(() => closeInPlaceFiles(staged.inPlace));

  assert.deepEqual(
    staged.inPlace.map((file) => [file.name, file.records]),
    [
      ['logs.jsonl.3', 50],
      ['logs.jsonl.1', 30],
    ],
  );
  assert.equal(staged.inputs.length, 4);
  assert.equal(staged.inputs[0], staged.inPlace[0]!.readPath);
  assert.equal(staged.inputs[2], staged.inPlace[1]!.readPath);
  assert.equal(staged.records, 150);
  assert.equal(staged.staging.records, 70);
  const result = await writeArchive(staged.inputs, 'jsonl', join(fixture.directory, 'out.jsonl'), { columns: staged.columns ?? undefined, expectedRecords: staged.records });
  const ids = (await readFile(join(fixture.directory, 'out.jsonl'), 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line).record_id as string);
  assert.equal(result.records, 150);
  assert.deepEqual(ids, [...records('a', 50), ...records('b', 40), ...records('c', 10), ...records('d', 30), ...records('e', 20)].join('').trimEnd().split('\n').map((line) => JSON.parse(line).record_id));
});

test('files DuckDB cannot read as they are are staged', async (t) => {
  const fixture = await exportFixture(t, '');
  const cases: [string, string | Buffer][] = [
    ['partial last line', records('p', 5) + '{"timestamp": "2026-03-01T10:00:00Z", "record_id": "unterminated"}'],
    ['byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(records('m', 5))])],
    ['duplicate key', records('k', 2) + '{"timestamp": "2026-03-01T10:00:00Z", "record_id": "k-dup", "level": 30, "level": 40}\n' + records('k2', 2)],
    ['lone surrogate', records('s', 2) + '{"timestamp": "2026-03-01T10:00:00Z", "record_id": "s-lone", "text": "\\ud800"}\n'],
    ['blank line', records('b', 2) + '\n' + records('b2', 2)],
    ['too long line', records('l', 2) + recordLine({ timestamp: '2026-03-01T10:00:00Z', blob: 'x'.repeat(3000) }) + records('l2', 2)],
  ];
  const files = await writeRotatedLog(fixture, cases.map(([, content]) => content), '');

  const staged = await stageLogFiles(files, join(fixture.directory, 'staging'), { scanner: SCANNER, collectColumns: true, readInPlace: true, maxLineBytes: 2048, chunkBytes: 1024 });
  t.after(() => closeInPlaceFiles(staged.inPlace));

  assert.deepEqual(staged.inPlace, []);
  assert.deepEqual(staged.partialLastLines, ['logs.jsonl.6']);
  assert.deepEqual(staged.malformedByKind, { too_long: 1 });
  assert.equal(staged.blankLines, 1);
  assert.equal(staged.repairedRecords, 1);
  const result = await writeArchive(staged.inputs, 'jsonl', join(fixture.directory, 'out.jsonl'), {
    columns: staged.columns ?? undefined,
    expectedRecords: staged.records,
    longestLineBytes: staged.longestLineBytes,
  });
  const exported = (await readFile(join(fixture.directory, 'out.jsonl'), 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line));
  assert.equal(result.records, staged.records);
  assert.equal(exported.length, 5 + 5 + 5 + 3 + 4 + 4);
  assert.ok(!exported.some((record) => record.record_id === 'unterminated'));
  assert.equal(exported.find((record) => record.record_id === 'k-dup').level, 40);
  assert.equal(exported.find((record) => record.record_id === 's-lone').text, '\ufffd');
});

test('in-place and staged reading export the same rows', async (t) => {
  const fixture = await exportFixture(t, '');
  const files = await writeRotatedLog(
    fixture,
    [records('a', 30, { n: 1 }), records('b', 30, { n: 2.5, extra: { nested: [1, 2] } }), records('c', 30, { flag: true })],
    records('d', 10),
  );

  const outputs: string[] = [];
  for (const readInPlace of [false, true]) {
    const staged = await stageLogFiles(files, join(fixture.directory, `staging-${readInPlace}`), { scanner: SCANNER, collectColumns: true, readInPlace });
    try {
      assert.equal(staged.inPlace.length, readInPlace ? 3 : 0);
      const path = join(fixture.directory, `out-${readInPlace}.csv`);
      await writeArchive(staged.inputs, 'csv', path, { columns: staged.columns ?? undefined, expectedRecords: staged.records });
      outputs.push(await readFile(path, 'utf8'));
    } finally {
      await closeInPlaceFiles(staged.inPlace);
    }
  }
  assert.equal(outputs[1], outputs[0]);
  assert.equal(outputs[0]!.trimEnd().split('\n').length, 101);
});

test('a file appended to after its scan is staged as scanned', async (t) => {
  const fixture = await exportFixture(t, '');
  const files = await writeRotatedLog(fixture, [records('a', 20), records('b', 20)], records('c', 5));
  const staged: StagingResult = await stageLogFiles(files, join(fixture.directory, 'staging'), { scanner: SCANNER, collectColumns: true, readInPlace: true });
  t.after(() => closeInPlaceFiles(staged.inPlace));
  assert.equal(staged.inPlace.length, 2);

  await appendFile(join(fixture.directory, 'audit', 'logs.jsonl.1'), records('late', 3));

  assert.deepEqual(
    (await changedInPlaceFiles(staged.inPlace)).map((file) => file.name),
    ['logs.jsonl.1'],
  );
  const check = createInputCheck(staged, join(fixture.directory, 'restaged'));
  const inputs = await check(staged.inputs, undefined);
  assert.ok(inputs !== null);
  assert.equal(inputs[0], staged.inPlace[0]!.readPath);
  assert.ok(!inputs.includes(staged.inPlace[1]!.readPath));
  assert.equal(await check(inputs, staged.records), null);
  const result = await writeArchive(staged.inputs, 'jsonl', join(fixture.directory, 'out.jsonl'), {
    columns: staged.columns ?? undefined,
    expectedRecords: staged.records,
    checkInputs: createInputCheck(staged, join(fixture.directory, 'restaged-by-archive')),
  });
  const ids = (await readFile(join(fixture.directory, 'out.jsonl'), 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line).record_id as string);
  assert.equal(result.records, 45);
  assert.ok(!ids.some((id) => id.startsWith('late-')));
});

test('count mismatch restages every in-place file', async (t) => {
  const fixture = await exportFixture(t, '');
  const files = await writeRotatedLog(fixture, [records('a', 5), records('b', 5)], '');
  const staged = await stageLogFiles(files, join(fixture.directory, 'staging'), { scanner: SCANNER, collectColumns: true, readInPlace: true });
  t.after(() => closeInPlaceFiles(staged.inPlace));

  const unchanged = await createInputCheck(staged, join(fixture.directory, 'restaged-1'))(staged.inputs, staged.records);
  const check = createInputCheck(staged, join(fixture.directory, 'restaged-2'));
  const mismatch = await check(staged.inputs, staged.records - 1);

  assert.equal(unchanged, null);
  assert.ok(mismatch !== null);
  assert.ok(staged.inPlace.every((file) => !mismatch.includes(file.readPath)));
  assert.equal(await check(mismatch, staged.records - 1), null);
});

test('lines nested deeper than the recursive walk still give columns', async (t) => {
  const deep = `{"timestamp": "2026-03-01T10:00:00Z", "deep": ${'['.repeat(600)}${']'.repeat(600)}, "after": 5}\n`;
  const fixture = await exportFixture(t, '');
  await writeRotatedLog(fixture, [records('a', 2) + deep], '');

  const outcome = await exportLog(fixture, { format: 'parquet', destination: 'deep.parquet' });

  const rows = await queryDuckDB(['SELECT length(CAST(deep AS VARCHAR)) AS length, after FROM read_parquet($path) WHERE after IS NOT NULL'], { parameters: { path: outcome.path } });
  assert.equal(outcome.recordsExported, 3);
  assert.deepEqual(rows, [{ length: 1200n, after: 5n }]);
});

test('case clashes keep the first key and the timestamp field', () => {
  const plan = planObservedColumns(
    [
      { name: 'Timestamp', kinds: ValueKind.STRING },
      { name: 'Level', kinds: ValueKind.STRING },
      { name: 'timestamp', kinds: ValueKind.STRING },
      { name: 'level', kinds: ValueKind.SAFE_INTEGER },
      { name: '', kinds: ValueKind.STRING },
      { name: 'timestamp_original', kinds: ValueKind.STRING },
    ],
    'timestamp',
  );

  assert.deepEqual(plan.readColumns, [
    { name: 'Level', type: 'VARCHAR' },
    { name: 'timestamp', type: 'VARCHAR' },
  ]);
  assert.deepEqual(
    plan.droppedFields.map((dropped) => dropped.field),
    ['Timestamp', 'level', '', 'timestamp_original'],
  );
});

test('helper thread collects the same columns', async (t) => {
  const fixture = await exportFixture(t, '');
  let content = '';
  for (let index = 0; index < 20_000; index++) {
    const late = index > 15_000 ? { [`late_${index % 3}`]: index % 2 === 0 ? index : `text-${index}` } : {};
    content += recordLine({ timestamp: '2026-03-01T10:00:00Z', record_id: `r-${index}`, size: index % 5 === 0 ? index + 0.5 : index, ...late });
  }
  const files = await writeRotatedLog(fixture, [content], '');

  const results = [];
  for (const helper of [false, true]) {
    const staged = await stageLogFiles(files, join(fixture.directory, `staging-${helper}`), { scanner: SCANNER, collectColumns: true, readInPlace: true, helper });
    await closeInPlaceFiles(staged.inPlace);
    results.push(staged.columns);
  }

  assert.deepEqual(results[1], results[0]);
  assert.deepEqual(
    results[0]!.slice(-3).map((column) => column.name),
    ['late_1', 'late_2', 'late_0'],
  );
  assert.equal(results[0]!.find((column) => column.name === 'size')!.kinds, ValueKind.SAFE_INTEGER | ValueKind.FLOAT);
});

test('more distinct keys than MAX_COLUMNS fail the export', async (t) => {
  let content = '';
  for (let index = 0; index <= MAX_COLUMNS; index++) {
    content += `{"timestamp": "2026-03-01T10:00:00Z", "key_${index}": 1}\n`;
  }
  const fixture = await exportFixture(t, content);

  await assert.rejects(exportLog(fixture, { format: 'parquet', destination: 'wide.parquet' }), new RegExp(`more than ${MAX_COLUMNS} distinct top-level fields`));
});

/** Returns the normalized form of an ISO timestamp, computed without DuckDB: UTC, microseconds, later digits truncated. */
function normalizedInstant(text: string): string {
  const match = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(?:[Zz]|([+-])(\d{2}):?(\d{2}))?$/.exec(text)!;
  const date = new Date(0);
  date.setUTCFullYear(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  date.setUTCHours(Number(match[4]), Number(match[5]), Number(match[6]), 0);
  const offsetMinutes = match[8] === undefined ? 0 : (Number(match[9]) * 60 + Number(match[10])) * (match[8] === '-' ? -1 : 1);
  const instant = new Date(date.getTime() - offsetMinutes * 60_000);
  const micros = (match[7] ?? '').padEnd(6, '0').slice(0, 6);
  const two = (value: number) => String(value).padStart(2, '0');
  return (
    `${String(instant.getUTCFullYear()).padStart(4, '0')}-${two(instant.getUTCMonth() + 1)}-${two(instant.getUTCDate())}` +
    `T${two(instant.getUTCHours())}:${two(instant.getUTCMinutes())}:${two(instant.getUTCSeconds())}.${micros}Z`
  );
}

test('timestamp grid normalizes on both SQL paths', async (t) => {
  const years = ['0000', '0001', '0999', '1582', '1970', '2000', '2026', '9999'];
  const fractions = ['', '.1', '.123', '.123456', '.1234567', '.999999999', ',5'];
  const zones = ['', 'Z', 'z', '+00:00', '-00:00', '+05:30', '-0800', '+2359', '-23:59'];
  const timestamps: string[] = [];
  for (const year of years) {
    for (const fraction of fractions) {
      for (const zone of zones) {
        for (const separator of ['T', ' ']) {
          timestamps.push(`${year}-02-28${separator}23:59:59${fraction}${zone}`);
        }
      }
    }
  }
  const fixture = await exportFixture(t, timestamps.map((timestamp) => `{"timestamp": "${timestamp}"}\n`).join(''));

  const outcome = await exportLog(fixture, { format: 'parquet', destination: 'grid.parquet' });

  const rows = await queryDuckDB(['SELECT timestamp_original, "timestamp" FROM read_parquet($path)'], { parameters: { path: outcome.path } });
  assert.equal(rows.length, timestamps.length);
  for (const row of rows) {
    assert.equal(row['timestamp'], normalizedInstant(String(row['timestamp_original'])), String(row['timestamp_original']));
  }
});

test('writeArchive repairs lines DuckDB rejects', async (t) => {
  const fixture = await exportFixture(t, '');
  const path = join(fixture.directory, 'records.jsonl');
  await writeText(
    path,
    '{"timestamp": "2026-03-01T10:00:00Z", "level": 30, "level": 40}\n' + '{"timestamp": "2026-03-01T11:00:00Z", "text": "broken \\udc00"}\n' + records('r', 2),
  );

  const result = await writeArchive([path], 'jsonl', join(fixture.directory, 'out.jsonl'), { expectedRecords: 4 });

  const exported = (await readFile(join(fixture.directory, 'out.jsonl'), 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line));
  assert.equal(result.records, 4);
  assert.equal(result.repairedRecords, 2);
  assert.equal(exported[0].level, 40);
  assert.equal(exported[1].text, 'broken \ufffd');
});
