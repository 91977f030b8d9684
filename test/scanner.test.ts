/**
 * LineScanner: each kind of bad line, blank lines, CRLF endings, escaped and duplicate
 * keys, schema_version forms, deep nesting, and a property test that holds the scanner's
 * verdict to a reference built from isUtf8 and JSON.parse. Every line is scanned by both
 * walks, the JavaScript one and the compiled one that reads scan memory.
 */

import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { test } from 'node:test';

import fc from 'fast-check';

import { acquireScanBuffers, scanMemoryOf } from '../src/core/line-walk.js';
import { LineKind, LineScanner, type LineFacts, type ScannerOptions } from '../src/core/scanner.js';

const LINE_FEED = 0x0a;

const KIND_NAMES: Record<number, string> = {
  [LineKind.RECORD]: 'RECORD',
  [LineKind.BLANK]: 'BLANK',
  [LineKind.NOT_JSON]: 'NOT_JSON',
  [LineKind.NOT_OBJECT]: 'NOT_OBJECT',
  [LineKind.NO_TIMESTAMP]: 'NO_TIMESTAMP',
  [LineKind.INVALID_UTF8]: 'INVALID_UTF8',
};

const DEFAULT_OPTIONS: ScannerOptions = { timestampField: 'timestamp', timestampUnit: 'ms' };

/** 2026-03-15T10:20:30Z, the timestamp of most records below. */
const STAMP = '2026-03-15T10:20:30Z';
const STAMP_MS = Date.UTC(2026, 2, 15, 10, 20, 30);

/**
 * Bytes before and after the line in the scanned buffer. The line feed after the line is
 * the sentinel that scanLine requires. The bytes after it look like a continuation, so a
 * scanner that reads past the line feed would misjudge the line.
 */
const PREFIX = Buffer.from('{"timestamp": "1999-01-01T00:00:00Z"}\n');
const SUFFIX = Buffer.from('"timestamp": "1999-01-01T00:00:00Z"}');

/**
 * Scans `line` three times and returns a copy of the facts. The first scan puts it
 * after PREFIX in a plain buffer (the JavaScript walk), the second after PREFIX in
 * scan memory (the compiled walk). The third puts it at the very end of a scan memory
 * buffer, so the compiled walk's reads past the line feed fall into the tail padding.
 * All three must agree, and a line that starts with `{` must reach the compiled walk.
 * Text is encoded as UTF-8.
 */
function scanWith(scanner: LineScanner, line: string | Uint8Array): LineFacts {
  const content = typeof line === 'string' ? Buffer.from(line, 'utf8') : line;
  const framed = Buffer.concat([PREFIX, content, Buffer.of(LINE_FEED), SUFFIX]);
  const start = PREFIX.length;
  const end = start + content.length;

  const plainFacts = scanAt(scanner, framed, start, end);

  // Each call is a run of its own: the memory comes back with a new generation, so the slot counter shows this scan.
  const scanBuffers = acquireScanBuffers(1, Math.max(64 * 1024, framed.length));
  try {
    const [inMemory] = scanBuffers.buffers as [Buffer];
    const slotsTaken = new Int32Array(scanMemoryOf(inMemory.buffer)!.buffer, 0, 1);
    framed.copy(inMemory);
    assert.deepEqual(scanAt(scanner, inMemory, start, end), plainFacts, 'the compiled walk disagrees with the JavaScript walk');
    if (/^[ \t\r]*\{/.test(Buffer.from(content).toString('latin1'))) {
      assert.equal(slotsTaken[0], 1, 'the line did not reach the compiled walk');
    }

    const atEnd = inMemory.length - content.length - 1;
    inMemory.set(content, atEnd);
    inMemory[inMemory.length - 1] = LINE_FEED;
    assert.deepEqual(scanAt(scanner, inMemory, atEnd, inMemory.length - 1), plainFacts, 'the compiled walk disagrees at the end of its memory');
  } finally {
    scanBuffers.release();
  }

  return plainFacts;
}

function scanAt(scanner: LineScanner, bytes: Buffer, start: number, end: number): LineFacts {
  const kind = scanner.scanLine(bytes, start, end);
  assert.equal(kind, scanner.facts.kind, 'scanLine returned a kind other than facts.kind');
  return { ...scanner.facts };
}

function scan(line: string | Uint8Array, options: ScannerOptions = DEFAULT_OPTIONS): LineFacts {
  return scanWith(new LineScanner(options), line);
}

function kindOf(line: string | Uint8Array, options: ScannerOptions = DEFAULT_OPTIONS): string {
  return KIND_NAMES[scan(line, options).kind]!;
}

/** Builds a line from text pieces and raw bytes, for lines that are not valid UTF-8. */
function bytesOf(...parts: (string | number[])[]): Buffer {
  return Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : Buffer.from(part))));
}

// ---------------------------------------------------------------------------
// One test per kind of bad line

