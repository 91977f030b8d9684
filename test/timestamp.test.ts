/**
 * Timestamp parsing and the retention cutoff: accepted and rejected ISO 8601 forms,
 * epoch numbers, the boundary at `now - retention_days * 86400 s`, and the same
 * results under other TZ settings.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import { loadSettings } from '../src/config/load.js';
import { ErrorCode, RetentionError } from '../src/core/errors.js';
import { RetentionRules, cutoffFor, parseRetentionValue, type RetentionDays } from '../src/core/retention.js';
import { parseEpochBytes, parseIsoBytes, parseIsoString } from '../src/core/timestamp.js';

const execFileAsync = promisify(execFile);

const DAY_MS = 86_400_000;

/** 2026-03-15T10:20:30Z, the instant of most ISO cases. */
const BASE_MS = Date.UTC(2026, 2, 15, 10, 20, 30);

/** Compiled modules that the child processes import. Tests run from dist/test, so the paths start there. */
const DIST_SOURCE = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');
const TIMESTAMP_MODULE_URL = pathToFileURL(join(DIST_SOURCE, 'core', 'timestamp.js')).href;
const RETENTION_MODULE_URL = pathToFileURL(join(DIST_SOURCE, 'core', 'retention.js')).href;

function parseEpochText(text: string, unitDigits = 0): number {
  const bytes = Buffer.from(text, 'latin1');
  return parseEpochBytes(bytes, 0, bytes.length, unitDigits);
}

/** Formats `epochMs` as ISO text without the trailing Z, such as `2026-09-05T12:00:00.000`. */
function isoWithoutZone(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, -1);
}

/** Builds the rules of a cleanup at `nowMs` whose only per-schema retention comes from the config. */
function configRules(nowMs: number, retention: Record<string, RetentionDays>): RetentionRules {
  return new RetentionRules(
    { configRetention: new Map(Object.entries(retention)), schemasFileRetention: new Map(), profileRetentionDays: undefined },
    nowMs,
  );
}

// ---------------------------------------------------------------------------
// Accepted and rejected ISO 8601 forms

const ACCEPTED_ISO: readonly [label: string, text: string, expectedMs: number][] = [
  ['T separator', '2026-03-15T10:20:30Z', BASE_MS],
  ['space separator', '2026-03-15 10:20:30Z', BASE_MS],
  ['lowercase z zone', '2026-03-15T10:20:30z', BASE_MS],
  ['offset +05:30', '2026-03-15T15:50:30+05:30', BASE_MS],
  ['offset +0530', '2026-03-15T15:50:30+0530', BASE_MS],
  ['offset -08:00', '2026-03-15T02:20:30-08:00', BASE_MS],
  ['offset -0800', '2026-03-15T02:20:30-0800', BASE_MS],
  ['offset +00:00', '2026-03-15T10:20:30+00:00', BASE_MS],
  ['offset -00:00', '2026-03-15T10:20:30-00:00', BASE_MS],
  ['offset +23:59', '2026-03-16T10:19:30+23:59', BASE_MS],
  ['no zone as UTC', '2026-03-15T10:20:30', BASE_MS],
  ['fraction with offset', '2026-03-15T15:50:30.250+05:30', BASE_MS + 250],
  ['fraction without zone', '2026-03-15T10:20:30.5', BASE_MS + 500],
  ['epoch start', '1970-01-01T00:00:00Z', 0],
  ['before epoch floored', '1969-12-31T23:59:59.9995Z', -1],
  ['year 0001', '0001-01-01T00:00:00Z', -62_135_596_800_000],
  ['year 9999 end', '9999-12-31T23:59:59.999Z', 253_402_300_799_999],
  ['leap day 2028', '2028-02-29T12:00:00Z', Date.UTC(2028, 1, 29, 12)],
  ['leap day 2000', '2000-02-29T00:00:00Z', Date.UTC(2000, 1, 29)],
  ['offset across midnight', '2026-03-01T00:30:00+01:00', Date.UTC(2026, 1, 28, 23, 30)],
  ['negative offset across midnight', '2026-02-28T23:30:00-01:00', Date.UTC(2026, 2, 1, 0, 30)],
  ['offset across year end', '2027-01-01T05:29:59+05:30', Date.UTC(2026, 11, 31, 23, 59, 59)],
];

