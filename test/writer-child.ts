/**
 * A writer process for the concurrency test: appends `count` numbered records
 * through the library's AuditLogWriter, in batches of 1 to 20 with short pauses.
 *
 * Usage: node dist/test/writer-child.js LOG_PATH PREFIX COUNT MAX_FILE_SIZE
 * Record N carries `seq: "PREFIX-N"`. Every fifth record has no timestamp, so the
 * writer fills in the fixed clock NOW and the record is kept. Of the others, those
 * whose N is a multiple of 3 are expired. The process prints `done COUNT` and exits 0.
 */

import { setTimeout as sleep } from 'node:timers/promises';

import { AuditLogWriter } from '../src/index.js';
import { DAY_MS, NOW_MS, randomSource } from './helpers.js';

/** Timestamps of the records: 60 days old (expired under the test's 30-day retention) or 1 day old. */
export const EXPIRED_TIMESTAMP = new Date(NOW_MS - 60 * DAY_MS).toISOString();
export const KEPT_TIMESTAMP = new Date(NOW_MS - DAY_MS).toISOString();

/** Returns whether record `sequence` of a writer child is expired, by the rules of the header. */
export function childRecordExpired(sequence: number): boolean {
  return sequence % 5 !== 0 && sequence % 3 === 0;
}

async function main(): Promise<void> {
  const [logPath, prefix, countText, maxFileSizeText] = process.argv.slice(2);
  if (logPath === undefined || prefix === undefined || countText === undefined || maxFileSizeText === undefined) {
    throw new Error('usage: writer-child.js LOG_PATH PREFIX COUNT MAX_FILE_SIZE');
  }
  const count = Number(countText);
  const random = randomSource([...prefix].reduce((sum, char) => sum * 31 + char.charCodeAt(0), 7));
  const writer = await AuditLogWriter.open({ logPath, maxFileSize: Number(maxFileSizeText), now: () => NOW_MS, lockTimeoutMs: 30_000 });

  let sequence = 1;
  while (sequence <= count) {
    const batch: Record<string, unknown>[] = [];
    const size = 1 + Math.floor(random() * 20);
    for (; batch.length < size && sequence <= count; sequence++) {
      const record: Record<string, unknown> = { schema_name: 'mxcp.endpoints', schema_version: 1, seq: `${prefix}-${sequence}`, operation_type: 'tool' };
      if (sequence % 5 !== 0) {
        record['timestamp'] = childRecordExpired(sequence) ? EXPIRED_TIMESTAMP : KEPT_TIMESTAMP;
      }
      batch.push(record);
    }
    await writer.append(batch);
    await sleep(Math.floor(random() * 4));
  }
  await writer.close();
  process.stdout.write(`done ${count}\n`);
}

// Only when run as a program; the test imports the rules above.
if (process.argv[1]?.endsWith('writer-child.js')) {
  main().catch((error: unknown) => {
    process.stderr.write(`writer-child failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}
