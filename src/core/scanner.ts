/**
 * A validating JSON scanner for one log line, working on bytes.
 *
 * It checks the line against the JSON grammar (RFC 8259) and UTF-8 without building
 * objects, and picks out the top-level members that retention and stats need. Its
 * verdict matches `JSON.parse` on the decoded line; a property test holds it to that.
 * Object keys and string values with escapes are decoded through `JSON.parse` of
 * that one token, so the scanner never guesses at escape semantics.
 *
 * Contract of `scanLine(bytes, start, end)`: `bytes[end]` is the line feed that ends
 * the line. The scanner relies on it as a sentinel: every loop stops at a byte below
 * 0x20 or outside its token, so no loop needs a bounds check.
 */

import { isUtf8 } from 'node:buffer';

import { parseEpochBytes, parseIsoBytes } from './timestamp.js';

/** What a line is, as far as retention is concerned. */
export const LineKind = {
  /** A JSON object with a readable timestamp. */
  RECORD: 0,
  /** Empty, or only spaces, tabs and carriage returns. Kept, not counted as malformed. */
  BLANK: 1,
  /** Not valid JSON. */
  NOT_JSON: 2,
  /** Valid JSON, but not an object. */
  NOT_OBJECT: 3,
  /** A JSON object whose timestamp field is missing or unreadable. */
  NO_TIMESTAMP: 4,
  /** Not valid UTF-8. */
  INVALID_UTF8: 5,
} as const;

export type LineKind = (typeof LineKind)[keyof typeof LineKind];

/** The names under which malformed kinds appear in reports. */
export const MALFORMED_KIND_NAMES: Record<number, string> = {
  [LineKind.NOT_JSON]: 'not_json',
  [LineKind.NOT_OBJECT]: 'not_object',
  [LineKind.NO_TIMESTAMP]: 'no_timestamp',
  [LineKind.INVALID_UTF8]: 'invalid_utf8',
};

/** Schema version of a record whose `schema_version` is missing, null or not a whole number (MXCP's default). */
export const DEFAULT_SCHEMA_VERSION = 1;

export interface ScannerOptions {
  /** Name of the top-level member that holds the timestamp. */
  timestampField: string;
  /** Unit of numeric timestamps. */
  timestampUnit: 'ms' | 's';
}

/** Facts about the last scanned line. Fields other than `kind` are valid only for RECORD. */
export interface LineFacts {
  kind: LineKind;
  /** The record's instant in epoch ms, floored. */
  timestampMs: number;
  /** `schema_name` when it is a non-empty string, else null. */
  schemaName: string | null;
  schemaVersion: number;
  operationType: string | null;
  operationStatus: string | null;
  policyDecision: string | null;
}

// Byte classes.
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SPACE = 0x20;
const TAB = 0x09;
const CARRIAGE_RETURN = 0x0d;

/** Nonzero for bytes that end the fast path inside a string: quote, backslash, control bytes and non-ASCII. */
const STRING_STOP = new Uint8Array(256);
for (let byte = 0; byte < 0x20; byte++) STRING_STOP[byte] = 1;
for (let byte = 0x80; byte < 0x100; byte++) STRING_STOP[byte] = 1;
STRING_STOP[QUOTE] = 1;
STRING_STOP[BACKSLASH] = 1;

const IS_HEX = new Uint8Array(256);
for (const character of '0123456789abcdefABCDEF') IS_HEX[character.charCodeAt(0)] = 1;

/** Escape letters allowed after a backslash, except `u`. */
const IS_SIMPLE_ESCAPE = new Uint8Array(256);
for (const character of '"\\/bfnrt') IS_SIMPLE_ESCAPE[character.charCodeAt(0)] = 1;

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

// Which top-level member a key names.
const MEMBER_OTHER = 0;
const MEMBER_TIMESTAMP = 1;
const MEMBER_SCHEMA_NAME = 2;
const MEMBER_SCHEMA_VERSION = 3;
const MEMBER_OPERATION_TYPE = 4;
const MEMBER_OPERATION_STATUS = 5;
const MEMBER_POLICY_DECISION = 6;
const MEMBER_COUNT = 7;