const BAD_LINES: readonly [label: string, line: string | Buffer, expectedKind: string][] = [
  ['plain text', 'hello world', 'NOT_JSON'],
  ['truncated object', `{"timestamp": "${STAMP}"`, 'NOT_JSON'],
  ['truncated string', `{"timestamp": "${STAMP}`, 'NOT_JSON'],
  ['trailing comma', `{"timestamp": "${STAMP}",}`, 'NOT_JSON'],
  ['two objects', `{"timestamp": "${STAMP}"}{}`, 'NOT_JSON'],
  ['single quotes', `{'timestamp': '${STAMP}'}`, 'NOT_JSON'],
  ['unquoted key', `{timestamp: "${STAMP}"}`, 'NOT_JSON'],
  ['raw tab in string', `{"timestamp": "${STAMP}", "a": "x\ty"}`, 'NOT_JSON'],
  ['invalid escape', `{"timestamp": "${STAMP}", "a": "\\x41"}`, 'NOT_JSON'],
  ['short unicode escape', `{"timestamp": "${STAMP}", "a": "\\u41"}`, 'NOT_JSON'],
  ['leading zero number', `{"timestamp": 01773570030000}`, 'NOT_JSON'],
  ['byte order mark', `\ufeff{"timestamp": "${STAMP}"}`, 'NOT_JSON'],
  ['form feed inside JSON', '{\f"timestamp": 1}', 'NOT_JSON'],
  ['array', '[1, 2, 3]', 'NOT_OBJECT'],
  ['string', `"${STAMP}"`, 'NOT_OBJECT'],
  ['number', '1773570030000', 'NOT_OBJECT'],
  ['null', 'null', 'NOT_OBJECT'],
  ['true', 'true', 'NOT_OBJECT'],
  ['array of record', `[{"timestamp": "${STAMP}"}]`, 'NOT_OBJECT'],
  ['no timestamp field', '{"schema_name": "auth.events"}', 'NO_TIMESTAMP'],
  ['empty object', '{}', 'NO_TIMESTAMP'],
  ['nested timestamp only', `{"inner": {"timestamp": "${STAMP}"}}`, 'NO_TIMESTAMP'],
  ['timestamp null', '{"timestamp": null}', 'NO_TIMESTAMP'],
  ['timestamp true', '{"timestamp": true}', 'NO_TIMESTAMP'],
  ['timestamp false', '{"timestamp": false}', 'NO_TIMESTAMP'],
  ['timestamp object', `{"timestamp": {"value": "${STAMP}"}}`, 'NO_TIMESTAMP'],
  ['timestamp empty object', '{"timestamp": {}, "a": 1}', 'NO_TIMESTAMP'],
  ['timestamp array', `{"timestamp": ["${STAMP}"]}`, 'NO_TIMESTAMP'],
  ['timestamp unparseable string', '{"timestamp": "yesterday"}', 'NO_TIMESTAMP'],
  ['timestamp date only', '{"timestamp": "2026-03-15"}', 'NO_TIMESTAMP'],
  ['timestamp out of range', '{"timestamp": 8640000000000001}', 'NO_TIMESTAMP'],
  ['invalid UTF-8 in string', bytesOf(`{"timestamp": "${STAMP}", "a": "`, [0xff, 0xfe], '"}'), 'INVALID_UTF8'],
  ['invalid UTF-8 in key', bytesOf(`{"timestamp": "${STAMP}", "`, [0xc3], '": 1}'), 'INVALID_UTF8'],
  ['invalid UTF-8 after object', bytesOf(`{"timestamp": "${STAMP}"}`, [0xff]), 'INVALID_UTF8'],
  ['invalid UTF-8 alone', bytesOf([0x80]), 'INVALID_UTF8'],
  ['truncated UTF-8 sequence', bytesOf(`{"timestamp": "${STAMP}", "a": "`, [0xe2, 0x82], '"}'), 'INVALID_UTF8'],
  ['overlong slash C0 AF', bytesOf(`{"timestamp": "${STAMP}", "a": "`, [0xc0, 0xaf], '"}'), 'INVALID_UTF8'],
  ['overlong slash E0 80 AF', bytesOf(`{"timestamp": "${STAMP}", "a": "`, [0xe0, 0x80, 0xaf], '"}'), 'INVALID_UTF8'],
  ['overlong slash F0 80 80 AF', bytesOf(`{"timestamp": "${STAMP}", "a": "`, [0xf0, 0x80, 0x80, 0xaf], '"}'), 'INVALID_UTF8'],
  ['UTF-8 surrogate ED A0 80', bytesOf(`{"timestamp": "${STAMP}", "a": "`, [0xed, 0xa0, 0x80], '"}'), 'INVALID_UTF8'],
  ['code point above U+10FFFF', bytesOf(`{"timestamp": "${STAMP}", "a": "`, [0xf4, 0x90, 0x80, 0x80], '"}'), 'INVALID_UTF8'],
];

for (const [label, line, expectedKind] of BAD_LINES) {
  test(`scanner bad line: ${label}`, () => {
    assert.equal(kindOf(line), expectedKind);
  });
}

const BLANK_LINES: readonly [label: string, line: string][] = [
  ['empty', ''],
  ['spaces', '    '],
  ['tabs', '\t\t'],
  ['lone CR', '\r'],
  ['mixed white space', ' \t\r \r'],
  ['form feed only', '\f'],
  ['vertical tab and spaces', ' \v '],
];

for (const [label, line] of BLANK_LINES) {
  test(`scanner blank line: ${label}`, () => {
    assert.equal(kindOf(line), 'BLANK');
  });
}

// ---------------------------------------------------------------------------
// Valid records

test('scanner reads a plain record', () => {
  const facts = scan(`{"timestamp": "${STAMP}", "schema_name": "auth.events", "schema_version": 2, "operation_type": "tool", "operation_status": "error", "policy_decision": "deny"}`);
  assert.equal(KIND_NAMES[facts.kind], 'RECORD');
  assert.equal(facts.timestampMs, STAMP_MS);
  assert.equal(facts.schemaName, 'auth.events');
  assert.equal(facts.schemaVersion, 2);
  assert.equal(facts.operationType, 'tool');
  assert.equal(facts.operationStatus, 'error');
  assert.equal(facts.policyDecision, 'deny');
});

test('scanner accepts CRLF ending', () => {
  const facts = scan(`{"timestamp": "${STAMP}", "schema_name": "auth.events"}\r`);
  assert.equal(KIND_NAMES[facts.kind], 'RECORD');
  assert.equal(facts.timestampMs, STAMP_MS);
  assert.equal(facts.schemaName, 'auth.events');
});

