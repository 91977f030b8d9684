/**
 * Turns records that a writer is to append into complete log lines.
 *
 * Each record must be one JSON object whose timestamp, when present, the cleanup
 * can read. The check uses the cleanup's own LineScanner, so every appended record
 * can expire. A record that lacks `record_id` or the timestamp field gets them
 * inserted right after its opening brace. Every other byte stays as given, because
 * fields are never reordered and values never re-encoded. A record that has both
 * fields is appended exactly as given, plus a line feed.
 */

import { randomUUID } from 'node:crypto';
import { isUtf8 } from 'node:buffer';

import { ErrorCode, RetentionError } from './errors.js';
import { LineKind, LineScanner } from './scanner.js';

const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const UTF8_BYTE_ORDER_MARK = Buffer.from([0xef, 0xbb, 0xbf]);

/** Timestamp settings of the log's records, the same that the cleanup reads them with. */
export interface RecordFormat {
  /** Name of the top-level member that contains the timestamp, `timestamp` in MXCP logs. */
  timestampField: string;
  /** Unit of numeric timestamps. */
  timestampUnit: 'ms' | 's';
}

/** A record to append: a JSON text (string or UTF-8 bytes) or a plain object that JSON.stringify can serialize. */
export type AuditRecordInput = string | Uint8Array | Readonly<Record<string, unknown>>;

/** Complete log lines, each ending with a line feed, ready for one write. */
export interface PreparedRecords {
  data: Buffer;
  count: number;
}

function invalid(message: string): RetentionError {
  return new RetentionError(ErrorCode.INVALID_INPUT, message);
}

function describeJsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** Formats a rejected timestamp value for a message; JSON.stringify would show a number too large for a double, such as 1e400, as null. */
function shownTimestamp(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    return 'a number too large to be a timestamp';
  }
  return JSON.stringify(value);
}

/** Returns true when `bytes` contains only JSON white space (space, tab, carriage return). */
function isBlank(bytes: Uint8Array): boolean {
  for (const byte of bytes) {
    if (byte !== 0x20 && byte !== 0x09 && byte !== CARRIAGE_RETURN) {
      return false;
    }
  }
  return true;
}

function withoutByteOrderMark(bytes: Buffer): Buffer {
  return bytes.subarray(0, 3).equals(UTF8_BYTE_ORDER_MARK) ? bytes.subarray(3) : bytes;
}

/**
 * Parses a body that must hold one JSON object and returns it. Throws INVALID_INPUT
 * for an empty body, invalid UTF-8, invalid JSON, an array or any other non-object.
 */
