/**
 * The column types of an export, computed during the pass that classifies the lines,
 * so that DuckDB need not detect a schema over every line again.
 *
 * The scanner records where the top-level members of each line lie (MemberPositions),
 * and for each record line a ColumnCollector adds the kind of each value to its key's
 * column. The kinds decide the type that DuckDB reads (readTypeForKinds), following
 * the rules of DuckDB's own detection with `sample_size = -1`, except that numbers
 * keep all their digits where DuckDB can read them exactly.
 */

import { MemberPositions } from '../scanner.js';

/** Kinds of JSON value, as bits of a column's `kinds` mask. */
export const ValueKind = {
  STRING: 1 << 0,
  BOOLEAN: 1 << 1,
  NULL: 1 << 2,
  OBJECT: 1 << 3,
  ARRAY: 1 << 4,
  /** An integer of at most 2^53 in magnitude, which a DOUBLE represents exactly. */
  SAFE_INTEGER: 1 << 5,
  /** An integer within BIGINT (int64) but above 2^53 in magnitude. */
  BIGINT_INTEGER: 1 << 6,
  /** An integer beyond BIGINT but within HUGEINT (int128). */
  HUGEINT_INTEGER: 1 << 7,
  /** An integer beyond HUGEINT. */
  HUGE_INTEGER: 1 << 8,
  /** A number with a fraction or an exponent. */
  FLOAT: 1 << 9,
  /** A number with a fraction or an exponent beyond DOUBLE's range, such as 1e400, which DuckDB reads as NULL into a DOUBLE. */
  FLOAT_OUT_OF_RANGE: 1 << 10,
} as const;

const INTEGER_KINDS = ValueKind.SAFE_INTEGER | ValueKind.BIGINT_INTEGER | ValueKind.HUGEINT_INTEGER | ValueKind.HUGE_INTEGER;
const NUMBER_KINDS = INTEGER_KINDS | ValueKind.FLOAT | ValueKind.FLOAT_OUT_OF_RANGE;

/** Most distinct top-level keys an export accepts; beyond it the collector stops adding columns and reports overflow. */
export const MAX_COLUMNS = 10_000;

/** A top-level key of the records and the kinds of value seen under it. */
export interface ObservedColumn {
  name: string;
  kinds: number;
}

/**
 * Returns the DuckDB type that keeps every value of a column with `kinds`:
 * - only strings: VARCHAR, so that dates, times and UUIDs keep their text;
 * - only booleans: BOOLEAN;
 * - only integers: BIGINT, or HUGEINT when one is beyond int64;
 * - numbers with a fraction or exponent, and integers of at most 2^53: DOUBLE;
 * - objects, arrays, only nulls, and every mix of kinds: JSON.
 * Nulls mix with any kind. A mix of numbers that no numeric type represents exactly (a
 * fraction next to an integer above 2^53, or an integer beyond int128) is JSON, whose
 * text keeps the integers' digits. DuckDB reads a number with a fraction or exponent
 * as a binary64 double in every type, as JSON.parse does, so such a number keeps up
 * to 17 significant digits.
 */
export function readTypeForKinds(kinds: number): string {
  const values = kinds & ~ValueKind.NULL;
  if (values === ValueKind.STRING) {
    return 'VARCHAR';
  }
  if (values === ValueKind.BOOLEAN) {
    return 'BOOLEAN';
  }
  if (values !== 0 && (values & ~NUMBER_KINDS) === 0) {
    if ((values & (ValueKind.HUGE_INTEGER | ValueKind.FLOAT_OUT_OF_RANGE)) !== 0) {
      return 'JSON';
    }
    if ((values & ValueKind.FLOAT) !== 0) {
      return (values & ~(ValueKind.FLOAT | ValueKind.SAFE_INTEGER)) === 0 ? 'DOUBLE' : 'JSON';
    }
    return (values & ValueKind.HUGEINT_INTEGER) !== 0 ? 'HUGEINT' : 'BIGINT';
  }
  return 'JSON';
}

// Digits of the limits, compared with the digits of an integer of the same length.
const MAX_SAFE_DIGITS = Buffer.from(String(2 ** 53));
const MAX_BIGINT_DIGITS = Buffer.from('9223372036854775807');
const MIN_BIGINT_DIGITS = Buffer.from('9223372036854775808');
const MAX_HUGEINT_DIGITS = Buffer.from('170141183460469231731687303715884105727');
const MIN_HUGEINT_DIGITS = Buffer.from('170141183460469231731687303715884105728');