test('scanner accepts CR inside record', () => {
  assert.equal(kindOf(`\r{\r"timestamp"\r:\r"${STAMP}"\r}\r`), 'RECORD');
});

test('scanner finds escaped timestamp key', () => {
  const facts = scan(`{"time\\u0073tamp": "${STAMP}"}`);
  assert.equal(KIND_NAMES[facts.kind], 'RECORD');
  assert.equal(facts.timestampMs, STAMP_MS);
});

test('scanner finds escaped schema keys', () => {
  const facts = scan(`{"timestamp": "${STAMP}", "schema\\u005fname": "auth.events", "schema_versio\\u006e": 3}`);
  assert.equal(facts.schemaName, 'auth.events');
  assert.equal(facts.schemaVersion, 3);
});

test('scanner decodes escaped timestamp value', () => {
  const facts = scan('{"timestamp": "2026-03-15T15:50:30\\u002b05\\u003a30"}');
  assert.equal(KIND_NAMES[facts.kind], 'RECORD');
  assert.equal(facts.timestampMs, STAMP_MS);
});

test('scanner decodes escaped schema name', () => {
  assert.equal(scan(`{"timestamp": "${STAMP}", "schema_name": "caf\\u00e9\\/v2"}`).schemaName, 'caf\u00e9/v2');
  assert.equal(scan(`{"timestamp": "${STAMP}", "schema_name": "a\\uD800b"}`).schemaName, 'a\ud800b');
});

test('scanner reads non-ASCII schema name', () => {
  const facts = scan(`{"timestamp": "${STAMP}", "schema_name": "caf\u00e9 \u{1f600}"}`);
  assert.equal(KIND_NAMES[facts.kind], 'RECORD');
  assert.equal(facts.schemaName, 'caf\u00e9 \u{1f600}');
});

test('scanner ignores near-miss keys', () => {
  assert.equal(kindOf(`{"timestamp ": "${STAMP}"}`), 'NO_TIMESTAMP');
  assert.equal(kindOf(`{"Timestamp": "${STAMP}"}`), 'NO_TIMESTAMP');
  assert.equal(kindOf(`{"timestamp\\u0000": "${STAMP}"}`), 'NO_TIMESTAMP');
  assert.equal(kindOf(`{"timestam": "${STAMP}"}`), 'NO_TIMESTAMP');
});

test('scanner duplicate timestamp: last wins', () => {
  assert.equal(scan(`{"timestamp": "1999-01-01T00:00:00Z", "timestamp": "${STAMP}"}`).timestampMs, STAMP_MS);
  assert.equal(kindOf(`{"timestamp": "${STAMP}", "timestamp": null}`), 'NO_TIMESTAMP');
  assert.equal(kindOf(`{"timestamp": "${STAMP}", "time\\u0073tamp": "soon"}`), 'NO_TIMESTAMP');
  assert.equal(kindOf(`{"timestamp": [], "timestamp": "${STAMP}"}`), 'RECORD');
  assert.equal(kindOf(`{"timestamp": "${STAMP}", "timestamp": {"a": 1}}`), 'NO_TIMESTAMP');
});

test('scanner duplicate schema keys: last wins', () => {
  const facts = scan(`{"schema_name": "a", "timestamp": "${STAMP}", "schema_version": 2, "schema_name": "b", "schema_version": 3}`);
  assert.equal(facts.schemaName, 'b');
  assert.equal(facts.schemaVersion, 3);

  const cleared = scan(`{"schema_name": "a", "timestamp": "${STAMP}", "schema_version": 2, "schema_name": null, "schema_version": "x"}`);
  assert.equal(cleared.schemaName, null);
  assert.equal(cleared.schemaVersion, 1);
});

test('scanner epoch timestamps', () => {
  assert.equal(scan('{"timestamp": 1773570030000}').timestampMs, STAMP_MS);
  assert.equal(scan('{"timestamp": 1773570030000.9}').timestampMs, STAMP_MS);
  assert.equal(scan('{"timestamp": 1.77357003e12}').timestampMs, STAMP_MS);
  assert.equal(scan('{"timestamp": -0.5}').timestampMs, -1);
});

test('scanner long exponent timestamps', () => {
  // JSON.parse reads both as 0, the epoch, and an exponent of 200,000 digits must not make scanLine throw.
  const zero = scan(`{"timestamp": 0e${'9'.repeat(400)}}`);
  assert.equal(KIND_NAMES[zero.kind], 'RECORD');
  assert.equal(zero.timestampMs, 0);

  const tiny = scan(`{"timestamp": 1e-${'9'.repeat(200_000)}}`);
  assert.equal(KIND_NAMES[tiny.kind], 'RECORD');
  assert.equal(tiny.timestampMs, 0);

  assert.equal(kindOf(`{"timestamp": 1e${'9'.repeat(200_000)}}`), 'NO_TIMESTAMP');
});

test('scanner custom field in seconds', () => {
  const options: ScannerOptions = { timestampField: 'ts', timestampUnit: 's' };
  assert.equal(scan('{"ts": 1773570030.9999}', options).timestampMs, STAMP_MS + 999);
  assert.equal(scan(`{"ts": "${STAMP}"}`, options).timestampMs, STAMP_MS);
  assert.equal(kindOf(`{"timestamp": "${STAMP}"}`, options), 'NO_TIMESTAMP');
});

test('scanner non-ASCII timestamp field', () => {
  const options: ScannerOptions = { timestampField: 'zeitstempel_\u00e4', timestampUnit: 'ms' };
  assert.equal(scan(`{"zeitstempel_\u00e4": "${STAMP}"}`, options).timestampMs, STAMP_MS);
  assert.equal(scan(`{"zeitstempel_\\u00e4": "${STAMP}"}`, options).timestampMs, STAMP_MS);
});

