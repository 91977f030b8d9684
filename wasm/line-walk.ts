/**
 * The grammar walk of one log line, compiled to WebAssembly by AssemblyScript.
 *
 * It does what `walkRecord` in src/core/scanner.ts does for a line that starts with
 * `{`: checks the JSON grammar and records where the top-level members of interest
 * lie. Strings are searched 16 bytes at a time with SIMD, which the JavaScript walk
 * cannot do, and no load has a bounds check. The JavaScript side keeps everything
 * else: UTF-8 checks, timestamp parsing, escaped keys, nesting beyond the recursion
 * limit, and lines in memory this module cannot see.
 *
 * Memory is imported and shared between threads. Its first 64 KiB are reserved:
 * each instance owns one 1 KiB slot there (chosen by the JavaScript side) that contains
 * the member keys to match and the results of the last walk. Read buffers start
 * after the reserved area.
 *
 * Contract of `walkRecord(line)`: the line's byte at `line` is `{` and its last byte
 * is followed by a line feed. Every loop stops at a byte below 0x20, so the walk reads
 * at most the 16 bytes of one SIMD load past that line feed. The JavaScript side
 * leaves that much memory after each buffer.
 */

// Slot layout, in bytes from the slot's start.
/** Per member: type (i32), first byte, end (i32 each), escape flag (i32). */
const RESULTS: usize = 0;
const RESULT_BYTES: usize = 16;
/** The timestamp member's string parsed as ISO 8601 (f64 epoch ms, NaN when it is not one), as parseIsoBytes does. */
const TIMESTAMP_MS: usize = 112;
/** Per key length 0 to 63: a bit mask of the members whose key has that length. */
const LENGTH_MASKS: usize = 128;
/** Per member: the key's bytes, at most MAX_KEY_BYTES, in a field of MAX_KEY_BYTES + 1. */
const KEY_BYTES: usize = 256;
const MAX_KEY_BYTES: usize = 63;

/** Members of interest are 1 to MEMBER_COUNT - 1; 0 is any other member. */
const MEMBER_COUNT = 7;
/** The member whose string value is parsed as a timestamp. */
const MEMBER_TIMESTAMP = 1;

// Value types, as in scanner.ts.
const VALUE_ABSENT = 0;
const VALUE_STRING = 1;
const VALUE_NUMBER = 2;
const VALUE_OTHER = 3;

// Results of walkRecord besides the index after the object.
const INVALID: isize = -1;
/** Nested deeper than MAX_DEPTH: the JavaScript iterative walk takes over. */
const TOO_DEEP: isize = -2;
/** A top-level key has an escape: the JavaScript walk decodes it and takes over. */
const ESCAPED_KEY: isize = -3;

/** Nesting depth up to which this recursive walk runs; far below the engine's call stack limit. */
const MAX_DEPTH = 512;

const QUOTE: u32 = 0x22;
const BACKSLASH: u32 = 0x5c;

/** Address of this instance's slot; set once by `bind`. */
let slot: usize = 0;
/** Set by skipString when the string it skipped contains an escape. */
let stringEscaped: i32 = 0;

/** Binds this instance to the slot at `address`; the JavaScript side fills in the keys. */
export function bind(address: usize): void {
  slot = address;
}

@inline function isSpace(byte: u32): bool {
  return byte == 0x20 || byte == 0x09 || byte == 0x0d;
}

@inline function isDigit(byte: u32): bool {
  return byte - 0x30 < 10;
}

@inline function isHex(byte: u32): bool {
  return byte - 0x30 < 10 || (byte | 0x20) - 0x61 < 6;
}

@inline function skipSpaces(index: usize): usize {
  while (isSpace(load<u8>(index))) index++;
  return index;
}