for (const [label, text, expectedMs] of ACCEPTED_ISO) {
  test(`parseIsoString accepts ${label}`, () => {
    assert.equal(parseIsoString(text), expectedMs);
  });
}

// Every fraction length with both decimal marks. The digits 987654321 show that the
// parser floors, because 0.9876 s is 987 ms and not 988.
const FRACTION_MS = [0, 900, 980, 987, 987, 987, 987, 987, 987, 987];

for (const decimalMark of ['.', ',']) {
  for (let digitCount = 0; digitCount <= 9; digitCount++) {
    const fraction = digitCount === 0 ? '' : decimalMark + '987654321'.slice(0, digitCount);
    const expectedMs = BASE_MS + FRACTION_MS[digitCount]!;
    test(`parseIsoString fraction ${digitCount} digits '${decimalMark}'`, () => {
      assert.equal(parseIsoString(`2026-03-15T10:20:30${fraction}Z`), expectedMs);
    });
  }
}

const REJECTED_ISO: readonly [label: string, text: string][] = [
  ['lowercase t separator', '2026-03-15t10:20:30Z'],
  ['February 30', '2026-02-30T00:00:00Z'],
  ['April 31', '2026-04-31T00:00:00Z'],
  ['month 13', '2026-13-01T00:00:00Z'],
  ['month 00', '2026-00-01T00:00:00Z'],
  ['day 00', '2026-01-00T00:00:00Z'],
  ['February 29, 2027', '2027-02-29T00:00:00Z'],
  ['February 29, 2100', '2100-02-29T00:00:00Z'],
  ['hour 24', '2026-01-01T24:00:00Z'],
  ['minute 60', '2026-01-01T00:60:00Z'],
  ['leap second :60', '2026-12-31T23:59:60Z'],
  ['10 fraction digits', '2026-01-01T00:00:00.1234567890Z'],
  ['trailing dot', '2026-01-01T00:00:00.'],
  ['dot before zone', '2026-01-01T00:00:00.Z'],
  ['offset +5:30', '2026-01-01T00:00:00+5:30'],
  ['offset +05:3', '2026-01-01T00:00:00+05:3'],
  ['offset +05', '2026-01-01T00:00:00+05'],
  ['offset hour 24', '2026-01-01T00:00:00+24:00'],
  ['offset minute 60', '2026-01-01T00:00:00+05:60'],
  ['garbage suffix', '2026-01-01T00:00:00Zabc'],
  ['trailing space', '2026-01-01T00:00:00Z '],
  ['leading space', ' 2026-01-01T00:00:00Z'],
  ['second zone', '2026-01-01T00:00:00Z+01:00'],
  ['date only', '2026-01-01'],
  ['missing seconds', '2026-01-01T00:00Z'],
  ['underscore separator', '2026-01-01_00:00:00Z'],
  ['slashes in date', '2026/01/01T00:00:00Z'],
  ['one-digit month', '2026-1-01T00:00:00Z'],
  ['signed year', '+2026-01-01T00:00:00Z'],
  ['full-width digits', '\uff12\uff10\uff12\uff16-01-01T00:00:00Z'],
  ['empty string', ''],
];

for (const [label, text] of REJECTED_ISO) {
  test(`parseIsoString rejects ${label}`, () => {
    assert.ok(Number.isNaN(parseIsoString(text)), `parsed ${JSON.stringify(text)} as ${parseIsoString(text)}`);
  });
}

test('parseIsoBytes reads only its range', () => {
  const bytes = Buffer.from('xx"2026-03-15T10:20:30Z"yy');
  assert.equal(parseIsoBytes(bytes, 3, bytes.length - 3), BASE_MS);
});

