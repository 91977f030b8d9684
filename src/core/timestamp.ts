/**
 * Timestamp parsing to epoch milliseconds, straight from the bytes of a log line.
 *
 * Retention compares a record's instant with a cutoff that is a whole millisecond
 * (`now - retentionDays * 86400 s`, with `now` taken from a Date). For a whole
 * cutoff C and any instant t, `t < C` holds exactly when `floor(t) < C`, so the
 * parsers return the instant floored to the millisecond and drop finer digits.
 * They return NaN for text that is not a timestamp; the caller keeps such lines.
 */

/** Largest distance from the epoch that a JavaScript Date can hold, in ms (ECMA-262 TimeClip). */
const MAX_DATE_MS = 8.64e15;

const MS_PER_DAY = 86_400_000;

/** Largest exponent magnitude that parseEpochBytes keeps. It exceeds by far the digit count of any line that fits in memory. */
const MAX_EXPONENT = 1e15;

const CHAR_0 = 0x30;
const CHAR_9 = 0x39;

function digitAt(bytes: Uint8Array, index: number): number {
  const value = bytes[index]! - CHAR_0;
  return value >= 0 && value <= 9 ? value : -1;
}

function twoDigits(bytes: Uint8Array, index: number): number {
  const high = digitAt(bytes, index);
  const low = digitAt(bytes, index + 1);
  return high < 0 || low < 0 ? -1 : high * 10 + low;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's days_from_civil). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const shiftedYear = month <= 2 ? year - 1 : year;
  const era = Math.floor(shiftedYear / 400);
  const yearOfEra = shiftedYear - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/**
 * Parses an ISO 8601 date-time in `bytes[start, end)` and returns epoch ms, floored.
 *
 * Accepted: `YYYY-MM-DD`, then `T`, `t` or a space, then `HH:MM:SS`, then optionally
 * `.` or `,` with 1 to 9 digits, then `Z`, `z`, `+HH:MM`, `+HHMM`, `-HH:MM`, `-HHMM`
 * or nothing (UTC). Calendar fields are range-checked, so `2026-02-30` and `24:00:00`
 * are rejected; a leap second (`:60`) is rejected too.
 */
export function parseIsoBytes(bytes: Uint8Array, start: number, end: number): number {
  // Shortest form: YYYY-MM-DDTHH:MM:SS is 19 bytes.
  if (end - start < 19) {
    return NaN;
  }

  const year = twoDigits(bytes, start) * 100 + twoDigits(bytes, start + 2);
  const month = twoDigits(bytes, start + 5);
  const day = twoDigits(bytes, start + 8);
  const hour = twoDigits(bytes, start + 11);
  const minute = twoDigits(bytes, start + 14);
  const second = twoDigits(bytes, start + 17);
  const separator = bytes[start + 10];

  if (
    bytes[start + 4] !== 0x2d || bytes[start + 7] !== 0x2d ||
    // Only `T` or a space: the documented forms leave out the lowercase `t` that RFC 3339 also allows.
    (separator !== 0x54 && separator !== 0x20) ||
    bytes[start + 13] !== 0x3a || bytes[start + 16] !== 0x3a
  ) {
    return NaN;
  }
  if (twoDigits(bytes, start) < 0 || twoDigits(bytes, start + 2) < 0) {
    return NaN;
  }
  if (month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) {
    return NaN;
  }
  const monthLength = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1]!;
  if (day > monthLength) {
    return NaN;
  }

  let index = start + 19;

  let fractionMs = 0;
  if (index < end && (bytes[index] === 0x2e || bytes[index] === 0x2c)) {
    index++;
    const fractionStart = index;
    while (index < end && digitAt(bytes, index) >= 0) {
      index++;
    }
    const fractionDigits = index - fractionStart;
    if (fractionDigits < 1 || fractionDigits > 9) {
      return NaN;
    }
    // Milliseconds are the first three digits; later digits only refine within the millisecond.
    for (let position = 0; position < 3; position++) {
      fractionMs = fractionMs * 10 + (position < fractionDigits ? digitAt(bytes, fractionStart + position) : 0);
    }
  }

  let offsetMinutes = 0;
  if (index < end) {
    const zone = bytes[index];
    if (zone === 0x5a || zone === 0x7a) {
      index++;
    } else if (zone === 0x2b || zone === 0x2d) {
      const offsetHour = twoDigits(bytes, index + 1);
      let minuteIndex = index + 3;
      if (bytes[minuteIndex] === 0x3a) {
        minuteIndex++;
      }
      if (minuteIndex + 2 > end) {
        return NaN;
      }
      const offsetMinute = twoDigits(bytes, minuteIndex);
      if (offsetHour < 0 || offsetHour > 23 || offsetMinute < 0 || offsetMinute > 59) {
        return NaN;
      }
      offsetMinutes = (offsetHour * 60 + offsetMinute) * (zone === 0x2d ? -1 : 1);
      index = minuteIndex + 2;
    } else {
      return NaN;
    }
  }
  if (index !== end) {
    return NaN;
  }

  const localMs =
    daysFromCivil(year, month, day) * MS_PER_DAY + hour * 3_600_000 + minute * 60_000 + second * 1000 + fractionMs;
  return localMs - offsetMinutes * 60_000;
}