test('scanner schema_name forms', () => {
  assert.equal(scan(`{"timestamp": "${STAMP}", "schema_name": ""}`).schemaName, null);
  assert.equal(scan(`{"timestamp": "${STAMP}", "schema_name": 5}`).schemaName, null);
  assert.equal(scan(`{"timestamp": "${STAMP}", "schema_name": null}`).schemaName, null);
  assert.equal(scan(`{"timestamp": "${STAMP}"}`).schemaName, null);
  assert.equal(scan(`{"timestamp": "${STAMP}", "schema_name": {"a": "b"}}`).schemaName, null);
});

// A schema_version that is missing, null or not a whole number counts as 1. The scanner
// reads "whole number" as any safe integer, the same rule as the schemas file, so -1 and
// 0 are kept as they are.
const VERSION_FORMS: readonly [label: string, valueText: string | null, expectedVersion: number][] = [
  ['2', '2', 2],
  ['2.0', '2.0', 2],
  ['20e-1', '20e-1', 2],
  ['string "2"', '"2"', 1],
  ['null', 'null', 1],
  ['missing', null, 1],
  ['1e0', '1e0', 1],
  ['0', '0', 0],
  ['-0', '-0', 0],
  ['-1', '-1', -1],
  ['1.5', '1.5', 1],
  ['1e400', '1e400', 1],
  ['2^53 + 1', '9007199254740993', 1],
  ['true', 'true', 1],
  ['array', '[2]', 1],
];

for (const [label, valueText, expectedVersion] of VERSION_FORMS) {
  test(`scanner schema_version ${label}`, () => {
    const versionMember = valueText === null ? '' : `, "schema_version": ${valueText}`;
    const facts = scan(`{"timestamp": "${STAMP}", "schema_name": "auth.events"${versionMember}}`);
    assert.equal(KIND_NAMES[facts.kind], 'RECORD');
    assert.ok(Object.is(facts.schemaVersion, expectedVersion), `schema_version ${valueText} gave ${facts.schemaVersion}`);
  });
}

test('scanner reuse does not leak facts', () => {
  const scanner = new LineScanner(DEFAULT_OPTIONS);
  scanWith(scanner, `{"timestamp": "${STAMP}", "schema_name": "a", "schema_version": 7, "operation_type": "tool"}`);
  const facts = scanWith(scanner, `{"timestamp": "${STAMP}"}`);
  assert.equal(facts.schemaName, null);
  assert.equal(facts.schemaVersion, 1);
  assert.equal(facts.operationType, null);
  assert.equal(KIND_NAMES[scanWith(scanner, '{"schema_name": "a"}').kind], 'NO_TIMESTAMP');
});

// ---------------------------------------------------------------------------
// Deep nesting

const DEPTH = 100_000;

/** Returns JSON.parse's verdict on `text`: the parsed value, or the marker for a syntax error. */
function parseOrMarker(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON_MARKER;
  }
}

const NOT_JSON_MARKER = Symbol('not JSON');

test('scanner unclosed deep nesting', () => {
  const line = '['.repeat(DEPTH);
  assert.equal(parseOrMarker(line), NOT_JSON_MARKER);
  assert.equal(kindOf(line), 'NOT_JSON');
});

test('scanner closed deep array', () => {
  const line = '['.repeat(DEPTH) + ']'.repeat(DEPTH);
  assert.ok(Array.isArray(parseOrMarker(line)));
  assert.equal(kindOf(line), 'NOT_OBJECT');
});

test('scanner record with deep member', () => {
  const line = `{"schema_name": "a", "nested": ${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}, "timestamp": "${STAMP}"}`;
  assert.equal(typeof parseOrMarker(line), 'object');
  const facts = scan(line);
  assert.equal(KIND_NAMES[facts.kind], 'RECORD');
  assert.equal(facts.timestampMs, STAMP_MS);
  assert.equal(facts.schemaName, 'a');
});

test('scanner deep objects with timestamp keys', () => {
  const line = `{"a": ${'{"timestamp": '.repeat(DEPTH)}"${STAMP}"${'}'.repeat(DEPTH)}}`;
  assert.equal(typeof parseOrMarker(line), 'object');
  assert.equal(kindOf(line), 'NO_TIMESTAMP');
});

test('scanner deep nesting one bracket short', () => {
  const line = `{"timestamp": "${STAMP}", "a": ${'['.repeat(DEPTH)}${']'.repeat(DEPTH - 1)}}`;
  assert.equal(parseOrMarker(line), NOT_JSON_MARKER);
  assert.equal(kindOf(line), 'NOT_JSON');
});

// ---------------------------------------------------------------------------
// Reference model: isUtf8 and JSON.parse on the decoded line

interface Verdict {
  kind: string;
  timestampMs: number;
  schemaName: string | null;
  schemaVersion: number;
  operationType: string | null;
  operationStatus: string | null;
  policyDecision: string | null;
}

/** Largest distance from the epoch that a Date can hold, in ms. */
const MAX_DATE_MS = 8_640_000_000_000_000n;

/** Floors the JSON number `text` times 10^unitDigits exactly, with BigInt. Returns NaN outside the Date range. */
function referenceEpochMs(text: string, unitDigits: number): number {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (match === null) {
    throw new Error(`not a JSON number: ${text}`);
  }
  const [, sign, integerDigits, fractionDigits = '', exponentText = '0'] = match;
  const mantissa = BigInt(integerDigits! + fractionDigits);
  if (mantissa === 0n) {
    return 0;
  }
  const scale = BigInt(exponentText) - BigInt(fractionDigits.length) + BigInt(unitDigits);

  let floored: bigint;
  if (scale >= 0n) {
    if (scale > 40n) {
      return NaN;
    }
    floored = mantissa * 10n ** scale;
    if (sign === '-') {
      floored = -floored;
    }
  } else {
    // A divisor with more digits than the mantissa leaves a quotient of 0 and a nonzero remainder.
    const divisorDigits = -scale;
    const quotient = divisorDigits > BigInt(mantissa.toString().length) ? 0n : mantissa / 10n ** divisorDigits;
    const exact = divisorDigits > BigInt(mantissa.toString().length) ? false : mantissa % 10n ** divisorDigits === 0n;
    floored = quotient;
    if (sign === '-') {
      floored = exact ? -quotient : -quotient - 1n;
    }
  }
  if (floored > MAX_DATE_MS || floored < -MAX_DATE_MS) {
    return NaN;
  }
  return Number(floored);
}

