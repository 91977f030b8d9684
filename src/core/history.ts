/**
 * The cleanup history: one JSON line per real cleanup, appended to `STEM_cleanup.jsonl`
 * beside the log, so that what was deleted, when, by whom and under which cutoffs
 * survives restarts and can be audited. The file is never a log segment.
 */

import { open, readFile } from 'node:fs/promises';

import type { HistoryRecord } from '../schemas/history.js';
import { cleanupHistoryPathFor } from './layout.js';

/** One history line; its schema in src/schemas/history.ts is part of the contract with auditors. */
export type CleanupHistoryRecord = HistoryRecord;

/** Appends one record in a single write and fsyncs it, so a crash leaves whole lines only. */
export async function appendCleanupRecord(logPath: string, record: CleanupHistoryRecord): Promise<void> {
  const handle = await open(cleanupHistoryPathFor(logPath), 'a', 0o644);
  try {
    await handle.write(`${JSON.stringify(record)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Reads the history, newest first, at most `limit` records. Lines that do not parse
 * (a torn last line after a crash, say) are skipped.
 */
export async function readCleanupHistory(logPath: string, limit: number): Promise<CleanupHistoryRecord[]> {
  const text = await readFile(cleanupHistoryPathFor(logPath), 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  const records: CleanupHistoryRecord[] = [];
  const lines = text.split('\n');
  for (let index = lines.length - 1; index >= 0 && records.length < limit; index--) {
    const line = lines[index]!;
    if (line.trim() === '') continue;
    try {
      records.push(JSON.parse(line) as CleanupHistoryRecord);
    } catch {
      // Skipped, see above.
    }
  }
  return records;
}

/** Bytes read from the end of the history to find its newest record; one record is about 1 KiB. */
const LAST_RECORD_WINDOW_BYTES = 256 * 1024;

/** Returns the newest record, or null before the first cleanup. Reads only the end of the file. */
export async function readLastCleanup(logPath: string): Promise<CleanupHistoryRecord | null> {
  const handle = await open(cleanupHistoryPathFor(logPath), 'r').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (handle === null) {
    return null;
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, LAST_RECORD_WINDOW_BYTES);
    const tail = Buffer.alloc(length);
    await handle.read(tail, 0, length, size - length);
    const lines = tail.toString('utf8').split('\n');
    for (let index = lines.length - 1; index >= 0; index--) {
      try {
        return JSON.parse(lines[index]!) as CleanupHistoryRecord;
      } catch {
        // An empty or torn line: look further back.
      }
    }
    return null;
  } finally {
    await handle.close();
  }
}