// Value types recorded for the members of interest.
const VALUE_ABSENT = 0;
const VALUE_STRING = 1;
const VALUE_NUMBER = 2;
const VALUE_OTHER = 3;

/** Parser states of the iterative grammar walk. */
const EXPECT_VALUE = 0;
const EXPECT_KEY = 1;
const AFTER_VALUE = 2;

const CONTAINER_ARRAY = 0;
const CONTAINER_OBJECT = 1;

/** Remembers the last few decoded strings so that repeated values cost no allocation. */
class StringCache {
  private readonly entries: { bytes: Uint8Array; text: string }[] = [];
  private next = 0;

  constructor(private readonly size: number) {}

  decode(bytes: Uint8Array, start: number, end: number): string {
    const length = end - start;
    for (const entry of this.entries) {
      if (entry.bytes.length === length && equalBytes(entry.bytes, bytes, start)) {
        return entry.text;
      }
    }
    const copy = bytes.slice(start, end);
    const text = Buffer.from(copy.buffer, copy.byteOffset, length).toString('utf8');
    if (length <= 64) {
      this.entries[this.next] = { bytes: copy, text };
      this.next = (this.next + 1) % this.size;
    }
    return text;
  }
}

function equalBytes(expected: Uint8Array, bytes: Uint8Array, start: number): boolean {
  for (let index = 0; index < expected.length; index++) {
    if (expected[index] !== bytes[start + index]) {
      return false;
    }
  }
  return true;
}

/**
 * Scans lines and fills `facts`. One instance per thread of work; it is not reentrant
 * because it reuses its buffers between lines.
 */
export class LineScanner {
  readonly facts: LineFacts = {
    kind: LineKind.BLANK,
    timestampMs: NaN,
    schemaName: null,
    schemaVersion: DEFAULT_SCHEMA_VERSION,
    operationType: null,
    operationStatus: null,
    policyDecision: null,
  };

  private readonly memberKeys: Uint8Array[];
  private readonly memberNames: string[];
  private readonly unitDigits: number;

  /** Nesting stack of container kinds; grows on demand, so nesting depth has no fixed limit. */
  private stack = new Uint8Array(64);

  // Where each member of interest was last seen on the current line. Later duplicates win, as in JSON.parse.
  private readonly valueType = new Uint8Array(MEMBER_COUNT);
  private readonly valueStart = new Int32Array(MEMBER_COUNT);
  private readonly valueEnd = new Int32Array(MEMBER_COUNT);
  private readonly valueEscaped = new Uint8Array(MEMBER_COUNT);

  private readonly names = new StringCache(16);
  private readonly labels = new StringCache(32);

  constructor(options: ScannerOptions) {
    this.memberNames = [
      '',
      options.timestampField,
      'schema_name',
      'schema_version',
      'operation_type',
      'operation_status',
      'policy_decision',
    ];
    this.memberKeys = this.memberNames.map((name) => Buffer.from(name, 'utf8'));
    this.unitDigits = options.timestampUnit === 's' ? 3 : 0;
  }

  /** Scans `bytes[start, end)`; `bytes[end]` must be 0x0A. Returns the kind, also stored in `facts.kind`. */
  scanLine(bytes: Uint8Array, start: number, end: number): LineKind {
    const facts = this.facts;
    const kind = this.classify(bytes, start, end);
    facts.kind = kind;
    if (kind === LineKind.RECORD) {
      this.extractFacts(bytes);
      if (Number.isNaN(facts.timestampMs)) {
        facts.kind = LineKind.NO_TIMESTAMP;
      }
    }
    return facts.kind;
  }