test('parseIsoBytes ignores digits after end', () => {
  const fraction = Buffer.from('2026-03-15T10:20:30.123');
  assert.equal(parseIsoBytes(fraction, 0, fraction.length - 1), BASE_MS + 120);

  // The offset is cut to +05:3 by `end`, so the 0 after it must not complete it.
  const offset = Buffer.from('2026-03-15T15:50:30+05:30');
  assert.ok(Number.isNaN(parseIsoBytes(offset, 0, offset.length - 1)));
});

// ---------------------------------------------------------------------------
// Epoch numbers

const EPOCH_CASES: readonly [label: string, text: string, unitDigits: number, expectedMs: number][] = [
  ['integer ms', '1773570030000', 0, 1_773_570_030_000],
  ['ms fraction floored', '1773570030000.999', 0, 1_773_570_030_000],
  ['negative fraction floored', '-1.5', 0, -2],
  ['negative zero', '-0', 0, 0],
  ['zero with fraction zeros', '0.000', 0, 0],
  ['lowercase exponent', '1.77357003e12', 0, 1_773_570_030_000],
  ['uppercase exponent with plus', '1.77357003E+12', 0, 1_773_570_030_000],
  ['negative exponent', '177357003000000e-2', 0, 1_773_570_030_000],
  ['exponent leaving fraction', '17735700300009e-1', 0, 1_773_570_030_000],
  ['leading zeros before exponent', `0.${'0'.repeat(36)}1773570030000e49`, 0, 1_773_570_030_000],
  ['tiny positive', '1e-400', 0, 0],
  ['tiny negative', '-1e-400', 0, -1],
  ['zero with huge exponent', '0e400', 0, 0],
  ['400-digit exponent on zero', `0e${'9'.repeat(400)}`, 0, 0],
  ['400-digit negative exponent', `1e-${'9'.repeat(400)}`, 0, 0],
  ['400-digit negative exponent, negative', `-1e-${'9'.repeat(400)}`, 0, -1],
  ['200,000-digit negative exponent', `1e-${'9'.repeat(200_000)}`, 0, 0],
  ['maximum Date ms', '8640000000000000', 0, 8.64e15],
  ['maximum as exponent', '8.64e15', 0, 8.64e15],
  ['minimum Date ms', '-8640000000000000', 0, -8.64e15],
  ['seconds', '1773570030', 3, 1_773_570_030_000],
  ['seconds fraction floored', '1773570030.9999', 3, 1_773_570_030_999],
  ['seconds with nanoseconds', '1773570030.123456789', 3, 1_773_570_030_123],
  ['negative seconds fraction', '-1.0001', 3, -1001],
  ['seconds exponent', '1.77357003e9', 3, 1_773_570_030_000],
  ['seconds maximum', '8640000000000', 3, 8.64e15],
  ['seconds minimum', '-8640000000000', 3, -8.64e15],
];

for (const [label, text, unitDigits, expectedMs] of EPOCH_CASES) {
  test(`parseEpochBytes ${label}`, () => {
    assert.equal(parseEpochText(text, unitDigits), expectedMs);
  });
}

const REJECTED_EPOCH: readonly [label: string, text: string, unitDigits: number][] = [
  ['above maximum ms', '8640000000000001', 0],
  ['below minimum ms', '-8640000000000001', 0],
  ['below minimum by fraction', '-8640000000000000.5', 0],
  ['above 2^53', '9007199254740993', 0],
  ['30-digit integer', `1${'0'.repeat(29)}`, 0],
  ['huge exponent', '1e400', 0],
  ['200,000-digit exponent', `1e${'9'.repeat(200_000)}`, 0],
  ['seconds above maximum', '8640000000001', 3],
  ['seconds below minimum', '-8640000000001', 3],
  ['empty text', '', 0],
  ['lone minus', '-', 0],
  ['letters', 'abc', 0],
  ['two decimal points', '1.2.3', 0],
  ['letter suffix', '12a', 0],
  ['exponent without digits', '1e', 0],
  ['exponent sign only', '1e+', 0],
  ['hex exponent', '1e0x1', 0],
];

