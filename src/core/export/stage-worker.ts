/**
 * Worker thread that classifies the second half of each staging chunk while the
 * main thread classifies the first, so that the staging pass of a large plain log
 * uses two cores. It only reads shared memory and replies with the runs of record
 * lines and the counts; the main thread does all I/O.
 */

import { isUtf8 } from 'node:buffer';
import { parentPort, workerData } from 'node:worker_threads';

import { LineKind, LineScanner, MALFORMED_KIND_NAMES, type ScannerOptions } from '../scanner.js';

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
}

const LINE_FEED = 0x0a;

/** Classifies the complete lines in `bytes[start, end)`; the byte at `end - 1` must be a line feed. */
export function classifyRegion(scanner: LineScanner, bytes: Uint8Array, start: number, end: number): StageHelperReply {
  const reply: StageHelperReply = { runs: [], records: 0, blankLines: 0, malformedByKind: {} };
  scanner.utf8Verified = isUtf8(bytes.subarray(start, end));
  let runStart = -1;
  let lineStart = start;
  while (lineStart < end) {
    const lineEnd = bytes.indexOf(LINE_FEED, lineStart);
    const kind = scanner.scanLine(bytes, lineStart, lineEnd);
    if (kind === LineKind.RECORD) {
      reply.records++;
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
  return reply;
}

if (parentPort !== null && workerData !== null && (workerData as { stageHelper?: boolean }).stageHelper === true) {
  const scanner = new LineScanner({ ...(workerData as { scanner: ScannerOptions }).scanner, extractLabels: false });
  const port = parentPort;
  port.on('message', (request: StageHelperRequest) => {
    port.postMessage(classifyRegion(scanner, new Uint8Array(request.memory), request.start, request.end));
  });
}
