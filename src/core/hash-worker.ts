/**
 * Worker thread that computes the SHA-256 of a run's deleted lines, so the main
 * thread only copies the bytes. Messages arrive in file and line order, and each
 * file hashes into a copy of the run's state that replaces it only when the file's
 * change was committed, as in DeletedLinesDigest.
 */

import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

import type { DigestReply, DigestRequest } from './digest.js';

let runHash: Hash = createHash('sha256');
let fileHash: Hash | null = null;

parentPort!.on('message', (request: DigestRequest) => {
  let reply: DigestReply | null = null;
  switch (request.type) {
    case 'begin':
      fileHash = runHash.copy();
      break;
    case 'add':
      fileHash?.update(new Uint8Array(request.bytes));
      reply = { type: 'added', bytes: request.bytes.byteLength };
      break;
    case 'shared':
      for (let index = 0; index < request.ranges.length; index += 2) {
        const start = request.ranges[index]!;
        fileHash?.update(new Uint8Array(request.memory, request.offset + start, request.ranges[index + 1]! - start));
      }
      reply = { type: 'shared' };
      break;
    case 'end':
      if (request.committed && fileHash !== null) {
        runHash = fileHash;
      }
      fileHash = null;
      break;
    case 'digest':
      reply = { type: 'digest', hex: runHash.copy().digest('hex') };
      break;
  }
  if (reply !== null) {
    parentPort!.postMessage(reply);
  }
});
