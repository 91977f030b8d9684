/**
 * Output checks: summarize what a method kept, line by line, and compare it with
 * the lines our cleanup kept.
 *
 * Methods that copy lines as bytes must match ours byte for byte. Methods that
 * decode or re-serialize lines (jq, DuckDB's JSON writer, readline) cannot, so for
 * them the check compares records instead: the ordered sequence of `record_id`
 * values of every line that parses as a JSON object with a timestamp.
 */

import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { open } from 'node:fs/promises';

const LINE_FEED = 0x0a;
const READ_BYTES = 8 * 1024 * 1024;
const BLANK_LINE = /^[ \t\r\f\v]*$/;
/** Finds a record id in text that JSON.parse rejects, as written by MXCP (`": "`) or by jq (`":"`). */
const RECORD_ID = /"record_id": ?"([^"]*)"/;

/** Summary of the lines that one method kept, over all of its output files in order. */
export interface LinesSummary {
  lines: number;
  bytes: number;
  /** SHA-256 of all bytes, hex. */
  sha256: string;
  /** Lines that parse as a JSON object with a non-null `timestamp`. */
  records: number;
  /** SHA-256 over the records' `record_id` values in order, each followed by a line feed. */
  recordIdsSha256: string;
  blankLines: number;
  /** Lines that are neither records nor blank: invalid UTF-8, not JSON, or without a timestamp. */
  malformedLines: number;
  /** Record ids found in malformed lines, such as an invalid UTF-8 line that a decoder repaired. */
  malformedRecordIds: Set<string>;
}

/** Summarizes `paths` read one after another, as if they were one file. */
export async function summarizeLines(paths: readonly string[]): Promise<LinesSummary> {
  return scanLines(paths, null);
}

/**
 * Summarizes a method's output against `reference`, our cleanup's output. Records
 * whose id belongs to a line that we count as malformed are left out of
 * `recordIdsSha256` and counted in `repairedRecords`, so a decoder that repairs
 * invalid UTF-8 still matches when every real record agrees.
 */
export async function summarizeAgainst(paths: readonly string[], reference: LinesSummary): Promise<LinesSummary & { repairedRecords: number }> {
  return scanLines(paths, reference.malformedRecordIds);
}

async function scanLines(paths: readonly string[], excludedIds: ReadonlySet<string> | null): Promise<LinesSummary & { repairedRecords: number }> {
  const allBytes = createHash('sha256');
  const recordIds = createHash('sha256');
  const summary = {
    lines: 0,
    bytes: 0,
    sha256: '',
    records: 0,
    recordIdsSha256: '',
    blankLines: 0,
    malformedLines: 0,
    malformedRecordIds: new Set<string>(),
    repairedRecords: 0,
  };

  const classify = (line: Buffer): void => {
    summary.lines++;
    const text = isUtf8(line) ? line.toString('utf8') : null;
    if (text !== null && BLANK_LINE.test(text)) {
      summary.blankLines++;
      return;
    }

    const recordId = text === null ? null : recordIdOf(text);
    if (recordId === null) {
      summary.malformedLines++;
      const match = RECORD_ID.exec(line.toString('latin1'));
      if (match !== null) {
        summary.malformedRecordIds.add(match[1]!);
      }
      return;
    }

    summary.records++;
    if (excludedIds?.has(recordId) === true) {
      summary.repairedRecords++;
      return;
    }
    recordIds.update(`${recordId}\n`);
  };

  const buffer = Buffer.allocUnsafe(READ_BYTES);
  for (const path of paths) {
    const file = await open(path, 'r');
    try {
      let carry: Buffer = Buffer.alloc(0);
      for (;;) {
        const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) {
          break;
        }
        const chunk = buffer.subarray(0, bytesRead);
        allBytes.update(chunk);
        summary.bytes += bytesRead;

        let start = 0;
        let lineFeed = chunk.indexOf(LINE_FEED);
        if (carry.length > 0 && lineFeed >= 0) {
          classify(Buffer.concat([carry, chunk.subarray(0, lineFeed)]));
          carry = Buffer.alloc(0);
          start = lineFeed + 1;
          lineFeed = chunk.indexOf(LINE_FEED, start);
        }
        while (lineFeed >= 0) {
          classify(chunk.subarray(start, lineFeed));
          start = lineFeed + 1;
          lineFeed = chunk.indexOf(LINE_FEED, start);
        }
        carry = Buffer.concat([carry, chunk.subarray(start)]);
      }
      if (carry.length > 0) {
        // A last line without a line feed.
        classify(carry);
      }
    } finally {
      await file.close();
    }
  }

  summary.sha256 = allBytes.digest('hex');
  summary.recordIdsSha256 = recordIds.digest('hex');
  return summary;
}

/** Returns the record id of a line that is a JSON object with a timestamp, or null for any other line. */
function recordIdOf(text: string): string | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return null;
  }
  const record = value as Record<string, unknown>;
  if (record['timestamp'] === undefined || record['timestamp'] === null) {
    return null;
  }
  return String(record['record_id'] ?? '');
}

/** Result of comparing one output with ours. */
export interface OutputCheck {
  /** True when the records kept, in order, are ours. */
  ok: boolean;
  byteIdentical: boolean;
  /** A few words for the results table, such as "byte-identical" or "same records". */
  summary: string;
  /** The full comparison for the notes under the table. */
  note: string;
}

/** Compares a method's output with ours, byte for byte or record by record as the file comment describes. */
export function compareOutputs(output: LinesSummary & { repairedRecords: number }, reference: LinesSummary): OutputCheck {
  if (output.bytes === reference.bytes && output.lines === reference.lines && output.sha256 === reference.sha256) {
    return { ok: true, byteIdentical: true, summary: 'byte-identical', note: `byte-identical (${reference.lines} lines, ${reference.bytes} bytes)` };
  }

  const realRecords = output.records - output.repairedRecords;
  const recordsMatch = realRecords === reference.records && output.recordIdsSha256 === reference.recordIdsSha256;
  const parts = [
    recordsMatch ? `same ${reference.records} records in the same order` : `records differ: ${realRecords} of ours expected ${reference.records}`,
    `${output.lines} lines and ${output.bytes} bytes against our ${reference.lines} and ${reference.bytes}`,
    `malformed lines kept ${output.malformedLines} of our ${reference.malformedLines}, blank ${output.blankLines} of our ${reference.blankLines}`,
  ];
  if (output.repairedRecords > 0) {
    parts.push(`${output.repairedRecords} invalid UTF-8 lines decoded into records`);
  }
  return { ok: recordsMatch, byteIdentical: false, summary: recordsMatch ? 'same records' : 'records differ', note: parts.join('; ') };
}

/** Counts the line feeds in `paths`, plus one for a last line without a line feed in each file. */
export async function countLines(paths: readonly string[]): Promise<number> {
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  let lines = 0;
  for (const path of paths) {
    const file = await open(path, 'r');
    try {
      let lastByte = LINE_FEED;
      for (;;) {
        const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) {
          break;
        }
        const chunk = buffer.subarray(0, bytesRead);
        for (let index = chunk.indexOf(LINE_FEED); index >= 0; index = chunk.indexOf(LINE_FEED, index + 1)) {
          lines++;
        }
        lastByte = chunk[bytesRead - 1]!;
      }
      if (lastByte !== LINE_FEED) {
        lines++;
      }
    } finally {
      await file.close();
    }
  }
  return lines;
}
