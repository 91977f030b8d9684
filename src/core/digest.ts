/**
 * The SHA-256 of a run's deleted lines, for the cleanup history, computed on the
 * main thread or, for large logs, on a worker thread.
 */

import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

import type { DeletedLinesSink } from './file-cleanup.js';

/** The digest of a run: lines go to the current file, which joins the run's digest only when committed. */
export interface RunDigest extends DeletedLinesSink {
  beginFile(): void;
  endFile(committed: boolean): void;
  digest(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Computes the digest on the calling thread. Each file hashes into a copy of the
 * run's state, which becomes the run's state only when the file's change is
 * committed, so a file that failed half way leaves no trace in the digest.
 */
export class DeletedLinesDigest implements RunDigest {
  private runHash: Hash = createHash('sha256');
  private fileHash: Hash | null = null;

  beginFile(): void {
    this.fileHash = this.runHash.copy();
  }

  add(bytes: Uint8Array): void {
    this.fileHash?.update(bytes);
  }

  async flush(): Promise<void> {}

  endFile(committed: boolean): void {
    if (committed && this.fileHash !== null) {
      this.runHash = this.fileHash;
    }
    this.fileHash = null;
  }

  async digest(): Promise<string> {
    return this.runHash.copy().digest('hex');
  }

  async close(): Promise<void> {}
}

export type DigestRequest =
  | { type: 'begin' }
  | { type: 'add'; bytes: ArrayBuffer }
  | { type: 'shared'; memory: SharedArrayBuffer; offset: number; ranges: number[] }
  | { type: 'end'; committed: boolean }
  | { type: 'digest' };

export type DigestReply = { type: 'added'; bytes: number } | { type: 'shared' } | { type: 'digest'; hex: string };

/** Bytes collected before they are sent to the worker in one message. */
const BATCH_BYTES = 1024 * 1024;

/** Bytes sent but not yet hashed beyond which `drain` waits, so memory stays bounded when hashing lags. */
const MAX_OUTSTANDING_BYTES = 32 * 1024 * 1024;

/**
 * Computes the digest on a worker thread. The main thread copies the deleted bytes
 * (a memcpy, about ten times cheaper than SHA-256) and sends them in batches.
 */
export class ThreadedDigest implements RunDigest {
  private batch = Buffer.allocUnsafe(BATCH_BYTES);
  private batchLength = 0;
  private outstanding = 0;
  private readonly drained: (() => void)[] = [];
  private pendingDigest: ((hex: string) => void) | null = null;
  /** Resolvers of `addShared` calls, in the order the worker replies to them. */
  private readonly sharedDone: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private failure: Error | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: DigestReply) => {
      if (reply.type === 'shared') {
        this.sharedDone.shift()?.resolve();
      } else if (reply.type === 'added') {
        this.outstanding -= reply.bytes;
        if (this.outstanding <= MAX_OUTSTANDING_BYTES) {
          for (const resolve of this.drained.splice(0)) resolve();
        }
      } else {
        this.pendingDigest?.(reply.hex);
        this.pendingDigest = null;
      }
    });
    worker.on('error', (error) => {
      this.failure = error;
      for (const waiter of this.sharedDone.splice(0)) waiter.reject(error);
    });
  }

  static start(): ThreadedDigest {
    return new ThreadedDigest(new Worker(new URL('./hash-worker.js', import.meta.url)));
  }

  private post(request: DigestRequest, transfer: ArrayBuffer[] = []): void {
    if (this.failure !== null) {
      throw this.failure;
    }
    this.worker.postMessage(request, transfer);
  }

  beginFile(): void {
    this.post({ type: 'begin' });
  }

  add(bytes: Uint8Array): void {
    let offset = 0;
    while (offset < bytes.length) {
      const taken = Math.min(bytes.length - offset, this.batch.length - this.batchLength);
      this.batch.set(bytes.subarray(offset, offset + taken), this.batchLength);
      this.batchLength += taken;
      offset += taken;
      if (this.batchLength === this.batch.length) {
        this.sendBatch();
      }
    }
  }

  /** Hands ranges of a shared buffer to the worker, which hashes them in place; resolves when it has. */
  addShared(buffer: Buffer, ranges: readonly number[]): Promise<void> {
    // Bytes sent by `add` earlier come first, so the order of lines holds.
    this.sendBatch();
    return new Promise<void>((resolve, reject) => {
      this.sharedDone.push({ resolve, reject });
      this.post({ type: 'shared', memory: buffer.buffer as SharedArrayBuffer, offset: buffer.byteOffset, ranges: [...ranges] });
    });
  }

  private sendBatch(): void {
    if (this.batchLength === 0) {
      return;
    }
    const bytes = this.batch.buffer.slice(this.batch.byteOffset, this.batch.byteOffset + this.batchLength);
    this.outstanding += this.batchLength;
    this.batchLength = 0;
    this.post({ type: 'add', bytes }, [bytes]);
  }

  /** Sends what was collected and waits while too many bytes await hashing. */
  async drain(): Promise<void> {
    this.sendBatch();
    while (this.outstanding > MAX_OUTSTANDING_BYTES && this.failure === null) {
      await new Promise<void>((resolve) => this.drained.push(resolve));
    }
  }

  async flush(): Promise<void> {}

  endFile(committed: boolean): void {
    this.sendBatch();
    this.post({ type: 'end', committed });
  }

  async digest(): Promise<string> {
    this.sendBatch();
    const hex = new Promise<string>((resolve) => {
      this.pendingDigest = resolve;
    });
    this.post({ type: 'digest' });
    return hex;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