for (const [label, text, unitDigits] of REJECTED_EPOCH) {
  test(`parseEpochBytes rejects ${label}`, () => {
    assert.ok(Number.isNaN(parseEpochText(text, unitDigits)), `parsed ${text.slice(0, 40)} as ${parseEpochText(text, unitDigits)}`);
  });
}

test('parseEpochBytes negative zero is +0', () => {
  assert.ok(Object.is(parseEpochText('-0'), 0));
  assert.ok(Object.is(parseEpochText('-0.0e-5'), 0));
});

test('parseEpochBytes reads only its range', () => {
  const bytes = Buffer.from('{"timestamp": 1773570030000.5, "x": 9}');
  const start = bytes.indexOf('1773');
  assert.equal(parseEpochBytes(bytes, start, bytes.indexOf(','), 0), 1_773_570_030_000);
});

// ---------------------------------------------------------------------------
// The cutoff through RetentionRules.ruleFor and cutoffFor

const NOW_MS = Date.UTC(2026, 11, 4, 12);
const CUTOFF_90_MS = NOW_MS - 90 * DAY_MS;

test('cutoff of 90 days', () => {
  const rule = configRules(NOW_MS, { 'app.events': 90 }).ruleFor('app.events', 1);
  assert.equal(rule.cutoffMs, cutoffFor(90, NOW_MS));
  assert.equal(rule.cutoffMs, Date.UTC(2026, 8, 5, 12));
});

/** Cases around the 90-day cutoff at NOW_MS: ISO or epoch text, unit digits, and whether the record is expired. */
const BOUNDARY_CASES: readonly [label: string, text: string, unitDigits: number | 'iso', expired: boolean][] = [
  ['exactly at cutoff', `${isoWithoutZone(CUTOFF_90_MS)}Z`, 'iso', false],
  ['1 ms before cutoff', `${isoWithoutZone(CUTOFF_90_MS - 1)}Z`, 'iso', true],
  ['1 ms after cutoff', `${isoWithoutZone(CUTOFF_90_MS + 1)}Z`, 'iso', false],
  ['cutoff plus 0.0001 ms', `${isoWithoutZone(CUTOFF_90_MS)}0001Z`, 'iso', false],
  ['cutoff minus 0.000001 ms', `${isoWithoutZone(CUTOFF_90_MS - 1)}999999Z`, 'iso', true],
  ['cutoff at +05:30', `${isoWithoutZone(CUTOFF_90_MS + 330 * 60_000)}+05:30`, 'iso', false],
  ['before cutoff at -08:00', `${isoWithoutZone(CUTOFF_90_MS - 480 * 60_000 - 1)}-08:00`, 'iso', true],
  ['epoch ms at cutoff', String(CUTOFF_90_MS), 0, false],
  ['epoch ms 1 before', String(CUTOFF_90_MS - 1), 0, true],
  ['epoch ms plus 0.0001', `${CUTOFF_90_MS}.0001`, 0, false],
  ['epoch ms minus 0.000001', `${CUTOFF_90_MS - 1}.999999`, 0, true],
  ['epoch seconds at cutoff', String(CUTOFF_90_MS / 1000), 3, false],
  ['epoch seconds just before', `${CUTOFF_90_MS / 1000 - 1}.9999999`, 3, true],
];

for (const [label, text, unit, expired] of BOUNDARY_CASES) {
  test(`cutoff boundary ${label}`, () => {
    const rule = configRules(NOW_MS, { 'app.events': 90 }).ruleFor('app.events', 1);
    const instantMs = unit === 'iso' ? parseIsoString(text) : parseEpochText(text, unit);
    assert.ok(!Number.isNaN(instantMs), `${text} did not parse`);
    assert.equal(instantMs < rule.cutoffMs, expired, `${text} floors to ${instantMs}, cutoff ${rule.cutoffMs}`);
  });
}