  private classify(bytes: Uint8Array, start: number, end: number): LineKind {
    let index = start;
    while (bytes[index] === SPACE || bytes[index] === TAB || bytes[index] === CARRIAGE_RETURN) {
      index++;
    }
    if (index === end) {
      return LineKind.BLANK;
    }

    this.valueType.fill(VALUE_ABSENT);
    const result = this.walk(bytes, index, end);
    if (result === WALK_INVALID) {
      return isUtf8(bytes.subarray(start, end)) ? LineKind.NOT_JSON : LineKind.INVALID_UTF8;
    }
    if (result === WALK_VALID_NON_ASCII && !isUtf8(bytes.subarray(start, end))) {
      return LineKind.INVALID_UTF8;
    }
    return bytes[index] === 0x7b ? LineKind.RECORD : LineKind.NOT_OBJECT;
  }

  /**
   * Walks one JSON value starting at `index` and checks that only white space follows it.
   * Records the position of top-level members of interest.
   */
  private walk(bytes: Uint8Array, index: number, end: number): number {
    let depth = 0;
    let state = EXPECT_VALUE;
    let member = MEMBER_OTHER;
    let nonAscii = false;

    for (;;) {
      // Skip JSON white space; the line feed sentinel is not white space here, so this stops at `end`.
      let byte = bytes[index]!;
      while (byte === SPACE || byte === TAB || byte === CARRIAGE_RETURN) {
        byte = bytes[++index]!;
      }

      if (state === EXPECT_KEY) {
        if (byte !== QUOTE) {
          return WALK_INVALID;
        }
        const keyStart = index + 1;
        const stringEnd = this.skipString(bytes, index);
        if (stringEnd === WALK_INVALID) {
          return WALK_INVALID;
        }
        const keyEnd = closingQuoteOf(stringEnd);
        const keyFlags = stringFlagsOf(stringEnd);
        if (keyFlags & FLAG_NON_ASCII) {
          nonAscii = true;
        }
        member = depth === 1 ? this.matchMember(bytes, keyStart, keyEnd, (keyFlags & FLAG_ESCAPED) !== 0) : MEMBER_OTHER;
        index = keyEnd + 1;

        byte = bytes[index]!;
        while (byte === SPACE || byte === TAB || byte === CARRIAGE_RETURN) {
          byte = bytes[++index]!;
        }
        if (byte !== 0x3a) {
          return WALK_INVALID;
        }
        index++;
        state = EXPECT_VALUE;
        continue;
      }

      if (state === EXPECT_VALUE) {
        const valueStart = index;
        if (byte === 0x7b || byte === 0x5b) {
          const isObject = byte === 0x7b;
          this.push(depth, isObject ? CONTAINER_OBJECT : CONTAINER_ARRAY);
          if (depth === 1 && member !== MEMBER_OTHER) {
            this.valueType[member] = VALUE_OTHER;
          }
          depth++;
          index++;
          byte = bytes[index]!;
          while (byte === SPACE || byte === TAB || byte === CARRIAGE_RETURN) {
            byte = bytes[++index]!;
          }
          if (byte === (isObject ? 0x7d : 0x5d)) {
            depth--;
            index++;
            state = AFTER_VALUE;
          } else {
            state = isObject ? EXPECT_KEY : EXPECT_VALUE;
          }
          continue;
        }

        let valueType = VALUE_OTHER;
        if (byte === QUOTE) {
          const stringEnd = this.skipString(bytes, index);
          if (stringEnd === WALK_INVALID) {
            return WALK_INVALID;
          }
          const flags = stringFlagsOf(stringEnd);
          if (flags & FLAG_NON_ASCII) {
            nonAscii = true;
          }
          index = closingQuoteOf(stringEnd) + 1;
          valueType = VALUE_STRING;
          if (depth === 1 && member !== MEMBER_OTHER) {
            this.valueEscaped[member] = flags & FLAG_ESCAPED ? 1 : 0;
            this.valueStart[member] = valueStart + 1;
            this.valueEnd[member] = index - 1;
          }
        } else if (byte === 0x2d || isDigit(byte)) {
          index = skipNumber(bytes, index);
          if (index < 0) {
            return WALK_INVALID;
          }
          valueType = VALUE_NUMBER;
          if (depth === 1 && member !== MEMBER_OTHER) {
            this.valueStart[member] = valueStart;
            this.valueEnd[member] = index;
          }
        } else if (byte === 0x74) {
          if (bytes[index + 1] !== 0x72 || bytes[index + 2] !== 0x75 || bytes[index + 3] !== 0x65) return WALK_INVALID;
          index += 4;
        } else if (byte === 0x66) {
          if (bytes[index + 1] !== 0x61 || bytes[index + 2] !== 0x6c || bytes[index + 3] !== 0x73 || bytes[index + 4] !== 0x65) return WALK_INVALID;
          index += 5;
        } else if (byte === 0x6e) {
          if (bytes[index + 1] !== 0x75 || bytes[index + 2] !== 0x6c || bytes[index + 3] !== 0x6c) return WALK_INVALID;
          index += 4;
        } else {
          return WALK_INVALID;
        }
        if (depth === 1 && member !== MEMBER_OTHER) {
          this.valueType[member] = valueType;
        }
        state = AFTER_VALUE;
        continue;
      }

      // AFTER_VALUE: the top-level value is complete, or a separator or closing bracket follows.
      if (depth === 0) {
        if (index !== end) {
          return WALK_INVALID;
        }
        return nonAscii ? WALK_VALID_NON_ASCII : WALK_VALID;
      }
      const container = this.stack[depth - 1];
      if (byte === 0x2c) {
        index++;
        state = container === CONTAINER_OBJECT ? EXPECT_KEY : EXPECT_VALUE;
        member = MEMBER_OTHER;
      } else if ((byte === 0x7d && container === CONTAINER_OBJECT) || (byte === 0x5d && container === CONTAINER_ARRAY)) {
        depth--;
        index++;
        member = MEMBER_OTHER;
      } else {
        return WALK_INVALID;
      }
    }
  }