const ISO_PATTERN = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/;

/** Parses `text` by the contract's ISO 8601 rule through a UTC Date. Returns epoch ms, or NaN for any other text. */
function referenceIsoMs(text: string): number {
  const match = ISO_PATTERN.exec(text);
  if (match === null) {
    return NaN;
  }
  // Group 8 is the letter Z, which needs no handling.
  const [, year, month, day, hour, minute, second, fraction = '', , offsetSign, offsetHour = '0', offsetMinute = '0'] = match;
  const date = new Date(0);
  date.setUTCFullYear(Number(year), Number(month) - 1, Number(day));
  if (date.getUTCFullYear() !== Number(year) || date.getUTCMonth() !== Number(month) - 1 || date.getUTCDate() !== Number(day)) {
    return NaN;
  }
  if (Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59 || Number(offsetHour) > 23 || Number(offsetMinute) > 59) {
    return NaN;
  }
  const fractionMs = Number(`${fraction}000`.slice(0, 3));
  const localMs = date.setUTCHours(Number(hour), Number(minute), Number(second), fractionMs);
  const offsetMs = (Number(offsetHour) * 60 + Number(offsetMinute)) * 60_000 * (offsetSign === '-' ? -1 : 1);
  return localMs - offsetMs;
}

/** A global pattern that finds every string and number token of valid JSON text, in order. */
const TOKEN_PATTERN = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/gs;

/**
 * Returns the source text of the top-level number member `field`. Each number token
 * becomes a string holding NUL and its text, and JSON.parse picks the member from that.
 */
function numberSourceOf(text: string, field: string): string {
  const marked = text.replace(TOKEN_PATTERN, (token) => (token.startsWith('"') ? token : `"\\u0000${token}"`));
  const value = (JSON.parse(marked) as Record<string, unknown>)[field];
  if (typeof value !== 'string' || !value.startsWith('\u0000')) {
    throw new Error(`no number source for ${field} in ${text.slice(0, 200)}`);
  }
  return value.slice(1);
}

/** Blank in the contract's sense: JSON white space, form feed and vertical tab only. */
function isJsonWhiteSpaceOnly(line: Uint8Array): boolean {
  return line.every((byte) => byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0b || byte === 0x0c);
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function referenceVerdict(line: Uint8Array, options: ScannerOptions): Verdict {
  const verdict: Verdict = {
    kind: 'RECORD',
    timestampMs: NaN,
    schemaName: null,
    schemaVersion: 1,
    operationType: null,
    operationStatus: null,
    policyDecision: null,
  };
  if (isJsonWhiteSpaceOnly(line)) {
    return { ...verdict, kind: 'BLANK' };
  }
  if (!isUtf8(line)) {
    return { ...verdict, kind: 'INVALID_UTF8' };
  }
  const text = Buffer.from(line).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ...verdict, kind: 'NOT_JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ...verdict, kind: 'NOT_OBJECT' };
  }

  const record = value as Record<string, unknown>;
  const stamp = Object.hasOwn(record, options.timestampField) ? record[options.timestampField] : undefined;
  let timestampMs = NaN;
  if (typeof stamp === 'number') {
    timestampMs = referenceEpochMs(numberSourceOf(text, options.timestampField), options.timestampUnit === 's' ? 3 : 0);
  } else if (typeof stamp === 'string') {
    timestampMs = referenceIsoMs(stamp);
  }
  if (Number.isNaN(timestampMs)) {
    return { ...verdict, kind: 'NO_TIMESTAMP' };
  }

  const name = record['schema_name'];
  const version = record['schema_version'];
  return {
    kind: 'RECORD',
    timestampMs,
    schemaName: typeof name === 'string' && name !== '' ? name : null,
    schemaVersion: typeof version === 'number' && Number.isSafeInteger(version) ? version + 0 : 1,
    operationType: stringOrNull(record['operation_type']),
    operationStatus: stringOrNull(record['operation_status']),
    policyDecision: stringOrNull(record['policy_decision']),
  };
}

/** Asserts that the scanner agrees with the reference on `line`, one assert per fact. */
function assertMatchesReference(scanner: LineScanner, line: Uint8Array, options: ScannerOptions): void {
  const expected = referenceVerdict(line, options);
  const actual = scanWith(scanner, line);
  const lineText = JSON.stringify(Buffer.from(line).toString('latin1')).slice(0, 300);

  assert.equal(KIND_NAMES[actual.kind], expected.kind, `kind of ${lineText}`);
  if (expected.kind !== 'RECORD') {
    return;
  }
  assert.equal(actual.timestampMs, expected.timestampMs, `timestamp of ${lineText}`);
  assert.equal(actual.schemaName, expected.schemaName, `schema_name of ${lineText}`);
  assert.equal(actual.schemaVersion, expected.schemaVersion, `schema_version of ${lineText}`);
  assert.equal(actual.operationType, expected.operationType, `operation_type of ${lineText}`);
  assert.equal(actual.operationStatus, expected.operationStatus, `operation_status of ${lineText}`);
  assert.equal(actual.policyDecision, expected.policyDecision, `policy_decision of ${lineText}`);
}