/** Skips the string whose opening quote is at `index`; returns its closing quote's index, or 0 when it is invalid. */
function skipString(index: usize): usize {
  const quotes = i8x16.splat(0x22);
  const backslashes = i8x16.splat(0x5c);
  const controls = i8x16.splat(0x20);
  index++;
  while (true) {
    const block = v128.load(index);
    const stops = v128.or(v128.or(i8x16.eq(block, quotes), i8x16.eq(block, backslashes)), i8x16.lt_u(block, controls));
    const mask = i8x16.bitmask(stops);
    if (mask == 0) {
      index += 16;
      continue;
    }
    index += <usize>ctz(mask);

    const byte = <u32>load<u8>(index);
    if (byte == QUOTE) {
      return index;
    }
    if (byte != BACKSLASH) {
      // A control byte, including the line feed: the string is invalid or unterminated.
      return 0;
    }
    stringEscaped = 1;
    const escape = <u32>load<u8>(index + 1);
    if (escape == 0x22 || escape == 0x5c || escape == 0x2f || escape == 0x62 || escape == 0x66 || escape == 0x6e || escape == 0x72 || escape == 0x74) {
      index += 2;
    } else if (escape == 0x75 && isHex(load<u8>(index + 2)) && isHex(load<u8>(index + 3)) && isHex(load<u8>(index + 4)) && isHex(load<u8>(index + 5))) {
      index += 6;
    } else {
      return 0;
    }
  }
}

/** Skips a JSON number; returns the index after it, or INVALID. */
function skipNumber(index: usize): isize {
  if (load<u8>(index) == 0x2d) index++;
  let byte = <u32>load<u8>(index);
  if (byte == 0x30) {
    index++;
  } else if (isDigit(byte)) {
    do index++; while (isDigit(load<u8>(index)));
  } else {
    return INVALID;
  }

  if (load<u8>(index) == 0x2e) {
    index++;
    if (!isDigit(load<u8>(index))) return INVALID;
    do index++; while (isDigit(load<u8>(index)));
  }

  byte = <u32>load<u8>(index);
  if (byte == 0x65 || byte == 0x45) {
    index++;
    byte = <u32>load<u8>(index);
    if (byte == 0x2b || byte == 0x2d) index++;
    if (!isDigit(load<u8>(index))) return INVALID;
    do index++; while (isDigit(load<u8>(index)));
  }
  return <isize>index;
}

/** Skips one value at nesting `depth`; returns the index after it, INVALID or TOO_DEEP. */
function skipValue(index: usize, depth: i32): isize {
  const byte = <u32>load<u8>(index);
  if (byte == QUOTE) {
    const closingQuote = skipString(index);
    return closingQuote == 0 ? INVALID : <isize>(closingQuote + 1);
  }
  if (byte == 0x7b) return skipObject(index, depth + 1);
  if (byte == 0x5b) return skipArray(index, depth + 1);
  // Literals compared as little-endian words: "null", "true", "fals" followed by "e".
  if (byte == 0x6e) return load<u32>(index) == 0x6c6c756e ? <isize>(index + 4) : INVALID;
  if (byte == 0x74) return load<u32>(index) == 0x65757274 ? <isize>(index + 4) : INVALID;
  if (byte == 0x66) return load<u32>(index) == 0x736c6166 && load<u8>(index + 4) == 0x65 ? <isize>(index + 5) : INVALID;
  return skipNumber(index);
}

function skipObject(index: usize, depth: i32): isize {
  if (depth > MAX_DEPTH) return TOO_DEEP;
  index = skipSpaces(index + 1);
  if (load<u8>(index) == 0x7d) return <isize>(index + 1);

  while (true) {
    if (load<u8>(index) != QUOTE) return INVALID;
    const closingQuote = skipString(index);
    if (closingQuote == 0) return INVALID;
    index = skipSpaces(closingQuote + 1);
    if (load<u8>(index) != 0x3a) return INVALID;
    const after = skipValue(skipSpaces(index + 1), depth);
    if (after < 0) return after;

    index = skipSpaces(<usize>after);
    const byte = <u32>load<u8>(index);
    if (byte != 0x2c) return byte == 0x7d ? <isize>(index + 1) : INVALID;
    index = skipSpaces(index + 1);
  }
}