  private push(depth: number, container: number): void {
    if (depth >= this.stack.length) {
      const larger = new Uint8Array(this.stack.length * 2);
      larger.set(this.stack);
      this.stack = larger;
    }
    this.stack[depth] = container;
  }

  /**
   * Skips the string whose opening quote is at `index`. Returns an encoded end
   * (see encodeStringEnd) or WALK_INVALID.
   */
  private skipString(bytes: Uint8Array, index: number): number {
    let flags = 0;
    index++;
    for (;;) {
      let byte = bytes[index]!;
      while (STRING_STOP[byte] === 0) {
        byte = bytes[++index]!;
      }
      if (byte === QUOTE) {
        return encodeStringEnd(index, flags);
      }
      if (byte === BACKSLASH) {
        flags |= FLAG_ESCAPED;
        const escape = bytes[index + 1]!;
        if (IS_SIMPLE_ESCAPE[escape] === 1) {
          index += 2;
        } else if (
          escape === 0x75 &&
          IS_HEX[bytes[index + 2]!] === 1 && IS_HEX[bytes[index + 3]!] === 1 &&
          IS_HEX[bytes[index + 4]!] === 1 && IS_HEX[bytes[index + 5]!] === 1
        ) {
          index += 6;
        } else {
          return WALK_INVALID;
        }
      } else if (byte >= 0x80) {
        // UTF-8 validity of the whole line is checked once at the end.
        flags |= FLAG_NON_ASCII;
        index++;
      } else {
        // A control byte, including the line feed sentinel: the string is invalid or unterminated.
        return WALK_INVALID;
      }
    }
  }