test('reference agrees on fixed lines', () => {
  const scanner = new LineScanner(DEFAULT_OPTIONS);
  for (const [, line] of [...BAD_LINES, ...BLANK_LINES]) {
    assertMatchesReference(scanner, typeof line === 'string' ? Buffer.from(line) : line, DEFAULT_OPTIONS);
  }
  assert.equal(referenceEpochMs('-1e-400', 0), -1);
  assert.equal(referenceEpochMs('1773570030.9999', 3), STAMP_MS + 999);
  assert.equal(referenceIsoMs('2026-03-15T15:50:30.250+0530'), STAMP_MS + 250);
  assert.ok(Number.isNaN(referenceIsoMs('2026-02-29T00:00:00Z')));
});

// ---------------------------------------------------------------------------
// Generators for the property tests

const digits = (minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...'0123456789'), minLength, maxLength });

/** Any JSON number text, including forms such as 2.0, 1e0, -0 and 20E+3. */
const jsonNumberText: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom('', '-'),
    fc.oneof(fc.constant('0'), fc.tuple(fc.constantFrom(...'123456789'), digits(0, 17)).map(([first, rest]) => first + rest)),
    fc.option(digits(1, 12), { nil: '' }),
    fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 3)), { nil: null }),
  )
  .map(([sign, integerPart, fraction, exponent]) => {
    const fractionText = fraction === '' ? '' : `.${fraction}`;
    const exponentText = exponent === null ? '' : exponent.join('');
    return sign + integerPart + fractionText + exponentText;
  });

/** Epoch numbers in ms or seconds: realistic values, values near the Date limits, and fractions. */
const epochText: fc.Arbitrary<string> = fc
  .tuple(
    fc.oneof(
      fc.bigInt({ min: 1_500_000_000_000n, max: 2_000_000_000_000n }),
      fc.bigInt({ min: 1_500_000_000n, max: 2_000_000_000n }),
      fc.bigInt({ min: 8_639_999_999_999_990n, max: 8_640_000_000_000_010n }),
      fc.bigInt({ min: -8_640_000_000_000_010n, max: -8_639_999_999_999_990n }),
      fc.bigInt({ min: 8_639_999_999_990n, max: 8_640_000_000_010n }),
      fc.bigInt({ min: -1000n, max: 1000n }),
    ),
    fc.option(digits(1, 10), { nil: '' }),
  )
  .map(([integer, fraction]) => (fraction === '' ? integer.toString() : `${integer}.${fraction}`));

const twoDigits = (value: number): string => String(value).padStart(2, '0');

/** Offsets in minutes east of UTC, up to ±23:59. */
const offsetMinutes = fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 });

function offsetText(minutes: number, withColon: boolean): string {
  const sign = minutes < 0 ? '-' : '+';
  const magnitude = Math.abs(minutes);
  return `${sign}${twoDigits(Math.floor(magnitude / 60))}${withColon ? ':' : ''}${twoDigits(magnitude % 60)}`;
}

/** ISO text from a real instant, in every accepted form and some near misses (10 fraction digits). */
const isoFromDate: fc.Arbitrary<string> = fc
  .record({
    date: fc.date({ min: new Date('0001-01-02T00:00:00Z'), max: new Date('9999-12-30T23:59:59.999Z'), noInvalidDate: true }),
    separator: fc.constantFrom('T', 't', ' '),
    decimalMark: fc.constantFrom('.', ','),
    fractionDigits: fc.integer({ min: 0, max: 10 }),
    extraDigits: digits(7, 7),
    zone: fc.oneof(
      fc.constantFrom('Z', 'z', ''),
      fc.tuple(offsetMinutes, fc.boolean()).map(([minutes, withColon]) => ({ minutes, withColon })),
    ),
  })
  .map(({ date, separator, decimalMark, fractionDigits, extraDigits, zone }) => {
    const shiftMinutes = typeof zone === 'string' ? 0 : zone.minutes;
    const local = new Date(date.getTime() + shiftMinutes * 60_000).toISOString();
    const fraction = fractionDigits === 0 ? '' : decimalMark + (local.slice(20, 23) + extraDigits).slice(0, fractionDigits);
    const zoneText = typeof zone === 'string' ? zone : offsetText(zone.minutes, zone.withColon);
    return `${local.slice(0, 10)}${separator}${local.slice(11, 19)}${fraction}${zoneText}`;
  });

/** ISO-shaped text from independent fields, many of them out of range. */
const isoFromFields: fc.Arbitrary<string> = fc
  .record({
    year: fc.integer({ min: 0, max: 9999 }),
    month: fc.integer({ min: 0, max: 13 }),
    day: fc.integer({ min: 0, max: 32 }),
    hour: fc.integer({ min: 0, max: 24 }),
    minute: fc.integer({ min: 0, max: 60 }),
    second: fc.integer({ min: 0, max: 61 }),
    fraction: fc.constantFrom('', '.', '.5', ',123', '.123456789', '.1234567890'),
    zone: fc.constantFrom('', 'Z', 'z', '+05:30', '-0800', '+5:30', '+24:00', '+05:60', '+05', 'UTC', ' '),
  })
  .map(
    ({ year, month, day, hour, minute, second, fraction, zone }) =>
      `${String(year).padStart(4, '0')}-${twoDigits(month)}-${twoDigits(day)}T${twoDigits(hour)}:${twoDigits(minute)}:${twoDigits(second)}${fraction}${zone}`,
  );

/** Encodes `text` as a JSON string token with one character written as a \u escape. */
function withUnicodeEscape(text: string, position: number): string {
  const token = JSON.stringify(text);
  if (text.length === 0) {
    return token;
  }
  const index = position % text.length;
  const escaped = `\\u${text.charCodeAt(index).toString(16).padStart(4, '0')}`;
  return JSON.stringify(text.slice(0, index)).slice(0, -1) + escaped + JSON.stringify(text.slice(index + 1)).slice(1);
}