test('cutoff across midnight offsets', () => {
  const nowMs = Date.parse('2026-03-01T23:30:00Z');
  const rule = configRules(nowMs, { 'app.events': 1 }).ruleFor('app.events', 1);
  assert.equal(rule.cutoffMs, Date.UTC(2026, 1, 28, 23, 30));

  assert.equal(parseIsoString('2026-03-01T00:30:00+01:00') < rule.cutoffMs, false);
  assert.equal(parseIsoString('2026-03-01T00:29:59.999+01:00') < rule.cutoffMs, true);
  assert.equal(parseIsoString('2026-02-28T18:30:00-05:00') < rule.cutoffMs, false);
  assert.equal(parseIsoString('2026-03-01T05:00:00+05:30') < rule.cutoffMs, false);
  assert.equal(parseIsoString('2026-02-28T23:29:59.999Z') < rule.cutoffMs, true);
});

/** Returns the UTC offset of `timeZone` at `epochMs`, such as `GMT+02:00`. */
function zoneOffsetAt(timeZone: string, epochMs: number): string {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' }).formatToParts(epochMs);
  return parts.find((part) => part.type === 'timeZoneName')!.value;
}

// One day before a wall-clock time just after a DST change is 23 or 25 wall-clock hours
// earlier. The product uses fixed 86,400 s days, so the cutoff is exactly 24 h earlier.
const DST_CASES: readonly [label: string, timeZone: string, now: string, expectedCutoff: string][] = [
  ['Europe spring forward', 'Europe/Berlin', '2026-03-29T12:00:00+02:00', '2026-03-28T11:00:00+01:00'],
  ['Europe fall back', 'Europe/Berlin', '2026-10-25T12:00:00+01:00', '2026-10-24T13:00:00+02:00'],
  ['US spring forward', 'America/New_York', '2026-03-08T12:00:00-04:00', '2026-03-07T11:00:00-05:00'],
  ['US fall back', 'America/New_York', '2026-11-01T12:00:00-05:00', '2026-10-31T13:00:00-04:00'],
];

for (const [label, timeZone, now, expectedCutoff] of DST_CASES) {
  test(`cutoff over ${label}`, () => {
    const nowMs = parseIsoString(now);
    const rule = configRules(nowMs, { 'app.events': 1 }).ruleFor('app.events', 1);
    const cutoffMs = parseIsoString(expectedCutoff);

    // The case must span a real offset change, or it would test nothing about DST.
    assert.notEqual(zoneOffsetAt(timeZone, nowMs), zoneOffsetAt(timeZone, cutoffMs));
    assert.equal(rule.cutoffMs, cutoffMs);
    assert.equal(rule.cutoffMs, nowMs - DAY_MS);
    assert.equal(cutoffMs < rule.cutoffMs, false);
    assert.equal(cutoffMs - 1 < rule.cutoffMs, true);
  });
}

test('cutoff of 90 days across DST', () => {
  const rule = configRules(Date.UTC(2026, 5, 1), { 'app.events': 90 }).ruleFor('app.events', 1);
  assert.equal(rule.cutoffMs, Date.UTC(2026, 2, 3));
});

test('cutoff lands on leap day', () => {
  const oneDay = configRules(Date.parse('2028-03-01T06:00:00Z'), { 'app.events': 1 }).ruleFor('app.events', 1);
  assert.equal(oneDay.cutoffMs, parseIsoString('2028-02-29T06:00:00Z'));
  assert.equal(parseIsoString('2028-02-29T05:59:59.999Z') < oneDay.cutoffMs, true);
  assert.equal(parseIsoString('2028-02-29T06:00:00Z') < oneDay.cutoffMs, false);

  const leapYear = configRules(Date.parse('2029-03-01T00:00:00Z'), { 'app.events': 366 }).ruleFor('app.events', 1);
  assert.equal(leapYear.cutoffMs, parseIsoString('2028-02-29T00:00:00Z'));
});

test('cutoff of retention 1', () => {
  const rule = configRules(NOW_MS, { 'app.events': 1 }).ruleFor('app.events', 1);
  assert.equal(rule.retentionDays, 1);
  assert.equal(rule.cutoffMs, NOW_MS - DAY_MS);
  assert.equal(parseIsoString('2026-12-03T12:00:00Z') < rule.cutoffMs, false);
  assert.equal(parseIsoString('2026-12-03T11:59:59.999Z') < rule.cutoffMs, true);
});

