/**
 * Record filters of an export: the time window (`since`, `until`) and equality on
 * record fields. Parsing happens here, in Node, so that an invalid value is a 400
 * that names it. The values reach DuckDB only as bound parameters (see sql.ts).
 */

import { ErrorCode, RetentionError } from '../errors.js';
import { daysFromCivil } from '../timestamp.js';

const MICROS_PER_MS = 1000n;
const MICROS_PER_SECOND = 1_000_000n;
const MICROS_PER_DAY = 86_400n * MICROS_PER_SECOND;

/** Units of a relative `since` such as `30d`, in microseconds. */
const DURATION_UNITS: Record<string, bigint> = {
  d: MICROS_PER_DAY,
  h: 3600n * MICROS_PER_SECOND,
  m: 60n * MICROS_PER_SECOND,
  s: MICROS_PER_SECOND,
};

/**
 * An ISO 8601 instant: a date, optionally a time (`T`, `t` or a space before it, seconds
 * optional, 0 to 9 fraction digits after `.` or `,`), and `Z`, `z`, `±HH:MM`, `±HHMM`
 * or no zone (UTC). These are the forms the scanner accepts in logs, plus a bare date
 * and a time without seconds for convenience on the command line.
 */
const ISO_INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Field filters, by the record field each one compares with. */
export const FIELD_FILTERS = {
  schemaName: 'schema_name',
  operationType: 'operation_type',
  operationName: 'operation_name',
  operationStatus: 'operation_status',
  policyDecision: 'policy_decision',
  userId: 'user_id',
} as const;

export type FieldFilterName = keyof typeof FIELD_FILTERS;

/** Parsed filters. Instants are epoch microseconds, UTC. */
export interface RecordFilters {
  /** Inclusive lower bound of the record's instant. */
  sinceMicros?: bigint | undefined;
  /** Exclusive upper bound of the record's instant. */
  untilMicros?: bigint | undefined;
  /** Exact values of record fields; a record passes when each named field equals its value. */
  fields?: Partial<Record<FieldFilterName, string>> | undefined;
}

/** Filters as a request or the command line gives them, before parsing. */
export interface FilterInput {
  since?: string | undefined;
  until?: string | undefined;
  schema?: string | undefined;
  operationType?: string | undefined;
  operationName?: string | undefined;
  status?: string | undefined;
  policy?: string | undefined;
  userId?: string | undefined;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** Parses an ISO 8601 instant into epoch µs, truncating digits below the microsecond; returns null when invalid. */
export function parseInstantMicros(text: string): bigint | null {
  const match = ISO_INSTANT.exec(text);
  if (match === null) {
    return null;
  }
  const [, yearText, monthText, dayText, hourText, minuteText, secondText, fraction, zulu, sign, offsetHourText, offsetMinuteText] = match;
  const year = Number(yearText);
  const month = Number(monthText);
  const day = Number(dayText);
  const hour = Number(hourText ?? 0);
  const minute = Number(minuteText ?? 0);
  const second = Number(secondText ?? 0);
  const monthLength = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1];
  if (monthLength === undefined || day < 1 || day > monthLength || hour > 23 || minute > 59 || second > 59) {
    return null;
  }

  let offsetMinutes = 0;
  if (zulu === undefined && sign !== undefined) {
    const offsetHour = Number(offsetHourText);
    const offsetMinute = Number(offsetMinuteText);
    if (offsetHour > 23 || offsetMinute > 59) {
      return null;
    }
    offsetMinutes = (offsetHour * 60 + offsetMinute) * (sign === '-' ? -1 : 1);
  }

  const micros = BigInt((fraction ?? '').slice(0, 6).padEnd(6, '0'));
  const wallMicros =
    BigInt(daysFromCivil(year, month, day)) * MICROS_PER_DAY +
    BigInt(hour * 3600 + minute * 60 + second) * MICROS_PER_SECOND +
    micros;
  return wallMicros - BigInt(offsetMinutes) * 60n * MICROS_PER_SECOND;
}

/** Formats epoch µs as `2026-01-01T04:30:00.123456Z`, the form of the export's `timestamp` column. */
export function formatInstantMicros(micros: bigint): string {
  const milliseconds = micros / MICROS_PER_MS - (micros % MICROS_PER_MS < 0n ? 1n : 0n);
  const subMillisecond = micros - milliseconds * MICROS_PER_MS;
  const iso = new Date(Number(milliseconds)).toISOString();
  return `${iso.slice(0, -1)}${subMillisecond.toString().padStart(3, '0')}Z`;
}

function invalidFilter(name: string, value: string, expected: string): RetentionError {
  return new RetentionError(ErrorCode.INVALID_INPUT, `Invalid ${name} ${JSON.stringify(value)}: ${expected}`);
}

/**
 * Parses `since`: a duration before `nowMs` (`30d`, `2h`, `10m`, `45s`) or an ISO instant.
 * Throws INVALID_INPUT naming the value.
 */
export function parseSince(text: string, nowMs: number): bigint {
  const duration = /^(\d{1,9})([dhms])$/.exec(text);
  if (duration !== null) {
    return BigInt(nowMs) * MICROS_PER_MS - BigInt(duration[1]!) * DURATION_UNITS[duration[2]!]!;
  }
  const instant = parseInstantMicros(text);
  if (instant === null) {
    throw invalidFilter(
      'since',
      text,
      'use a duration before now such as 30d, 2h, 10m or 45s, or an ISO 8601 instant such as 2026-11-01T00:00:00Z.',
    );
  }
  return instant;
}

/** Parses `until`, an ISO instant. Throws INVALID_INPUT naming the value. */
export function parseUntil(text: string): bigint {
  const instant = parseInstantMicros(text);
  if (instant === null) {
    throw invalidFilter('until', text, 'use an ISO 8601 instant such as 2026-12-01T00:00:00Z.');
  }
  return instant;
}

/** Parses every filter of a request; throws INVALID_INPUT for the first invalid value. */
export function parseFilters(input: FilterInput, nowMs: number): RecordFilters {
  const sinceMicros = input.since === undefined ? undefined : parseSince(input.since, nowMs);
  const untilMicros = input.until === undefined ? undefined : parseUntil(input.until);
  if (sinceMicros !== undefined && untilMicros !== undefined && sinceMicros >= untilMicros) {
    throw new RetentionError(
      ErrorCode.INVALID_INPUT,
      `Invalid time window: since ${JSON.stringify(input.since)} (${formatInstantMicros(sinceMicros)}) is not before until ${JSON.stringify(input.until)} (${formatInstantMicros(untilMicros)}). Give a since earlier than until.`,
    );
  }

  const fields: Partial<Record<FieldFilterName, string>> = {};
  const requested: [FieldFilterName, string | undefined][] = [
    ['schemaName', input.schema],
    ['operationType', input.operationType],
    ['operationName', input.operationName],
    ['operationStatus', input.status],
    ['policyDecision', input.policy],
    ['userId', input.userId],
  ];
  for (const [name, value] of requested) {
    if (value !== undefined) {
      fields[name] = value;
    }
  }
  return { sinceMicros, untilMicros, fields };
}