/** Characters of any kind, lone surrogates included, because the 'binary' unit of fast-check 4 leaves them out. */
const hostileCharacter: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
  fc.constantFrom('"', '\\', '\u0000', '\u001f', '\u007f', '\u2028', '\ufeff', '\r', '\t'),
);

const hostileString: fc.Arbitrary<string> = fc.array(hostileCharacter, { maxLength: 12 }).map((characters) => characters.join(''));

/** The JSON text of a timestamp value: ISO strings, epoch numbers, and values that are not timestamps. */
const timestampValueText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: isoFromDate.map((text) => JSON.stringify(text)), weight: 4 },
  { arbitrary: isoFromFields.map((text) => JSON.stringify(text)), weight: 2 },
  { arbitrary: fc.tuple(isoFromDate, fc.nat()).map(([text, position]) => withUnicodeEscape(text, position)), weight: 1 },
  { arbitrary: epochText, weight: 3 },
  { arbitrary: jsonNumberText, weight: 1 },
  { arbitrary: hostileString.map((text) => JSON.stringify(text)), weight: 1 },
  {
    arbitrary: fc.constantFrom('null', 'true', 'false', '{}', '[]', '""', '"2026-03-15"', `["${STAMP}"]`, `{"value": "${STAMP}"}`),
    weight: 1,
  },
);

const schemaNameText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('"auth.events"', '"mxcp.endpoints"', '""', '"unknown"', 'null', '5', '{}', '"a\\uD800b"', '"caf\\u00e9"'),
  hostileString.map((text) => JSON.stringify(text)),
);

const schemaVersionText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('1', '2', '2.0', '20e-1', '1e0', '-1', '-0', '0', '1.5', '1e400', '9007199254740993', '"2"', 'null', 'true', '[2]'),
  jsonNumberText,
);

const labelText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('"tool"', '"success"', '"error"', '"deny"', '""', 'null', '1', '"\\u0074ool"'),
  hostileString.map((text) => JSON.stringify(text)),
);

/** Generates key tokens for `name`: plain, with one \u escape, or with every character escaped. */
function keyText(name: string): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constant(JSON.stringify(name)), weight: 6 },
    { arbitrary: fc.nat().map((position) => withUnicodeEscape(name, position)), weight: 1 },
    {
      arbitrary: fc.constant(`"${[...name].map((character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`),
      weight: 1,
    },
  );
}

const whiteSpace: fc.Arbitrary<string> = fc.constantFrom('', '', '', ' ', '  ', '\t', '\r', ' \r\t');

interface Member {
  key: string;
  value: string;
}

function member(key: fc.Arbitrary<string>, value: fc.Arbitrary<string>): fc.Arbitrary<Member> {
  return fc.record({ key, value });
}

/** Lines of JSON objects with the members the scanner picks out, in any order, duplicates included. */
function recordLine(timestampField: string): fc.Arbitrary<Buffer> {
  const anyMember = fc.oneof(
    { arbitrary: member(keyText(timestampField), timestampValueText), weight: 4 },
    { arbitrary: member(keyText('schema_name'), schemaNameText), weight: 2 },
    { arbitrary: member(keyText('schema_version'), schemaVersionText), weight: 2 },
    { arbitrary: member(fc.constantFrom('operation_type', 'operation_status', 'policy_decision').chain(keyText), labelText), weight: 1 },
    {
      arbitrary: member(
        hostileString.map((text) => JSON.stringify(text)),
        fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.stringify(value)),
      ),
      weight: 2,
    },
  );
  return fc
    .record({
      members: fc.array(fc.tuple(anyMember, whiteSpace, whiteSpace, whiteSpace), { maxLength: 7 }),
      leading: whiteSpace,
      trailing: whiteSpace,
      closing: whiteSpace,
    })
    .map(({ members, leading, trailing, closing }) => {
      const body = members.map(([{ key, value }, beforeColon, afterColon, afterValue]) => `${key}${beforeColon}:${afterColon}${value}${afterValue}`);
      return Buffer.from(`${leading}{${body.join(',')}${closing}}${trailing}`, 'utf8');
    });
}

/** Record lines of ASCII text, so that a mutation often leaves them valid or only just invalid. */
const plainRecordLine: fc.Arbitrary<Buffer> = fc
  .record({
    stamp: fc.oneof(isoFromDate.map((text) => JSON.stringify(text)), epochText),
    version: fc.constantFrom('1', '2', '2.0', '1e0', '-1', '1.5', 'null', '"2"'),
    name: fc.constantFrom('"auth.events"', '"mxcp.endpoints"', '""', 'null'),
    separator: fc.constantFrom(',', ', '),
  })
  .map(({ stamp, version, name, separator }) =>
    Buffer.from(
      ['{"timestamp": ' + stamp, `"schema_name": ${name}`, `"schema_version": ${version}`, '"operation_type": "tool"}'].join(separator),
      'latin1',
    ),
  );

/** Bytes that matter to JSON and UTF-8, and any other byte except the line feed. */
const mutationByte: fc.Arbitrary<number> = fc
  .oneof(
    { arbitrary: fc.integer({ min: 0x20, max: 0x7e }), weight: 3 },
    {
      arbitrary: fc.constantFrom(0x09, 0x0d, 0x20, 0x22, 0x2b, 0x2c, 0x2d, 0x2e, 0x30, 0x31, 0x39, 0x3a, 0x45, 0x5a, 0x5b, 0x5c, 0x5d, 0x65, 0x75, 0x7b, 0x7d),
      weight: 3,
    },
    { arbitrary: fc.integer({ min: 0x00, max: 0x1f }), weight: 1 },
    { arbitrary: fc.integer({ min: 0x7f, max: 0xff }), weight: 1 },
  )
  .map((byte) => (byte === LINE_FEED ? 0x0b : byte));

