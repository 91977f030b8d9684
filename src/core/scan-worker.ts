/**
 * Worker thread that decides lines for the main thread: the main thread reads a
 * chunk into shared memory and scans one part while this worker scans the other.
 * Decisions are the same as on the main thread, because both build the same rules
 * from the same inputs and clock. In a real run the worker also computes the
 * SHA-256 of the deleted lines (see DigestState), one thread fewer than a separate
 * hashing worker would need.
 */

import { parentPort, workerData } from 'node:worker_threads';

import { DigestState, isDigestRequest } from './digest.js';
import { LineProcessor } from './line-processor.js';
import { registerScanMemory } from './line-walk.js';
import { RetentionRules } from './retention.js';
import { LineScanner } from './scanner.js';
import type { ScanHelperInit, ScanHelperReply, ScanHelperRequest } from './scan-helper.js';
import type { DigestRequest } from './digest.js';

const init = workerData as ScanHelperInit;
const rules = new RetentionRules(init.retention, init.nowMs);
const scanner = new LineScanner(init.scanner);
const digest = new DigestState();

let processor = newProcessor();

/** The bytes of the scan memory last bound by the main thread. */
let boundBytes: Buffer | null = null;

/** Time spent on digest requests since the last reply to a scan, in ms. The main thread balances the split on it. */
let digestMs = 0;

function newProcessor(): LineProcessor {
  const fresh = new LineProcessor(scanner, rules, init.countFacets);
  fresh.continueFile();
  return fresh;
}

parentPort!.on('message', (request: ScanHelperRequest | DigestRequest) => {
  if (isDigestRequest(request)) {
    const startedAt = performance.now();
    const reply = digest.handle(request);
    digestMs += performance.now() - startedAt;
    if (reply !== null) {
      parentPort!.postMessage(reply);
    }
    return;
  }

  if (request.type === 'bind') {
    registerScanMemory(request.memory);
    boundBytes = Buffer.from(request.memory.buffer);
    return;
  }

  let reply: ScanHelperReply;
  if (request.type === 'lines') {
    // A Buffer, not a plain Uint8Array: on shared memory, Buffer#indexOf is a native byte search, while
    // Uint8Array#indexOf reads element by element (about ten times slower on Node.js 20).
    const bytes = request.memory === null ? boundBytes! : Buffer.from(request.memory);
    const startedAt = performance.now();
    const deleted = processor.processLines(bytes, request.start, request.end);
    reply = { type: 'lines', deleted, keptRuns: processor.keptRuns.slice(), busyMs: performance.now() - startedAt + digestMs };
    digestMs = 0;
  } else {
    reply = { type: 'tally', tally: processor.tally.serialize() };
    processor = newProcessor();
  }
  parentPort!.postMessage(reply);
});

parentPort!.postMessage({ type: 'ready' } satisfies ScanHelperReply);
