/**
 * Worker thread that classifies the second half of each staging chunk while the
 * main thread classifies the first, so that the staging pass of a large plain log
 * uses two cores. It only reads shared memory and replies with the runs of record
 * lines, the counts and the columns of the records. The main thread does all I/O.
 */

import { isUtf8 } from 'node:buffer';
import { parentPort, workerData } from 'node:worker_threads';

import { LineKind, LineScanner, MALFORMED_KIND_NAMES, type ScannerOptions } from '../scanner.js';
import { ColumnCollector, type RegionColumns } from './columns.js';
import { hasLoneSurrogate, mayContainSurrogateEscape } from './line-repair.js';

export interface StageHelperRequest {
  memory: SharedArrayBuffer;
  start: number;
  end: number;
}

export interface StageHelperReply {
  /** Start and end offsets of runs of consecutive record lines, line feeds included. */
  runs: number[];
  records: number;
  blankLines: number;
  malformedByKind: Record<string, number>;
  /** Length of the longest record line, line feed included, in bytes. */
  longestRecordBytes: number;
  /** Start offsets of record lines that repeat a top-level key, which DuckDB rejects; found only while collecting columns. */
  duplicateKeyLines: number[];
  /** Record lines with a lone surrogate escape, which DuckDB rejects; counted only while collecting columns. */
  loneSurrogateLines: number;
  /** The region's columns, when a collector is given. */
  columns: RegionColumns | null;
}

/** workerData of the helper thread. */
export interface StageHelperInit {
  stageHelper: true;
  scanner: ScannerOptions;
  collectColumns: boolean;
}

const LINE_FEED = 0x0a;

/**
 * Classifies the complete lines in `bytes[start, end)`; the byte at `end - 1` must be a
 * line feed. With a collector, for which the scanner must record member positions, it
 * also collects the columns of the records and looks for the lines that DuckDB would reject.
 */
export function classifyRegion(scanner: LineScanner, bytes: Uint8Array, start: number, end: number, collector: ColumnCollector | null = null): StageHelperReply {
  const reply: StageHelperReply = {
    runs: [],
    records: 0,
    blankLines: 0,
    malformedByKind: {},
    longestRecordBytes: 0,
    duplicateKeyLines: [],
    loneSurrogateLines: 0,
    columns: null,
  };
  scanner.utf8Verified = isUtf8(bytes.subarray(start, end));
  const checkSurrogates = collector !== null && mayContainSurrogateEscape(Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start));
  let runStart = -1;
  let lineStart = start;
  while (lineStart < end) {
    const lineEnd = bytes.indexOf(LINE_FEED, lineStart);
    const kind = scanner.scanLine(bytes, lineStart, lineEnd);
    if (kind === LineKind.RECORD) {
      reply.records++;
      if (lineEnd + 1 - lineStart > reply.longestRecordBytes) {
        reply.longestRecordBytes = lineEnd + 1 - lineStart;
      }
      if (collector !== null) {
        if (collector.commitLine(bytes, lineStart, lineEnd, scanner.members!)) {
          reply.duplicateKeyLines.push(lineStart);
        }
        if (checkSurrogates && hasLoneSurrogate(bytes, lineStart, lineEnd)) {
          reply.loneSurrogateLines++;
        }
      }
      if (runStart < 0) {
        runStart = lineStart;
      }
    } else {
      if (runStart >= 0) {
        reply.runs.push(runStart, lineStart);
        runStart = -1;
      }
      if (kind === LineKind.BLANK) {
        reply.blankLines++;
      } else {
        const name = MALFORMED_KIND_NAMES[kind]!;
        reply.malformedByKind[name] = (reply.malformedByKind[name] ?? 0) + 1;
      }
    }
    lineStart = lineEnd + 1;
  }
  if (runStart >= 0) {
    reply.runs.push(runStart, end);
  }
  reply.columns = collector?.takeRegion() ?? null;
  return reply;
}

if (parentPort !== null && workerData !== null && (workerData as { stageHelper?: boolean }).stageHelper === true) {
  const init = workerData as StageHelperInit;
  const collector = init.collectColumns ? new ColumnCollector() : null;
  const scanner = new LineScanner({ ...init.scanner, extractLabels: false, recordMembers: init.collectColumns });
  const port = parentPort;
  port.on('message', (request: StageHelperRequest) => {
    port.postMessage(classifyRegion(scanner, new Uint8Array(request.memory), request.start, request.end, collector));
  });
}