/** True when the digits `bytes[start, start + limit.length)` are at most `limit`. */
function digitsAtMost(bytes: Uint8Array, start: number, limit: Uint8Array): boolean {
  for (let index = 0; index < limit.length; index++) {
    const difference = bytes[start + index]! - limit[index]!;
    if (difference !== 0) {
      return difference < 0;
    }
  }
  return true;
}

/** Digits of the integer part below which a number without exponent is within DOUBLE's range (about 1.8e308). */
const MAX_DOUBLE_INTEGER_DIGITS = 309;

/** Returns FLOAT, or FLOAT_OUT_OF_RANGE when the number overflows a double. */
function parsedFloatKind(bytes: Uint8Array, start: number, end: number): number {
  const value = Number(Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1'));
  return Number.isFinite(value) ? ValueKind.FLOAT : ValueKind.FLOAT_OUT_OF_RANGE;
}

/** Returns the kind of the valid JSON number `bytes[start, end)`. */
export function numberKind(bytes: Uint8Array, start: number, end: number): number {
  const negative = bytes[start] === 0x2d;
  const digitsStart = negative ? start + 1 : start;
  let dot = -1;
  for (let index = digitsStart; index < end; index++) {
    const byte = bytes[index];
    if (byte === 0x2e) {
      dot = index;
    } else if (byte === 0x65 || byte === 0x45) {
      return parsedFloatKind(bytes, start, end);
    }
  }
  if (dot >= 0) {
    return dot - digitsStart < MAX_DOUBLE_INTEGER_DIGITS ? ValueKind.FLOAT : parsedFloatKind(bytes, start, end);
  }
  // JSON allows no leading zeros, so the digit count orders magnitudes.
  const digits = end - digitsStart;
  if (digits < MAX_SAFE_DIGITS.length || (digits === MAX_SAFE_DIGITS.length && digitsAtMost(bytes, digitsStart, MAX_SAFE_DIGITS))) {
    return ValueKind.SAFE_INTEGER;
  }
  if (digits < MAX_BIGINT_DIGITS.length || (digits === MAX_BIGINT_DIGITS.length && digitsAtMost(bytes, digitsStart, negative ? MIN_BIGINT_DIGITS : MAX_BIGINT_DIGITS))) {
    return ValueKind.BIGINT_INTEGER;
  }
  if (digits < MAX_HUGEINT_DIGITS.length || (digits === MAX_HUGEINT_DIGITS.length && digitsAtMost(bytes, digitsStart, negative ? MIN_HUGEINT_DIGITS : MAX_HUGEINT_DIGITS))) {
    return ValueKind.HUGEINT_INTEGER;
  }
  return ValueKind.HUGE_INTEGER;
}

/** Returns the kind of the valid JSON value `bytes[start, end)`. */
export function valueKind(bytes: Uint8Array, start: number, end: number): number {
  switch (bytes[start]) {
    case 0x22:
      return ValueKind.STRING;
    case 0x7b:
      return ValueKind.OBJECT;
    case 0x5b:
      return ValueKind.ARRAY;
    case 0x74:
    case 0x66:
      return ValueKind.BOOLEAN;
    case 0x6e:
      return ValueKind.NULL;
    default:
      return numberKind(bytes, start, end);
  }
}

/** The columns that one region of lines touched, in the order of first appearance there, with the kinds seen there. */
export interface RegionColumns {
  names: string[];
  kinds: number[];
  /** True when a key was left out because the log has more than MAX_COLUMNS distinct keys. */
  overflow: boolean;
}

/** A key's column and bytes, with its whole 4-byte words as little-endian integers for a faster comparison. */
interface CachedKey {
  column: number;
  bytes: Uint8Array;
  words: Int32Array;
}

function cachedKey(raw: Uint8Array, column: number): CachedKey {
  const bytes = new Uint8Array(raw);
  const view = new DataView(bytes.buffer);
  const words = new Int32Array(bytes.length >>> 2);
  for (let index = 0; index < words.length; index++) {
    words[index] = view.getInt32(index * 4, true);
  }
  return { column, bytes, words };
}

/** True when the key at `bytes[start]`, of the cached key's length, equals the cached key. */
function sameKey(key: CachedKey, view: DataView, bytes: Uint8Array, start: number): boolean {
  const words = key.words;
  for (let index = 0; index < words.length; index++) {
    if (view.getInt32(start + index * 4, true) !== words[index]) {
      return false;
    }
  }
  const expected = key.bytes;
  for (let index = words.length * 4; index < expected.length; index++) {
    if (expected[index] !== bytes[start + index]) {
      return false;
    }
  }
  return true;
}

function grown(array: Int32Array<ArrayBuffer>, size: number): Int32Array<ArrayBuffer> {
  if (size <= array.length) {
    return array;
  }
  const larger = new Int32Array(Math.max(size, array.length * 2));
  larger.set(array);
  return larger;
}

/**
 * Collects the kinds of the top-level values of record lines, per key. One instance
 * per thread: call `commitLine` after each record line and `takeRegion` after each
 * region of lines. A key repeated within a line adds the kinds of all its values,
 * which can only widen its column's type.
 */
export class ColumnCollector {
  private readonly columnsByKey = new Map<string, number>();
  private readonly names: string[] = [];
  private overflow = false;
  private readonly deepLineMembers = new MemberPositions();

  // The key seen at each member position of the previous lines, and its column: a line
  // usually has the keys of the line before, so most keys cost one byte comparison.
  private readonly positionKeys: CachedKey[] = [];
  private view: DataView | null = null;
  private viewSource: Uint8Array | null = null;

  /** Per column: the number of the line it last appeared on, to notice a repeated key. */
  private lineStamp = new Int32Array(64);
  private lineNumber = 1;

  // Kinds per column over the current region, and the columns in order of first appearance.
  private regionNumber = 1;
  private regionStamp = new Int32Array(64);
  private regionKinds = new Int32Array(64);
  private regionOrder: number[] = [];

  /**
   * Adds the members of the record line `bytes[start, end)` to the region, from the
   * positions that the scanner recorded for it. Returns true when the line repeats a
   * top-level key.
   */
  commitLine(bytes: Uint8Array, start: number, end: number, members: MemberPositions): boolean {
    if (members.count < 0) {
      members = this.deepLineMembers;
      findTopLevelMembers(bytes, start, end, members);
    }
    const line = ++this.lineNumber;
    const region = this.regionNumber;
    const view = this.viewOf(bytes);
    const { count, keyStart, keyEnd, keyEscaped, valueStart, valueEnd } = members;
    const positionKeys = this.positionKeys;
    // Locals for the hot loop; lookUpKey may grow the arrays, so they are read again after it.
    let lineStamp = this.lineStamp;
    let regionStamp = this.regionStamp;
    let regionKinds = this.regionKinds;
    let duplicate = false;

    for (let slot = 0; slot < count; slot++) {
      const start = keyStart[slot]!;
      const cached = positionKeys[slot];
      let column: number;
      if (cached !== undefined && cached.bytes.length === keyEnd[slot]! - start && sameKey(cached, view, bytes, start)) {
        column = cached.column;
      } else {
        column = this.lookUpKey(bytes, start, keyEnd[slot]!, keyEscaped[slot] === 1, slot);
        lineStamp = this.lineStamp;
        regionStamp = this.regionStamp;
        regionKinds = this.regionKinds;
        if (column < 0) {
          continue;
        }
      }

      const kind = valueKind(bytes, valueStart[slot]!, valueEnd[slot]!);
      if (regionStamp[column] === region) {
        regionKinds[column] = regionKinds[column]! | kind;
      } else {
        regionStamp[column] = region;
        regionKinds[column] = kind;
        this.regionOrder.push(column);
      }
      if (lineStamp[column] === line) {
        duplicate = true;
      }
      lineStamp[column] = line;
    }
    return duplicate;
  }

  /** Returns the columns of the region since the last call, and starts a new region. */
  takeRegion(): RegionColumns {
    const names = this.regionOrder.map((column) => this.names[column]!);
    const kinds = this.regionOrder.map((column) => this.regionKinds[column]!);
    this.regionOrder = [];
    this.regionNumber++;
    return { names, kinds, overflow: this.overflow };
  }

  private viewOf(bytes: Uint8Array): DataView {
    if (bytes !== this.viewSource) {
      this.viewSource = bytes;
      this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    }
    return this.view!;
  }

  /** Finds or adds the column of a key that the position cache missed; -1 after overflow. */
  private lookUpKey(bytes: Uint8Array, keyStart: number, keyEnd: number, keyEscaped: boolean, position: number): number {
    const raw = Buffer.from(bytes.buffer, bytes.byteOffset + keyStart, keyEnd - keyStart);
    const key = keyEscaped ? (JSON.parse(`"${raw.toString('utf8')}"`) as string) : raw.toString('utf8');
    let column = this.columnsByKey.get(key);
    if (column === undefined) {
      if (this.names.length >= MAX_COLUMNS) {
        this.overflow = true;
        return -1;
      }
      column = this.names.length;
      this.names.push(key);
      this.columnsByKey.set(key, column);
      const size = this.names.length;
      this.lineStamp = grown(this.lineStamp, size);
      this.regionStamp = grown(this.regionStamp, size);
      this.regionKinds = grown(this.regionKinds, size);
    }
    this.positionKeys[position] = cachedKey(raw, column);
    return column;
  }
}

/**
 * The columns of a whole log, merged from the regions in log order, so that the
 * order of columns is the order in which their keys first appear in record lines.
 */
export class ColumnSchema {
  private readonly byName = new Map<string, ObservedColumn>();
  private readonly ordered: ObservedColumn[] = [];
  overflow = false;

  merge(region: RegionColumns): void {
    this.overflow ||= region.overflow;
    for (let index = 0; index < region.names.length; index++) {
      const name = region.names[index]!;
      const column = this.byName.get(name);
      if (column === undefined) {
        const added = { name, kinds: region.kinds[index]! };
        this.byName.set(name, added);
        this.ordered.push(added);
      } else {
        column.kinds |= region.kinds[index]!;
      }
    }
  }

  columns(): ObservedColumn[] {
    return this.ordered.map((column) => ({ ...column }));
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isJsonSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a;
}

/** Returns the index after the string whose opening quote is at `index`. */
function skipStringAt(bytes: Uint8Array, index: number): number {
  index++;
  for (;;) {
    const byte = bytes[index];
    if (byte === QUOTE) {
      return index + 1;
    }
    index += byte === BACKSLASH ? 2 : 1;
  }
}

/**
 * Records the top-level members of the valid JSON object line `bytes[start, end)` in
 * `members`. A slow loop without recursion, for lines nested deeper than the scanner's
 * recursive walk goes.
 */
export function findTopLevelMembers(bytes: Uint8Array, start: number, end: number, members: MemberPositions): void {
  members.count = 0;
  let index = start;
  while (bytes[index] !== 0x7b) index++;
  index++;
  for (;;) {
    while (isJsonSpace(bytes[index])) index++;
    if (index >= end || bytes[index] === 0x7d) {
      return;
    }
    const keyStart = index + 1;
    index = skipStringAt(bytes, index);
    const keyEnd = index - 1;
    let keyEscaped = 0;
    for (let position = keyStart; position < keyEnd; position++) {
      if (bytes[position] === BACKSLASH) {
        keyEscaped = 1;
        break;
      }
    }
    while (bytes[index] !== 0x3a) index++;
    index++;
    while (isJsonSpace(bytes[index])) index++;

    const valueStart = index;
    const first = bytes[index];
    if (first === QUOTE) {
      index = skipStringAt(bytes, index);
    } else if (first === 0x7b || first === 0x5b) {
      let depth = 0;
      do {
        const byte = bytes[index];
        if (byte === QUOTE) {
          index = skipStringAt(bytes, index);
          continue;
        }
        if (byte === 0x7b || byte === 0x5b) {
          depth++;
        } else if (byte === 0x7d || byte === 0x5d) {
          depth--;
        }
        index++;
      } while (depth > 0);
    } else {
      while (index < end && !isJsonSpace(bytes[index]) && bytes[index] !== 0x2c && bytes[index] !== 0x7d) index++;
    }

    const slot = members.count++;
    if (slot === members.keyStart.length) {
      members.grow();
    }
    members.keyStart[slot] = keyStart;
    members.keyEnd[slot] = keyEnd;
    members.keyEscaped[slot] = keyEscaped;
    members.valueStart[slot] = valueStart;
    members.valueEnd[slot] = index;

    while (isJsonSpace(bytes[index])) index++;
    if (bytes[index] === 0x2c) {
      index++;
    }
  }
}