test('cutoff of forever keeps everything', () => {
  const rule = configRules(NOW_MS, { 'app.events': null }).ruleFor('app.events', 1);
  assert.equal(rule.retentionDays, null);
  assert.equal(rule.cutoffMs, -Infinity);
  assert.equal(cutoffFor(null, NOW_MS), -Infinity);
  assert.equal(parseIsoString('0001-01-01T00:00:00Z') < rule.cutoffMs, false);
  assert.equal(parseEpochText('-8640000000000000') < rule.cutoffMs, false);
});

// ---------------------------------------------------------------------------
// Invalid retention values

const INVALID_RETENTION: readonly [label: string, value: unknown, foreverValue: 'forever' | null][] = [
  ['zero', 0, 'forever'],
  ['zero in schemas file', 0, null],
  ['negative', -1, 'forever'],
  ['fraction', 1.5, 'forever'],
  ['NaN', NaN, 'forever'],
  ['Infinity', Infinity, 'forever'],
  ['numeric string', '90', 'forever'],
  ['null in config', null, 'forever'],
  ['forever in schemas file', 'forever', null],
];

for (const [label, value, foreverValue] of INVALID_RETENTION) {
  test(`parseRetentionValue rejects ${label}`, () => {
    assert.equal(parseRetentionValue(value, foreverValue), undefined);
  });
}

test('parseRetentionValue accepts valid values', () => {
  assert.equal(parseRetentionValue(1, 'forever'), 1);
  assert.equal(parseRetentionValue(36_500, null), 36_500);
  assert.equal(parseRetentionValue('forever', 'forever'), null);
  assert.equal(parseRetentionValue(null, null), null);
});

async function writeTemporaryConfig(t: TestContext, auditLines: string): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'audit-retention-timestamp-'));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const path = join(directory, 'audit-retention.yml');
  await writeFile(path, `profiles:\n  default:\n    audit:\n      enabled: true\n      ${auditLines}\n`);
  return path;
}