function skipArray(index: usize, depth: i32): isize {
  if (depth > MAX_DEPTH) return TOO_DEEP;
  index = skipSpaces(index + 1);
  if (load<u8>(index) == 0x5d) return <isize>(index + 1);

  while (true) {
    const after = skipValue(index, depth);
    if (after < 0) return after;

    index = skipSpaces(<usize>after);
    const byte = <u32>load<u8>(index);
    if (byte != 0x2c) return byte == 0x5d ? <isize>(index + 1) : INVALID;
    index = skipSpaces(index + 1);
  }
}

/** Returns the member whose key is the unescaped bytes `[start, end)`, or 0. */
function matchMember(start: usize, end: usize): i32 {
  const length = end - start;
  if (length > MAX_KEY_BYTES) return 0;
  // One load rejects nearly every key: few keys share a length with a member of interest.
  let candidates = <u32>load<u8>(slot + LENGTH_MASKS + length);
  while (candidates != 0) {
    const member = <i32>ctz(candidates);
    candidates &= candidates - 1;
    if (memory.compare(slot + KEY_BYTES + <usize>member * (MAX_KEY_BYTES + 1), start, length) == 0) {
      return member;
    }
  }
  return 0;
}

// ISO 8601 timestamps, as parseIsoBytes in src/core/timestamp.ts: the same accepted
// forms, range checks and flooring to the millisecond. The scanner tests hold both
// to the same reference on every line.

const MS_PER_DAY: f64 = 86_400_000;

/** Returns the decimal value of the two digits at `index`, or -1. */
@inline function twoDigits(index: usize): i32 {
  const high = <u32>load<u8>(index) - 0x30;
  const low = <u32>load<u8>(index + 1) - 0x30;
  return high < 10 && low < 10 ? <i32>(high * 10 + low) : -1;
}