/** Byte sequences to insert whole: overlong forms, UTF-8 surrogates, a byte order mark, valid multibyte characters. */
const mutationSequence: fc.Arbitrary<number[]> = fc.constantFrom(
  [0xc0, 0xaf],
  [0xe0, 0x80, 0xaf],
  [0xf0, 0x80, 0x80, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xef, 0xbb, 0xbf],
  [0xc3, 0xa9],
  [0xe2, 0x80, 0xa8],
  [0xf0, 0x9f, 0x98, 0x80],
  [0x5c, 0x75, 0x44, 0x38, 0x30, 0x30],
);

type Mutation =
  | { operation: 'insert' | 'replace'; position: number; bytes: number[] }
  | { operation: 'delete'; position: number; length: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ operation: fc.constant('insert' as const), position: fc.nat(), bytes: mutationByte.map((byte) => [byte]) }),
  fc.record({ operation: fc.constant('insert' as const), position: fc.nat(), bytes: mutationSequence }),
  fc.record({ operation: fc.constant('replace' as const), position: fc.nat(), bytes: mutationByte.map((byte) => [byte]) }),
  fc.record({ operation: fc.constant('delete' as const), position: fc.nat(), length: fc.integer({ min: 1, max: 3 }) }),
);

function applyMutation(line: Buffer, change: Mutation): Buffer {
  const position = change.position % (line.length + 1);
  switch (change.operation) {
    case 'insert':
      return Buffer.concat([line.subarray(0, position), Buffer.from(change.bytes), line.subarray(position)]);
    case 'replace':
      if (position === line.length) {
        return line;
      }
      return Buffer.concat([line.subarray(0, position), Buffer.from(change.bytes), line.subarray(position + 1)]);
    case 'delete':
      return Buffer.concat([line.subarray(0, position), line.subarray(position + change.length)]);
  }
}

const mutatedRecordLine: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.oneof({ arbitrary: plainRecordLine, weight: 3 }, { arbitrary: recordLine('timestamp'), weight: 1 }),
    fc.array(mutation, { minLength: 1, maxLength: 3 }),
  )
  .map(([line, changes]) => changes.reduce(applyMutation, line));

/** Text encoded as UTF-8, with line feeds replaced because a line cannot contain one. */
function lineFromText(text: string): Buffer {
  return Buffer.from(text.replace(/\n/g, '\u000b'), 'utf8');
}

// ---------------------------------------------------------------------------
// Property tests: 20,000 runs in all

function checkProperty(arbitrary: fc.Arbitrary<Uint8Array>, numRuns: number, options: ScannerOptions = DEFAULT_OPTIONS): void {
  const scanner = new LineScanner(options);
  fc.assert(
    fc.property(arbitrary, (line) => {
      assertMatchesReference(scanner, line, options);
    }),
    { numRuns },
  );
}

test('property: generated JSON values', () => {
  checkProperty(fc.jsonValue().map((value) => lineFromText(JSON.stringify(value))), 2000);
});

test('property: fc.json texts', () => {
  checkProperty(fc.json().map(lineFromText), 1000);
});

test('property: generated records', () => {
  checkProperty(recordLine('timestamp'), 5000);
});

test('property: records in seconds', () => {
  checkProperty(recordLine('ts'), 2000, { timestampField: 'ts', timestampUnit: 's' });
});

test('property: mutated record bytes', () => {
  checkProperty(mutatedRecordLine, 6000);
});

test('property: hostile string values', () => {
  const hostileRecord = fc
    .record({ key: hostileString, value: hostileString, stamp: fc.oneof(isoFromDate, hostileString), loneEscape: fc.constantFrom('\\uD800', '\\uDFFF', '\\uDBFF\\uDC00', '\\uDC00\\uD800') })
    .map(({ key, value, stamp, loneEscape }) =>
      lineFromText(
        `{${JSON.stringify(key)}: ${JSON.stringify(value)}, "timestamp": ${JSON.stringify(stamp)}, "schema_name": "x${loneEscape}y", "operation_type": ${JSON.stringify(value)}}`,
      ),
    );
  checkProperty(hostileRecord, 2000);
});

test('property: hostile text lines', () => {
  checkProperty(fc.oneof(fc.string({ unit: 'binary' }), hostileString).map(lineFromText), 1000);
});

test('property: random bytes', () => {
  checkProperty(
    fc.uint8Array({ maxLength: 48 }).map((bytes) => Buffer.from(bytes.map((byte) => (byte === LINE_FEED ? 0x0b : byte)))),
    1000,
  );
});

test('property: reused buffer keeps names apart', () => {
  // The read buffers are refilled in place, so a name cached from one line must not follow its bytes.
  const shared = Buffer.alloc(1024);
  const scanner = new LineScanner(DEFAULT_OPTIONS);
  const sameLengthRecord = fc.record({
    name: fc.constantFrom('a.x', 'b.y', 'c.z'),
    type: fc.constantFrom('tool', 'rsrc', 'prmt'),
    version: fc.integer({ min: 1, max: 9 }),
  });
  fc.assert(
    fc.property(fc.array(sameLengthRecord, { minLength: 2, maxLength: 12 }), (records) => {
      for (const { name, type, version } of records) {
        const text = `{"timestamp": "${STAMP}", "schema_name": "${name}", "schema_version": ${version}, "operation_type": "${type}"}`;
        const length = shared.write(text, 0, 'utf8');
        shared[length] = LINE_FEED;
        scanner.scanLine(shared, 0, length);
        const fresh = scan(text);
        assert.equal(scanner.facts.schemaName, fresh.schemaName);
        assert.equal(scanner.facts.schemaVersion, fresh.schemaVersion);
        assert.equal(scanner.facts.operationType, fresh.operationType);
      }
    }),
    { numRuns: 300 },
  );
});