test('loadSettings rejects retention 0', async (t) => {
  const configPath = await writeTemporaryConfig(t, 'retention: {auth.events: 0}');
  let caught: unknown;
  try {
    loadSettings({ configPath, env: {} });
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof RetentionError, `expected a RetentionError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.CONFIG_INVALID);
  assert.match(caught.message, /auth\.events/);
});

test('loadSettings accepts retention forever', async (t) => {
  const configPath = await writeTemporaryConfig(t, 'retention: {auth.events: forever, debug.logs: 1}');
  const profile = loadSettings({ configPath, env: {} }).profiles.get('default');
  assert.ok(profile !== undefined);
  assert.equal(profile.retention.get('auth.events'), null);
  assert.equal(profile.retention.get('debug.logs'), 1);
});

// ---------------------------------------------------------------------------
// Independence from the machine's time zone

/** Inputs evaluated in this process and in children with another TZ. */
const TZ_TABLE = {
  iso: [
    '2026-03-15T10:20:30',
    '2026-03-15 10:20:30.123456',
    '2026-03-29T02:30:00',
    '2026-11-01T01:30:00',
    '2026-04-05T02:45:00',
    '2026-09-27T02:45:00',
    '2026-03-01T00:30:00+01:00',
    '2028-02-29T23:59:59.999-13:45',
    '1969-12-31T23:59:59.9995',
  ],
  epoch: ['1773570030000.9', '-1.5', '1.77357003e12'],
  cutoffs: [
    { nowMs: parseIsoString('2026-03-29T12:00:00+02:00'), days: 1 },
    { nowMs: parseIsoString('2026-04-05T12:00:00+12:45'), days: 1 },
    { nowMs: NOW_MS, days: 90 },
  ],
};

interface TableResults {
  iso: (number | null)[];
  epoch: (number | null)[];
  cutoffs: number[];
  /** Minutes that Date#getTimezoneOffset returns for 2026-01-01, to show which TZ was in effect. */
  januaryOffsetMinutes: number;
}

/** Script that runs TZ_TABLE through the compiled modules and prints JSON, in which NaN becomes null. */
const TABLE_SCRIPT = `
const [timestampUrl, retentionUrl, tableJson] = process.argv.slice(1);
const { parseEpochBytes, parseIsoString } = await import(timestampUrl);
const { RetentionRules } = await import(retentionUrl);
const table = JSON.parse(tableJson);
const results = {
  iso: table.iso.map((text) => parseIsoString(text)),
  epoch: table.epoch.map((text) => {
    const bytes = Buffer.from(text, 'latin1');
    return parseEpochBytes(bytes, 0, bytes.length, 0);
  }),
  cutoffs: table.cutoffs.map(({ nowMs, days }) => {
    const inputs = { configRetention: new Map([['app.events', days]]), schemasFileRetention: new Map(), profileRetentionDays: undefined };
    return new RetentionRules(inputs, nowMs).ruleFor('app.events', 1).cutoffMs;
  }),
  januaryOffsetMinutes: new Date(Date.UTC(2026, 0, 1)).getTimezoneOffset(),
};
process.stdout.write(JSON.stringify(results));
`;

async function evaluateTableInChild(timeZone: string): Promise<TableResults> {
  const { stdout } = await execFileAsync(
    process.execPath,
    ['--input-type=module', '--eval', TABLE_SCRIPT, TIMESTAMP_MODULE_URL, RETENTION_MODULE_URL, JSON.stringify(TZ_TABLE)],
    { env: { TZ: timeZone } },
  );
  return JSON.parse(stdout) as TableResults;
}

function evaluateTableInProcess(): Omit<TableResults, 'januaryOffsetMinutes'> {
  const results = {
    iso: TZ_TABLE.iso.map((text) => parseIsoString(text)),
    epoch: TZ_TABLE.epoch.map((text) => parseEpochText(text)),
    cutoffs: TZ_TABLE.cutoffs.map(({ nowMs, days }) => configRules(nowMs, { 'app.events': days }).ruleFor('app.events', 1).cutoffMs),
  };
  // Through JSON, as the child's results come, so that NaN compares as null.
  return JSON.parse(JSON.stringify(results)) as Omit<TableResults, 'januaryOffsetMinutes'>;
}

test('TZ table expected values', () => {
  const inProcess = evaluateTableInProcess();
  assert.deepEqual(inProcess.iso, [
    BASE_MS,
    BASE_MS + 123,
    Date.UTC(2026, 2, 29, 2, 30),
    Date.UTC(2026, 10, 1, 1, 30),
    Date.UTC(2026, 3, 5, 2, 45),
    Date.UTC(2026, 8, 27, 2, 45),
    Date.UTC(2026, 1, 28, 23, 30),
    Date.UTC(2028, 2, 1, 13, 44, 59, 999),
    -1,
  ]);
  assert.deepEqual(inProcess.epoch, [1_773_570_030_000, -2, 1_773_570_030_000]);
  assert.deepEqual(inProcess.cutoffs, [Date.UTC(2026, 2, 28, 10), Date.UTC(2026, 3, 3, 23, 15), CUTOFF_90_MS]);
});

// Chatham is UTC+13:45 in January, an offset with 45 minutes. New York changes its offset twice a year.
const CHILD_ZONES: readonly [timeZone: string, januaryOffsetMinutes: number][] = [
  ['Pacific/Chatham', -825],
  ['America/New_York', 300],
];

for (const [timeZone, januaryOffsetMinutes] of CHILD_ZONES) {
  test(`TZ table unchanged under ${timeZone}`, async () => {
    const child = await evaluateTableInChild(timeZone);
    const inProcess = evaluateTableInProcess();

    // The child must really run in that zone, or the comparison proves nothing.
    assert.equal(child.januaryOffsetMinutes, januaryOffsetMinutes);
    assert.deepEqual(child.iso, inProcess.iso);
    assert.deepEqual(child.epoch, inProcess.epoch);
    assert.deepEqual(child.cutoffs, inProcess.cutoffs);
  });
}
