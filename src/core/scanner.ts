/**
 * A validating JSON scanner for one log line, working on bytes.
 *
 * It checks the line against the JSON grammar (RFC 8259) and UTF-8 without building
 * objects, and picks out the top-level members that retention and stats need. Its
 * verdict matches `JSON.parse` on the decoded line; a property test checks that.
 * Object keys and string values with escapes are decoded through `JSON.parse` of
 * that one token, so the scanner never guesses at escape semantics.
 *
 * Contract of `scanLine(bytes, start, end)`: `bytes[end]` is the line feed that ends
 * the line. The scanner relies on it as a sentinel: every loop stops at a byte below
 * 0x20 or outside its token, so no loop needs a bounds check.
 */

import { isUtf8 } from 'node:buffer';

import { LineWalk, scanMemoryOf, WALK_ESCAPED_KEY, WALK_TOO_DEEP } from './line-walk.js';
import { parseEpochBytes, parseIsoBytes } from './timestamp.js';

/** Kinds of line, as far as retention is concerned. */
export const LineKind = {
  /** A JSON object with a readable timestamp. */
  RECORD: 0,
  /** Empty, or only spaces, tabs, carriage returns, form feeds and vertical tabs. Kept, not counted as malformed. */
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
  /** Name of the top-level member that contains the timestamp. */
  timestampField: string;
  /** Unit of numeric timestamps. */
  timestampUnit: 'ms' | 's';
  /**
   * Decode `operation_type`, `operation_status` and `policy_decision` into the facts.
   * Default true; a cleanup turns it off because it needs only timestamp and schema.
   */
  extractLabels?: boolean;
  /**
   * Record where the top-level members of each line that starts with `{` lie, in
   * `members`, for the export's column types. Off in a cleanup: the scanner then takes
   * a walk that records nothing.
   */
  recordMembers?: boolean | undefined;
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

/** Positions of the top-level members of the last scanned line; see ScannerOptions.recordMembers. */
export class MemberPositions {
  /**
   * Number of members recorded. -1 after a line that nests deeper than the recursive
   * walk goes, because the iterative walk that takes over records no positions.
   */
  count = 0;
  /** Index of a key's first byte after the opening quote. */
  keyStart = new Int32Array(64);
  /** Index of a key's closing quote. */
  keyEnd = new Int32Array(64);
  /** 1 when the key contains a backslash escape. */
  keyEscaped = new Uint8Array(64);
  /** Index of a value's first byte. */
  valueStart = new Int32Array(64);
  /** Index after a value's last byte. */
  valueEnd = new Int32Array(64);

  /** Doubles the capacity, keeping the positions recorded so far. */
  grow(): void {
    const size = this.keyStart.length * 2;
    const grownInt32 = (array: Int32Array<ArrayBuffer>) => {
      const larger = new Int32Array(size);
      larger.set(array);
      return larger;
    };
    this.keyStart = grownInt32(this.keyStart);
    this.keyEnd = grownInt32(this.keyEnd);
    this.valueStart = grownInt32(this.valueStart);
    this.valueEnd = grownInt32(this.valueEnd);
    const escaped = new Uint8Array(size);
    escaped.set(this.keyEscaped);
    this.keyEscaped = escaped;
  }
}

// Byte classes.
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SPACE = 0x20;
const TAB = 0x09;
const CARRIAGE_RETURN = 0x0d;

/**
 * Nonzero for bytes that end a run of plain string content: quote, backslash and
 * control bytes. Bytes of 0x80 and above pass, because UTF-8 is checked per line or
 * per chunk with isUtf8, not inside the grammar walk.
 */
const STRING_STOP = new Uint8Array(256);
for (let byte = 0; byte < 0x20; byte++) STRING_STOP[byte] = 1;
STRING_STOP[QUOTE] = 1;
STRING_STOP[BACKSLASH] = 1;

// Word-at-a-time constants for four bytes in one 32-bit integer (SWAR).
const ONES = 0x01010101;
const HIGH_BITS = 0x80808080 | 0;
const QUOTES = 0x22222222;
const BACKSLASHES = 0x5c5c5c5c;
const SPACES = 0x20202020;

/** 1 for JSON white space within a line: space, tab and carriage return. The line feed ends the line. */
const IS_SPACE = new Uint8Array(256);
IS_SPACE[SPACE] = 1;
IS_SPACE[TAB] = 1;
IS_SPACE[CARRIAGE_RETURN] = 1;

/**
 * 1 for the bytes of a blank line: JSON white space plus form feed and vertical tab,
 * which are white space to most tools, though JSON does not allow them.
 */
const IS_BLANK = new Uint8Array(256);
IS_BLANK[SPACE] = 1;
IS_BLANK[TAB] = 1;
IS_BLANK[CARRIAGE_RETURN] = 1;
IS_BLANK[0x0b] = 1;
IS_BLANK[0x0c] = 1;

/**
 * Nesting depth up to which the recursive walk runs; deeper lines take the
 * iterative walk. 512 frames of these small methods stay far below Node's default stack limit of 984 KiB.
 */
const MAX_RECURSIVE_DEPTH = 512;

/** Length bound of the key table, in bytes; a longer configured timestamp field skips the table and is compared in full. */
const MAX_MEMBER_KEY_LENGTH = 64;

/** Result of the recursive walk when a line nests deeper than MAX_RECURSIVE_DEPTH. */
const TOO_DEEP = WALK_TOO_DEEP;

const IS_HEX = new Uint8Array(256);
for (const character of '0123456789abcdefABCDEF') IS_HEX[character.charCodeAt(0)] = 1;

/** Escape letters allowed after a backslash, except `u`. */
const IS_SIMPLE_ESCAPE = new Uint8Array(256);
for (const character of '"\\/bfnrt') IS_SIMPLE_ESCAPE[character.charCodeAt(0)] = 1;

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

// Top-level members of interest, by the key that names them.
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
    // A copy, not a view: Buffer#slice shares memory, and the read buffer is refilled
    // under the cache, so a view would match the next name of the same length at that offset.
    const copy = new Uint8Array(length);
    copy.set(bytes.subarray(start, end));
    const text = Buffer.from(copy.buffer, 0, length).toString('utf8');
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
  /** 1 at `length * 256 + first byte` of each member key of interest. */
  private readonly memberSlots = new Uint8Array(MAX_MEMBER_KEY_LENGTH * 256);
  private readonly unitDigits: number;
  private readonly extractLabels: boolean;
  /** Member positions of the last line; null unless ScannerOptions.recordMembers. */
  readonly members: MemberPositions | null;

  /**
   * Set by a caller that has checked with isUtf8 the whole region it scans next.
   * While it is true, lines are not checked for UTF-8 one by one.
   */
  utf8Verified = false;

  /** 32-bit view of the last scanned buffer, for the word-at-a-time string scan. */
  private words: Int32Array | null = null;
  private wordsSource: Uint8Array | null = null;

  /** The compiled walk for lines in `compiledWalkSource`, or null where only the JavaScript walk can read them. */
  private compiledWalk: LineWalk | null = null;
  private compiledWalkSource: ArrayBufferLike | null = null;
  /** One compiled walk per scan memory this scanner has read, created on first use and again when a later run took the memory. */
  private readonly compiledWalks = new WeakMap<WebAssembly.Memory, LineWalk>();

  /** Nesting stack of container kinds; grows on demand, so nesting depth has no fixed limit. */
  private stack = new Uint8Array(64);

  // Where each member of interest was last seen on the current line. Later duplicates win, as in JSON.parse.
  private readonly valueType = new Uint8Array(MEMBER_COUNT);
  private readonly valueStart = new Int32Array(MEMBER_COUNT);
  private readonly valueEnd = new Int32Array(MEMBER_COUNT);
  private readonly valueEscaped = new Uint8Array(MEMBER_COUNT);
  /** The timestamp as the compiled walk parsed it, valid while `timestampParsed` is true. */
  private parsedTimestampMs = NaN;
  private timestampParsed = false;

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
    for (let member = 1; member < MEMBER_COUNT; member++) {
      const key = this.memberKeys[member]!;
      if (key.length < MAX_MEMBER_KEY_LENGTH) {
        this.memberSlots[key.length * 256 + key[0]!] = 1;
      }
    }
    this.unitDigits = options.timestampUnit === 's' ? 3 : 0;
    this.extractLabels = options.extractLabels ?? true;
    this.members = options.recordMembers === true ? new MemberPositions() : null;
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
    while (IS_BLANK[bytes[index]!] === 1) {
      index++;
    }
    if (index === end) {
      return LineKind.BLANK;
    }
    index = start;
    while (IS_SPACE[bytes[index]!] === 1) {
      index++;
    }

    this.valueType.fill(VALUE_ABSENT);
    this.timestampParsed = false;
    this.attachWords(bytes);
    let walked: number;
    if (bytes[index] !== 0x7b) {
      walked = this.skipValue(bytes, index, end, 0);
    } else if (this.members === null) {
      walked = this.compiledWalkFor(bytes) !== null ? this.walkRecordCompiled(bytes, index, end) : this.walkRecord(bytes, index, end);
    } else {
      walked = this.walkRecordMembers(bytes, index, end, this.members);
    }
    if (walked === TOO_DEEP) {
      // Deeper than the recursive walk allows: the iterative walk has no depth limit.
      if (this.members !== null) {
        this.members.count = -1;
      }
      this.valueType.fill(VALUE_ABSENT);
      walked = this.walk(bytes, index, end) ? end : -1;
    }
    let afterValue = walked;
    while (afterValue >= 0 && (bytes[afterValue] === SPACE || bytes[afterValue] === TAB || bytes[afterValue] === CARRIAGE_RETURN)) {
      afterValue++;
    }
    const valid = afterValue === end;
    const utf8 = this.utf8Verified || isUtf8(bytes.subarray(start, end));
    if (!utf8) {
      return LineKind.INVALID_UTF8;
    }
    if (!valid) {
      return LineKind.NOT_JSON;
    }
    return bytes[index] === 0x7b ? LineKind.RECORD : LineKind.NOT_OBJECT;
  }

  /**
   * Walks the top-level object starting at `index` and records the members of interest.
   * Returns the index after its closing brace, -1 when the grammar fails, or TOO_DEEP.
   * This recursive walk is the fast path; `walk` below is its iterative fallback.
   */
  private walkRecord(bytes: Uint8Array, index: number, end: number): number {
    index++;
    while (IS_SPACE[bytes[index]!] === 1) index++;
    if (bytes[index] === 0x7d) {
      return index + 1;
    }

    for (;;) {
      if (bytes[index] !== QUOTE) {
        return -1;
      }
      const keyEncoded = this.skipString(bytes, index, end);
      if (keyEncoded === STRING_INVALID) {
        return -1;
      }
      const keyEnd = closingQuoteOf(keyEncoded);
      const member = this.matchMember(bytes, index + 1, keyEnd, isEscaped(keyEncoded));
      index = keyEnd + 1;
      while (IS_SPACE[bytes[index]!] === 1) index++;
      if (bytes[index] !== 0x3a) {
        return -1;
      }
      index++;
      while (IS_SPACE[bytes[index]!] === 1) index++;

      if (member === MEMBER_OTHER) {
        index = this.skipValue(bytes, index, end, 1);
      } else {
        index = this.readMember(bytes, index, end, member);
      }
      if (index < 0) {
        return index;
      }

      while (IS_SPACE[bytes[index]!] === 1) index++;
      const byte = bytes[index];
      if (byte === 0x2c) {
        index++;
        while (IS_SPACE[bytes[index]!] === 1) index++;
        continue;
      }
      return byte === 0x7d ? index + 1 : -1;
    }
  }

  /** Returns the compiled walk that reads `bytes` in place, or null when they are not in a scan memory. */
  private compiledWalkFor(bytes: Uint8Array): LineWalk | null {
    if (bytes.buffer === this.compiledWalkSource && (this.compiledWalk === null || this.compiledWalk.current())) {
      return this.compiledWalk;
    }

    this.compiledWalkSource = bytes.buffer;
    const memory = scanMemoryOf(bytes.buffer);
    if (memory === undefined) {
      this.compiledWalk = null;
      return null;
    }
    let walk: LineWalk | null | undefined = this.compiledWalks.get(memory);
    if (walk === undefined || !walk.current()) {
      walk = LineWalk.create(memory, this.memberKeys);
      if (walk !== null) {
        this.compiledWalks.set(memory, walk);
      }
    }
    this.compiledWalk = walk ?? null;
    return this.compiledWalk;
  }

  /** `walkRecord` done by the compiled walk; same results, with the members copied into this scanner's tables. */
  private walkRecordCompiled(bytes: Uint8Array, index: number, end: number): number {
    const walk = this.compiledWalk!;
    const offset = bytes.byteOffset;
    const after = walk.walkRecord(offset + index);
    if (after === WALK_ESCAPED_KEY) {
      return this.walkRecord(bytes, index, end);
    }
    if (after < 0) {
      // -1 and TOO_DEEP mean the same in both walks.
      return after;
    }

    const results = walk.results;
    for (let member = 1; member < MEMBER_COUNT; member++) {
      const at = member * 4;
      this.valueType[member] = results[at]!;
      this.valueStart[member] = results[at + 1]! - offset;
      this.valueEnd[member] = results[at + 2]! - offset;
      this.valueEscaped[member] = results[at + 3]!;
    }
    // The walk parses a timestamp string without escapes as it passes, and only such a string.
    if (this.valueType[MEMBER_TIMESTAMP] === VALUE_STRING && this.valueEscaped[MEMBER_TIMESTAMP] === 0) {
      this.parsedTimestampMs = walk.timestampMs[0]!;
      this.timestampParsed = true;
    }
    return after - offset;
  }

  /**
   * Walks the top-level object like `walkRecord` and records where each member lies.
   * A copy rather than a flag in `walkRecord`, so that the cleanup's walk stays as it is.
   */
  private walkRecordMembers(bytes: Uint8Array, index: number, end: number, members: MemberPositions): number {
    members.count = 0;
    index++;
    while (IS_SPACE[bytes[index]!] === 1) index++;
    if (bytes[index] === 0x7d) {
      return index + 1;
    }

    for (;;) {
      if (bytes[index] !== QUOTE) {
        return -1;
      }
      const keyStart = index + 1;
      const keyEncoded = this.skipString(bytes, index, end);
      if (keyEncoded === STRING_INVALID) {
        return -1;
      }
      const keyEnd = closingQuoteOf(keyEncoded);
      const keyEscaped = isEscaped(keyEncoded);
      const member = this.matchMember(bytes, keyStart, keyEnd, keyEscaped);
      index = keyEnd + 1;
      while (IS_SPACE[bytes[index]!] === 1) index++;
      if (bytes[index] !== 0x3a) {
        return -1;
      }
      index++;
      while (IS_SPACE[bytes[index]!] === 1) index++;

      const valueStart = index;
      if (member === MEMBER_OTHER) {
        index = this.skipValue(bytes, index, end, 1);
      } else {
        index = this.readMember(bytes, index, end, member);
      }
      if (index < 0) {
        return index;
      }
      const slot = members.count++;
      if (slot === members.keyStart.length) {
        members.grow();
      }
      members.keyStart[slot] = keyStart;
      members.keyEnd[slot] = keyEnd;
      members.keyEscaped[slot] = keyEscaped ? 1 : 0;
      members.valueStart[slot] = valueStart;
      members.valueEnd[slot] = index;

      while (IS_SPACE[bytes[index]!] === 1) index++;
      const byte = bytes[index];
      if (byte === 0x2c) {
        index++;
        while (IS_SPACE[bytes[index]!] === 1) index++;
        continue;
      }
      return byte === 0x7d ? index + 1 : -1;
    }
  }

  /** Walks the value of a member of interest and records its type and position. */
  private readMember(bytes: Uint8Array, index: number, end: number, member: number): number {
    const byte = bytes[index];
    if (byte === QUOTE) {
      const encoded = this.skipString(bytes, index, end);
      if (encoded === STRING_INVALID) {
        return -1;
      }
      this.valueType[member] = VALUE_STRING;
      this.valueEscaped[member] = isEscaped(encoded) ? 1 : 0;
      this.valueStart[member] = index + 1;
      this.valueEnd[member] = closingQuoteOf(encoded);
      return closingQuoteOf(encoded) + 1;
    }
    if (byte === 0x2d || isDigit(byte!)) {
      const after = skipNumber(bytes, index);
      if (after >= 0) {
        this.valueType[member] = VALUE_NUMBER;
        this.valueStart[member] = index;
        this.valueEnd[member] = after;
      }
      return after;
    }
    this.valueType[member] = VALUE_OTHER;
    return this.skipValue(bytes, index, end, 1);
  }

  /** Skips one JSON value at nesting `depth`; returns the index after it, -1 or TOO_DEEP. */
  private skipValue(bytes: Uint8Array, index: number, end: number, depth: number): number {
    const byte = bytes[index];
    if (byte === QUOTE) {
      const encoded = this.skipString(bytes, index, end);
      return encoded === STRING_INVALID ? -1 : closingQuoteOf(encoded) + 1;
    }
    if (byte === 0x7b) {
      return this.skipObject(bytes, index, end, depth + 1);
    }
    if (byte === 0x5b) {
      return this.skipArray(bytes, index, end, depth + 1);
    }
    if (byte === 0x6e) {
      return bytes[index + 1] === 0x75 && bytes[index + 2] === 0x6c && bytes[index + 3] === 0x6c ? index + 4 : -1;
    }
    if (byte === 0x74) {
      return bytes[index + 1] === 0x72 && bytes[index + 2] === 0x75 && bytes[index + 3] === 0x65 ? index + 4 : -1;
    }
    if (byte === 0x66) {
      return bytes[index + 1] === 0x61 && bytes[index + 2] === 0x6c && bytes[index + 3] === 0x73 && bytes[index + 4] === 0x65 ? index + 5 : -1;
    }
    return skipNumber(bytes, index);
  }

  private skipObject(bytes: Uint8Array, index: number, end: number, depth: number): number {
    if (depth > MAX_RECURSIVE_DEPTH) {
      return TOO_DEEP;
    }
    index++;
    while (IS_SPACE[bytes[index]!] === 1) index++;
    if (bytes[index] === 0x7d) {
      return index + 1;
    }
    for (;;) {
      if (bytes[index] !== QUOTE) {
        return -1;
      }
      const keyEncoded = this.skipString(bytes, index, end);
      if (keyEncoded === STRING_INVALID) {
        return -1;
      }
      index = closingQuoteOf(keyEncoded) + 1;
      while (IS_SPACE[bytes[index]!] === 1) index++;
      if (bytes[index] !== 0x3a) {
        return -1;
      }
      index++;
      while (IS_SPACE[bytes[index]!] === 1) index++;
      index = this.skipValue(bytes, index, end, depth);
      if (index < 0) {
        return index;
      }
      while (IS_SPACE[bytes[index]!] === 1) index++;
      const byte = bytes[index];
      if (byte === 0x2c) {
        index++;
        while (IS_SPACE[bytes[index]!] === 1) index++;
        continue;
      }
      return byte === 0x7d ? index + 1 : -1;
    }
  }

  private skipArray(bytes: Uint8Array, index: number, end: number, depth: number): number {
    if (depth > MAX_RECURSIVE_DEPTH) {
      return TOO_DEEP;
    }
    index++;
    while (IS_SPACE[bytes[index]!] === 1) index++;
    if (bytes[index] === 0x5d) {
      return index + 1;
    }
    for (;;) {
      index = this.skipValue(bytes, index, end, depth);
      if (index < 0) {
        return index;
      }
      while (IS_SPACE[bytes[index]!] === 1) index++;
      const byte = bytes[index];
      if (byte === 0x2c) {
        index++;
        while (IS_SPACE[bytes[index]!] === 1) index++;
        continue;
      }
      return byte === 0x5d ? index + 1 : -1;
    }
  }

  /**
   * Walks one JSON value starting at `index` and checks that only white space follows it.
   * Records the position of top-level members of interest.
   */
  private walk(bytes: Uint8Array, index: number, end: number): boolean {
    let depth = 0;
    let state = EXPECT_VALUE;
    let member = MEMBER_OTHER;

    for (;;) {
      // Skip JSON white space; the line feed sentinel is not white space here, so this stops at `end`.
      let byte = bytes[index]!;
      while (byte === SPACE || byte === TAB || byte === CARRIAGE_RETURN) {
        byte = bytes[++index]!;
      }

      if (state === EXPECT_KEY) {
        if (byte !== QUOTE) {
          return false;
        }
        const keyStart = index + 1;
        const stringEnd = this.skipString(bytes, index, end);
        if (stringEnd === STRING_INVALID) {
          return false;
        }
        const keyEnd = closingQuoteOf(stringEnd);
        member = depth === 1 ? this.matchMember(bytes, keyStart, keyEnd, isEscaped(stringEnd)) : MEMBER_OTHER;
        index = keyEnd + 1;

        byte = bytes[index]!;
        while (byte === SPACE || byte === TAB || byte === CARRIAGE_RETURN) {
          byte = bytes[++index]!;
        }
        if (byte !== 0x3a) {
          return false;
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
          const stringEnd = this.skipString(bytes, index, end);
          if (stringEnd === STRING_INVALID) {
            return false;
          }
          index = closingQuoteOf(stringEnd) + 1;
          valueType = VALUE_STRING;
          if (depth === 1 && member !== MEMBER_OTHER) {
            this.valueEscaped[member] = isEscaped(stringEnd) ? 1 : 0;
            this.valueStart[member] = valueStart + 1;
            this.valueEnd[member] = index - 1;
          }
        } else if (byte === 0x2d || isDigit(byte)) {
          index = skipNumber(bytes, index);
          if (index < 0) {
            return false;
          }
          valueType = VALUE_NUMBER;
          if (depth === 1 && member !== MEMBER_OTHER) {
            this.valueStart[member] = valueStart;
            this.valueEnd[member] = index;
          }
        } else if (byte === 0x74) {
          if (bytes[index + 1] !== 0x72 || bytes[index + 2] !== 0x75 || bytes[index + 3] !== 0x65) return false;
          index += 4;
        } else if (byte === 0x66) {
          if (bytes[index + 1] !== 0x61 || bytes[index + 2] !== 0x6c || bytes[index + 3] !== 0x73 || bytes[index + 4] !== 0x65) return false;
          index += 5;
        } else if (byte === 0x6e) {
          if (bytes[index + 1] !== 0x75 || bytes[index + 2] !== 0x6c || bytes[index + 3] !== 0x6c) return false;
          index += 4;
        } else {
          return false;
        }
        if (depth === 1 && member !== MEMBER_OTHER) {
          this.valueType[member] = valueType;
        }
        state = AFTER_VALUE;
        continue;
      }

      // AFTER_VALUE: the top-level value is complete, or a separator or closing bracket follows.
      if (depth === 0) {
        return index === end;
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
        return false;
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

  /** Points `words` at the 32-bit view of `bytes`, or null when `bytes` is not 4-byte aligned. */
  private attachWords(bytes: Uint8Array): void {
    if (bytes === this.wordsSource) {
      return;
    }
    this.wordsSource = bytes;
    this.words = bytes.byteOffset % 4 === 0 ? new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2) : null;
  }

  /**
   * Skips the string whose opening quote is at `index`; `end` is the line's end.
   * Returns the closing quote's index packed with the escape flag (see encodeStringEnd),
   * or STRING_INVALID.
   */
  private skipString(bytes: Uint8Array, index: number, end: number): number {
    const words = this.words;
    let escaped = 0;
    index++;
    for (;;) {
      if (words !== null) {
        // Reach a word boundary, then test four bytes at a time for a quote, a backslash
        // or a control byte with the classic has-zero-byte and has-less-than tricks.
        while ((index & 3) !== 0 && STRING_STOP[bytes[index]!] === 0) {
          index++;
        }
        if ((index & 3) === 0) {
          while (index + 4 <= end) {
            const word = words[index >>> 2]!;
            const quotes = word ^ QUOTES;
            const backslashes = word ^ BACKSLASHES;
            const found = ((quotes - ONES) & ~quotes) | ((backslashes - ONES) & ~backslashes) | ((word - SPACES) & ~word);
            if ((found & HIGH_BITS) !== 0) {
              break;
            }
            index += 4;
          }
        }
      }

      let byte = bytes[index]!;
      while (STRING_STOP[byte] === 0) {
        byte = bytes[++index]!;
      }
      if (byte === QUOTE) {
        return encodeStringEnd(index, escaped);
      }
      if (byte !== BACKSLASH) {
        // A control byte, including the line feed sentinel: the string is invalid or unterminated.
        return STRING_INVALID;
      }
      escaped = 1;
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
        return STRING_INVALID;
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
    // One table read rejects nearly every key; only keys that share length and first byte with a member are compared.
    if (length < MAX_MEMBER_KEY_LENGTH && this.memberSlots[length * 256 + bytes[keyStart]!] === 0) {
      return MEMBER_OTHER;
    }
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
    if (this.extractLabels) {
      facts.operationType = this.readString(bytes, MEMBER_OPERATION_TYPE, this.labels);
      facts.operationStatus = this.readString(bytes, MEMBER_OPERATION_STATUS, this.labels);
      facts.policyDecision = this.readString(bytes, MEMBER_POLICY_DECISION, this.labels);
    }
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
      return this.timestampParsed ? this.parsedTimestampMs : parseIsoBytes(bytes, start, end);
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

// skipString() packs the index of the closing quote and an escape flag into one
// non-negative number, so the hot loop returns no object. Indexes stay below 2^30
// because read buffers are far smaller than 1 GiB.
const STRING_INVALID = -1;

function encodeStringEnd(closingQuote: number, escaped: number): number {
  return closingQuote * 2 + escaped;
}

function closingQuoteOf(encoded: number): number {
  return encoded >>> 1;
}

function isEscaped(encoded: number): boolean {
  return (encoded & 1) === 1;
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
