/**
 * Rewrites staging lines that JSON.parse accepts but DuckDB's JSON reader rejects,
 * so that every record of the staging files becomes a row. Used only after DuckDB
 * failed on the staging files, because it reads every line again.
 *
 * Two kinds of line need it: lone UTF-16 surrogate escapes (`"\ud800"`), which become
 * `\ufffd`, and duplicate keys in the top-level object (pino writes them when a child
 * logger and a log call set the same key). A line with duplicate keys is written
 * again by JSON.stringify(JSON.parse(line)): the last value wins, as in JSON.parse.
 */

import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

import { repairLineForDuckDB } from './line-repair.js';
import { StagingWriter, type StagingFiles } from './staging-writer.js';

const LINE_FEED = 0x0a;
const READ_BYTES = 4 * 1024 * 1024;

/**
 * Copies the staging files into `directory` with every line repaired for DuckDB,
 * and returns the new part files; `repairedRecords` counts the lines changed.
 */
export async function repairStagingFiles(paths: readonly string[], directory: string): Promise<StagingFiles> {
  const writer = await StagingWriter.create(directory, { durable: false });
  let repaired = 0;
  try {
    for (const path of paths) {
      const handle = await open(path, constants.O_RDONLY);
      try {
        let buffer = Buffer.allocUnsafe(READ_BYTES);
        let filled = 0;
        for (;;) {
          if (filled === buffer.length) {
            const larger = Buffer.allocUnsafe(buffer.length * 2);
            buffer.copy(larger, 0, 0, filled);
            buffer = larger;
          }
          const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null);
          filled += bytesRead;
          const end = bytesRead === 0 ? filled : buffer.lastIndexOf(LINE_FEED, filled - 1) + 1;
          const slices: Buffer[] = [];
          let lineStart = 0;
          while (lineStart < end) {
            let lineEnd = buffer.indexOf(LINE_FEED, lineStart);
            if (lineEnd < 0 || lineEnd >= end) {
              lineEnd = end - 1;
            }
            const line = buffer.subarray(lineStart, lineEnd + 1);
            const fixed = repairLineForDuckDB(line);
            if (fixed !== null) {
              repaired++;
            }
            slices.push(fixed ?? line);
            lineStart = lineEnd + 1;
          }
          await writer.writeLines(slices);
          buffer.copy(buffer, 0, end, filled);
          filled -= end;
          if (bytesRead === 0) {
            break;
          }
        }
      } finally {
        await handle.close();
      }
    }
    const files = await writer.close();
    return { ...files, repairedRecords: repaired };
  } catch (error) {
    await writer.abort();
    throw error;
  }
}