@inline function isLeapYear(year: i32): bool {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/** Returns the days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(year: i32, month: i32, day: i32): f64 {
  const shiftedYear = month <= 2 ? year - 1 : year;
  // Floored division: shiftedYear is -1 for January and February of year 0.
  const era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400;
  const yearOfEra = shiftedYear - era * 400;
  const dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear;
  return <f64>era * 146_097 + <f64>dayOfEra - 719_468;
}

/** Returns the number of days in `month` (1 to 12) of `year`. */
@inline function daysInMonth(month: i32, year: i32): i32 {
  if (month == 2) return isLeapYear(year) ? 29 : 28;
  return month == 4 || month == 6 || month == 9 || month == 11 ? 30 : 31;
}

/** Parses the ISO 8601 date-time in `[start, end)` and returns epoch ms, floored, or NaN. */
function parseIso(start: usize, end: usize): f64 {
  // Shortest form: YYYY-MM-DDTHH:MM:SS is 19 bytes.
  if (end - start < 19) return NaN;

  const century = twoDigits(start);
  const yearInCentury = twoDigits(start + 2);
  const month = twoDigits(start + 5);
  const day = twoDigits(start + 8);
  const hour = twoDigits(start + 11);
  const minute = twoDigits(start + 14);
  const second = twoDigits(start + 17);
  const separator = <u32>load<u8>(start + 10);
  if (load<u8>(start + 4) != 0x2d || load<u8>(start + 7) != 0x2d || (separator != 0x54 && separator != 0x20) || load<u8>(start + 13) != 0x3a || load<u8>(start + 16) != 0x3a) {
    return NaN;
  }
  if (century < 0 || yearInCentury < 0) return NaN;
  const year = century * 100 + yearInCentury;
  if (month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) {
    return NaN;
  }
  if (day > daysInMonth(month, year)) return NaN;

  let index = start + 19;
  let fractionMs = 0;
  if (index < end && (load<u8>(index) == 0x2e || load<u8>(index) == 0x2c)) {
    index++;
    const fractionStart = index;
    while (index < end && <u32>load<u8>(index) - 0x30 < 10) index++;
    const fractionDigits = <i32>(index - fractionStart);
    if (fractionDigits < 1 || fractionDigits > 9) return NaN;
    // Milliseconds are the first three digits; later digits only refine within the millisecond.
    for (let position = 0; position < 3; position++) {
      fractionMs = fractionMs * 10 + (position < fractionDigits ? <i32>load<u8>(fractionStart + <usize>position) - 0x30 : 0);
    }
  }

  let offsetMinutes = 0;
  if (index < end) {
    const zone = <u32>load<u8>(index);
    if (zone == 0x5a || zone == 0x7a) {
      index++;
    } else if (zone == 0x2b || zone == 0x2d) {
      const offsetHour = twoDigits(index + 1);
      let minuteIndex = index + 3;
      if (load<u8>(minuteIndex) == 0x3a) minuteIndex++;
      if (minuteIndex + 2 > end) return NaN;
      const offsetMinute = twoDigits(minuteIndex);
      if (offsetHour < 0 || offsetHour > 23 || offsetMinute < 0 || offsetMinute > 59) return NaN;
      offsetMinutes = (offsetHour * 60 + offsetMinute) * (zone == 0x2d ? -1 : 1);
      index = minuteIndex + 2;
    } else {
      return NaN;
    }
  }
  if (index != end) return NaN;

  const localMs = daysFromCivil(year, month, day) * MS_PER_DAY + <f64>(hour * 3_600_000 + minute * 60_000 + second * 1000 + fractionMs);
  return localMs - <f64>offsetMinutes * 60_000;
}

/** Walks the value of a member of interest and records its type and position. */
function readMember(index: usize, member: i32): isize {
  const result = slot + RESULTS + <usize>member * RESULT_BYTES;
  const byte = <u32>load<u8>(index);
  if (byte == QUOTE) {
    stringEscaped = 0;
    const closingQuote = skipString(index);
    if (closingQuote == 0) return INVALID;
    store<i32>(result, VALUE_STRING);
    store<i32>(result, <i32>(index + 1), 4);
    store<i32>(result, <i32>closingQuote, 8);
    store<i32>(result, stringEscaped, 12);
    if (member == MEMBER_TIMESTAMP && stringEscaped == 0) {
      store<f64>(slot + TIMESTAMP_MS, parseIso(index + 1, closingQuote));
    }
    return <isize>(closingQuote + 1);
  }
  if (byte == 0x2d || isDigit(byte)) {
    const after = skipNumber(index);
    if (after >= 0) {
      store<i32>(result, VALUE_NUMBER);
      store<i32>(result, <i32>index, 4);
      store<i32>(result, <i32>after, 8);
    }
    return after;
  }
  store<i32>(result, VALUE_OTHER);
  return skipValue(index, 1);
}

/**
 * Walks the object whose `{` is at `index` and records the members of interest in
 * this instance's slot. Returns the index after its closing brace, INVALID, TOO_DEEP
 * or ESCAPED_KEY.
 */
export function walkRecord(index: usize): isize {
  for (let member = 0; member < MEMBER_COUNT; member++) {
    store<i32>(slot + RESULTS + <usize>member * RESULT_BYTES, VALUE_ABSENT);
  }
  index = skipSpaces(index + 1);
  if (load<u8>(index) == 0x7d) return <isize>(index + 1);

  while (true) {
    if (load<u8>(index) != QUOTE) return INVALID;
    stringEscaped = 0;
    const closingQuote = skipString(index);
    if (closingQuote == 0) return INVALID;
    if (stringEscaped != 0) return ESCAPED_KEY;
    const member = matchMember(index + 1, closingQuote);

    index = skipSpaces(closingQuote + 1);
    if (load<u8>(index) != 0x3a) return INVALID;
    index = skipSpaces(index + 1);
    const after = member == 0 ? skipValue(index, 1) : readMember(index, member);
    if (after < 0) return after;

    index = skipSpaces(<usize>after);
    const byte = <u32>load<u8>(index);
    if (byte != 0x2c) return byte == 0x7d ? <isize>(index + 1) : INVALID;
    index = skipSpaces(index + 1);
  }
}
