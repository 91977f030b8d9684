/**
 * Reads part of a plain log file from a line start to its current end and decides
 * its lines, without writing: stats uses it to count only the bytes appended since
 * the last scan.
 */

import { open } from 'node:fs/promises';

import { DEFAULT_CHUNK_BYTES, MAX_LINE_BYTES } from './file-cleanup.js';
import { LineProcessor, type FileTally } from './line-processor.js';
import type { RetentionRules } from './retention.js';
import type { LineScanner } from './scanner.js';

const LINE_FEED = 0x0a;

/**
 * Scans `path` from byte `start`, which must begin a line, to its end. The last line
 * without a line feed is tallied as the file's tail, as a full scan would.
 */
export async function scanRegion(path: string, start: number, scanner: LineScanner, rules: RetentionRules): Promise<FileTally> {
  const processor = new LineProcessor(scanner, rules, true);
  if (start > 0) {
    processor.continueFile();
  }

  const handle = await open(path, 'r');
  try {
    let buffer = Buffer.allocUnsafe(DEFAULT_CHUNK_BYTES);
    let filled = 0;
    let position = start;
    let inOverlongLine = false;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position);
      if (bytesRead === 0) {
        break;
      }
      position += bytesRead;
      filled += bytesRead;

      let from = 0;
      if (inOverlongLine) {
        const lineFeed = buffer.indexOf(LINE_FEED);
        if (lineFeed < 0 || lineFeed >= filled) {
          processor.tally.keptBytes += filled;
          filled = 0;
          continue;
        }
        from = lineFeed + 1;
        processor.tally.keptBytes += from;
        inOverlongLine = false;
      }

      const lastLineFeed = buffer.lastIndexOf(LINE_FEED, filled - 1);
      if (lastLineFeed >= from) {
        processor.processLines(buffer, from, lastLineFeed + 1);
        from = lastLineFeed + 1;
      }
      buffer.copy(buffer, 0, from, filled);
      filled -= from;

      if (filled === buffer.length) {
        if (buffer.length * 2 <= MAX_LINE_BYTES) {
          const larger = Buffer.allocUnsafe(buffer.length * 2);
          buffer.copy(larger, 0, 0, filled);
          buffer = larger;
        } else {
          processor.countOverlongLine();
          processor.tally.keptBytes += filled;
          filled = 0;
          inOverlongLine = true;
        }
      }
    }
    if (filled > 0) {
      if (inOverlongLine) {
        processor.tally.keptBytes += filled;
      } else {
        processor.finishTail(filled);
      }
    }
    return processor.tally;
  } finally {
    await handle.close();
  }
}