export function parseJsonDocument(body: Uint8Array): Record<string, unknown> {
  const bytes = withoutByteOrderMark(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  if (isBlank(bytes.filter((byte) => byte !== LINE_FEED))) {
    throw invalid('The request body is empty. Send one JSON object, or several as application/x-ndjson.');
  }
  if (!isUtf8(bytes)) {
    throw invalid('The request body is not valid UTF-8. Encode the record as UTF-8.');
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    const reason = error instanceof RangeError ? 'it is nested too deeply' : (error as Error).message;
    throw invalid(`The request body is not valid JSON: ${reason}.`);
  }
  if (Array.isArray(value)) {
    throw invalid('The request body is a JSON array; application/json takes one record. Send several records as application/x-ndjson, one object per line.');
  }
  if (typeof value !== 'object' || value === null) {
    throw invalid(`The request body is ${describeJsonType(value)}, not a JSON object; send one record as a JSON object.`);
  }
  return value as Record<string, unknown>;
}

/** Validates records and fills in missing `record_id` and timestamp fields. Not reentrant: it reuses one scanner. */
export class RecordPreparer {
  private readonly scanner: LineScanner;
  private readonly timestampKey: string;

  constructor(
    private readonly format: RecordFormat,
    private readonly now: () => number,
  ) {
    this.scanner = new LineScanner({ timestampField: format.timestampField, timestampUnit: format.timestampUnit, extractLabels: false });
    this.timestampKey = JSON.stringify(format.timestampField);
  }

  /**
   * Prepares an NDJSON body: one JSON object per line, LF or CRLF line endings,
   * blank lines ignored. Throws INVALID_INPUT naming the first bad line (1-based).
   */
  prepareNdjson(body: Uint8Array): PreparedRecords {
    const bytes = withoutByteOrderMark(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    const lines: Buffer[] = [];
    let start = 0;
    let lineNumber = 0;
    while (start < bytes.length) {
      lineNumber++;
      const lineFeed = bytes.indexOf(LINE_FEED, start);
      const end = lineFeed < 0 ? bytes.length : lineFeed;
      const line = bytes.subarray(start, end);
      start = end + 1;
      if (isBlank(line)) {
        continue;
      }
      lines.push(this.prepareLine(line, `Line ${lineNumber}`));
    }
    if (lines.length === 0) {
      throw invalid('The request body contains no record. Send one JSON object per line.');
    }
    return { data: Buffer.concat(lines), count: lines.length };
  }

  /**
   * Prepares one JSON object that may span several lines, as an `application/json`
   * body often does. Valid JSON has line breaks only between tokens, so removing
   * them leaves every value unchanged.
   */
  prepareJsonDocument(body: Uint8Array): PreparedRecords {
    const bytes = withoutByteOrderMark(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    parseJsonDocument(bytes);
    const singleLine = bytes.includes(LINE_FEED) || bytes.includes(CARRIAGE_RETURN)
      ? Buffer.from(bytes.filter((byte) => byte !== LINE_FEED && byte !== CARRIAGE_RETURN))
      : bytes;
    return { data: this.prepareLine(singleLine, 'The record'), count: 1 };
  }

  /** Prepares records given one by one. An object is serialized with JSON.stringify first. */
  prepareRecords(records: readonly AuditRecordInput[]): PreparedRecords {
    if (records.length === 0) {
      throw invalid('No record to append.');
    }
    const lines = records.map((record, index) => {
      const label = `Record ${index + 1}`;
      let bytes: Buffer;
      if (typeof record === 'string') {
        bytes = Buffer.from(record, 'utf8');
      } else if (record instanceof Uint8Array) {
        bytes = Buffer.from(record.buffer, record.byteOffset, record.byteLength);
      } else {
        bytes = Buffer.from(JSON.stringify(record), 'utf8');
      }
      if (bytes.includes(LINE_FEED)) {
        throw invalid(`${label} contains a line feed; pass one JSON text per record, without line breaks.`);
      }
      return this.prepareLine(bytes, label);
    });
    return { data: Buffer.concat(lines), count: lines.length };
  }

  /**
   * Checks one line (without its line feed) and returns it as a complete log line.
   * `label` starts each error message, such as "Line 3".
   */
  private prepareLine(raw: Buffer, label: string): Buffer {
    // A CRLF line ending belongs to the body's framing, not to the record.
    const text = raw.length > 0 && raw[raw.length - 1] === CARRIAGE_RETURN ? raw.subarray(0, -1) : raw;
    if (isBlank(text)) {
      throw invalid(`${label} is blank; each record must be one JSON object.`);
    }

    // The scanner needs the line feed after the line.
    const line = Buffer.allocUnsafe(text.length + 1);
    text.copy(line);
    line[text.length] = LINE_FEED;
    const kind = this.scanner.scanLine(line, 0, text.length);

    if (kind === LineKind.INVALID_UTF8) {
      throw invalid(`${label} is not valid UTF-8. Encode records as UTF-8.`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text.toString('utf8'));
    } catch (error) {
      const reason = error instanceof RangeError ? 'it is nested too deeply' : (error as Error).message;
      throw invalid(`${label} is not valid JSON: ${reason}.`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw invalid(`${label} is ${describeJsonType(value)}, not a JSON object; each record must be one JSON object.`);
    }
    if (kind !== LineKind.RECORD && kind !== LineKind.NO_TIMESTAMP) {
      // JSON.parse accepted what the cleanup's scanner rejects, so the cleanup would keep it forever as malformed.
      throw invalid(`${label} is not a JSON object that the cleanup can read.`);
    }

    const record = value as Record<string, unknown>;
    const field = this.format.timestampField;
    const hasTimestamp = Object.hasOwn(record, field);
    if (hasTimestamp && kind === LineKind.NO_TIMESTAMP) {
      throw invalid(
        `${label} has ${field} ${shownTimestamp(record[field])}, which is not a timestamp: use an ISO 8601 date-time ` +
          `such as 2026-12-04T12:00:00Z or a number of epoch ${this.format.timestampUnit === 's' ? 'seconds' : 'milliseconds'}, ` +
          `or leave ${field} out to have the current time filled in.`,
      );
    }
    const hasRecordId = Object.hasOwn(record, 'record_id');
    if (hasRecordId && hasTimestamp) {
      return line;
    }
    return this.insertMissingFields(text, hasRecordId, hasTimestamp);
  }

  /** Inserts the missing fields right after the opening brace, so every other byte keeps its place. */
  private insertMissingFields(text: Buffer, hasRecordId: boolean, hasTimestamp: boolean): Buffer {
    const members: string[] = [];
    if (!hasRecordId) {
      members.push(`"record_id": "${randomUUID()}"`);
    }
    if (!hasTimestamp) {
      members.push(`${this.timestampKey}: "${new Date(this.now()).toISOString()}"`);
    }

    const brace = text.indexOf(OPEN_BRACE);
    let next = brace + 1;
    while (next < text.length && (text[next] === 0x20 || text[next] === 0x09 || text[next] === CARRIAGE_RETURN)) {
      next++;
    }
    const emptyObject = text[next] === CLOSE_BRACE;
    const inserted = Buffer.from(members.join(', ') + (emptyObject ? '' : ', '), 'utf8');
    return Buffer.concat([text.subarray(0, brace + 1), inserted, text.subarray(brace + 1), Buffer.from([LINE_FEED])]);
  }
}