  private matchMember(bytes: Uint8Array, keyStart: number, keyEnd: number, escaped: boolean): number {
    if (escaped) {
      const key = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + keyStart - 1, keyEnd - keyStart + 2).toString('utf8')) as string;
      const found = this.memberNames.indexOf(key, 1);
      return found < 0 ? MEMBER_OTHER : found;
    }
    const length = keyEnd - keyStart;
    for (let member = 1; member < MEMBER_COUNT; member++) {
      const key = this.memberKeys[member]!;
      if (key.length === length && equalBytes(key, bytes, keyStart)) {
        return member;
      }
    }
    return MEMBER_OTHER;
  }

  private extractFacts(bytes: Uint8Array): void {
    const facts = this.facts;
    facts.timestampMs = this.readTimestamp(bytes);

    const name = this.readString(bytes, MEMBER_SCHEMA_NAME, this.names);
    facts.schemaName = name === '' ? null : name;
    facts.schemaVersion = this.readVersion(bytes);
    facts.operationType = this.readString(bytes, MEMBER_OPERATION_TYPE, this.labels);
    facts.operationStatus = this.readString(bytes, MEMBER_OPERATION_STATUS, this.labels);
    facts.policyDecision = this.readString(bytes, MEMBER_POLICY_DECISION, this.labels);
  }

  private readTimestamp(bytes: Uint8Array): number {
    const type = this.valueType[MEMBER_TIMESTAMP];
    const start = this.valueStart[MEMBER_TIMESTAMP]!;
    const end = this.valueEnd[MEMBER_TIMESTAMP]!;
    if (type === VALUE_NUMBER) {
      return parseEpochBytes(bytes, start, end, this.unitDigits);
    }
    if (type !== VALUE_STRING) {
      return NaN;
    }
    if (this.valueEscaped[MEMBER_TIMESTAMP] === 0) {
      return parseIsoBytes(bytes, start, end);
    }
    const decoded = Buffer.from(this.decodeEscaped(bytes, start, end), 'utf8');
    return parseIsoBytes(decoded, 0, decoded.length);
  }

  private readString(bytes: Uint8Array, member: number, cache: StringCache): string | null {
    if (this.valueType[member] !== VALUE_STRING) {
      return null;
    }
    const start = this.valueStart[member]!;
    const end = this.valueEnd[member]!;
    return this.valueEscaped[member] === 0 ? cache.decode(bytes, start, end) : this.decodeEscaped(bytes, start, end);
  }

  private readVersion(bytes: Uint8Array): number {
    if (this.valueType[MEMBER_SCHEMA_VERSION] !== VALUE_NUMBER) {
      return DEFAULT_SCHEMA_VERSION;
    }
    const start = this.valueStart[MEMBER_SCHEMA_VERSION]!;
    const end = this.valueEnd[MEMBER_SCHEMA_VERSION]!;
    // Fast path for one plain digit, the usual case.
    if (end - start === 1) {
      return bytes[start]! - 0x30;
    }
    const value = Number(Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1'));
    return Number.isSafeInteger(value) ? value + 0 : DEFAULT_SCHEMA_VERSION;
  }

  /** Decodes the string whose content is `bytes[start, end)` and contains escapes. */
  private decodeEscaped(bytes: Uint8Array, start: number, end: number): string {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + start - 1, end - start + 2).toString('utf8')) as string;
  }
}

// Results of walk().
const WALK_VALID = 1;
const WALK_VALID_NON_ASCII = 2;
const WALK_INVALID = -1;

// skipString() packs the index of the closing quote and two flags into one non-negative
// number, so the hot loop returns no object. Indexes stay below 2^29 because lines are
// limited to far less than 128 MiB.
const FLAG_ESCAPED = 1;
const FLAG_NON_ASCII = 2;

function encodeStringEnd(closingQuote: number, flags: number): number {
  return closingQuote * 4 + flags;
}

function closingQuoteOf(encoded: number): number {
  return encoded >>> 2;
}

function stringFlagsOf(encoded: number): number {
  return encoded & 3;
}

/** Skips a JSON number starting at `index`; returns the index after it, or -1 when the grammar fails. */
function skipNumber(bytes: Uint8Array, index: number): number {
  if (bytes[index] === 0x2d) {
    index++;
  }
  if (bytes[index] === 0x30) {
    index++;
  } else if (isDigit(bytes[index]!)) {
    while (isDigit(bytes[index]!)) index++;
  } else {
    return -1;
  }
  if (bytes[index] === 0x2e) {
    index++;
    if (!isDigit(bytes[index]!)) return -1;
    while (isDigit(bytes[index]!)) index++;
  }
  if (bytes[index] === 0x65 || bytes[index] === 0x45) {
    index++;
    if (bytes[index] === 0x2b || bytes[index] === 0x2d) index++;
    if (!isDigit(bytes[index]!)) return -1;
    while (isDigit(bytes[index]!)) index++;
  }
  return index;
}