/**
 * Parses a JSON number token in `bytes[start, end)` as epoch time and returns ms, floored.
 * `unitDigits` is 0 for milliseconds and 3 for seconds. The decimal text is shifted
 * exactly, so `1700000000.9999` seconds never rounds up into the next millisecond.
 */
export function parseEpochBytes(bytes: Uint8Array, start: number, end: number, unitDigits: number): number {
  let index = start;
  const negative = bytes[index] === 0x2d;
  if (negative) {
    index++;
  }

  // Collect the significant digits and the position of the decimal point.
  let digits = '';
  let pointPosition = -1;
  for (; index < end; index++) {
    const byte = bytes[index]!;
    if (byte >= CHAR_0 && byte <= CHAR_9) {
      digits += String.fromCharCode(byte);
    } else if (byte === 0x2e && pointPosition < 0) {
      pointPosition = digits.length;
    } else {
      break;
    }
  }
  if (pointPosition < 0) {
    pointPosition = digits.length;
  }

  let exponent = 0;
  if (index < end && (bytes[index] === 0x65 || bytes[index] === 0x45)) {
    index++;
    const exponentNegative = bytes[index] === 0x2d;
    if (exponentNegative || bytes[index] === 0x2b) {
      index++;
    }
    const exponentStart = index;
    for (; index < end; index++) {
      const digit = digitAt(bytes, index);
      if (digit < 0) {
        break;
      }
      // Saturate so that an exponent of hundreds of digits stays finite. No result changes, because
      // beyond MAX_EXPONENT every value floors to 0 or -1 or lies outside the Date range.
      exponent = Math.min(exponent * 10 + digit, MAX_EXPONENT);
    }
    if (index === exponentStart) {
      return NaN;
    }
    if (exponentNegative) {
      exponent = -exponent;
    }
  }
  if (index !== end || digits.length === 0) {
    return NaN;
  }

  return floorShiftedDecimal(digits, pointPosition + exponent + unitDigits, negative);
}

/**
 * Returns floor(±0.DIGITS × 10^pointPosition) for a digit string, or NaN beyond the Date range.
 * Only the integer part is converted to a Number, and it is exact below 2^53.
 */
function floorShiftedDecimal(digits: string, pointPosition: number, negative: boolean): number {
  if (pointPosition > 30) {
    // Far beyond the Date range unless every leading digit is zero; trim them and retry.
    const trimmed = digits.replace(/^0+/, '');
    const removed = digits.length - trimmed.length;
    if (trimmed.length === 0) {
      return 0;
    }
    if (pointPosition - removed > 30) {
      return NaN;
    }
    return floorShiftedDecimal(trimmed, pointPosition - removed, negative);
  }

  let integerText: string;
  let fractionText: string;
  if (pointPosition <= 0) {
    integerText = '0';
    fractionText = digits;
  } else if (pointPosition >= digits.length) {
    integerText = digits + '0'.repeat(pointPosition - digits.length);
    fractionText = '';
  } else {
    integerText = digits.slice(0, pointPosition);
    fractionText = digits.slice(pointPosition);
  }

  const magnitude = Number(integerText);
  const hasFraction = /[1-9]/.test(fractionText);
  const value = negative ? -magnitude - (hasFraction ? 1 : 0) : magnitude;
  if (!Number.isFinite(value) || Math.abs(value) > MAX_DATE_MS) {
    return NaN;
  }
  return value === 0 ? 0 : value;
}

/** Parses an ISO timestamp held in a JavaScript string; see parseIsoBytes. */
export function parseIsoString(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  return parseIsoBytes(bytes, 0, bytes.length);
}

/**
 * Formats epoch ms as ISO 8601 UTC with milliseconds. Returns null for NaN and for
 * instants outside the Date range, such as the cutoff of a retention of a billion days.
 */
export function formatInstant(epochMs: number): string | null {
  return Number.isFinite(epochMs) && Math.abs(epochMs) <= MAX_DATE_MS ? new Date(epochMs).toISOString() : null;
}
