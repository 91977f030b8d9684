/**
 * A second thread that scans half of each chunk, so that the scan of a large
 * plain file uses two cores. The main thread keeps the order of kept runs and
 * does all I/O; the helper only decides lines in shared memory.
 */

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

import { isDigestReply, type DigestChannel, type DigestReply } from './digest.js';
import { scanMemoryOf } from './line-walk.js';
import type { SerializedTally } from './line-processor.js';
import type { RetentionInputs } from './retention.js';
import type { ScannerOptions } from './scanner.js';

/** Smallest region worth splitting, in bytes: below it the message round trip (tens of µs) costs more than half a scan. */
export const MIN_SPLIT_BYTES = 256 * 1024;

/** Smallest total size of plain log files for which a run starts the helper, in bytes; starting it costs about 30 ms. */
export const MIN_HELPER_TOTAL_BYTES = 64 * 1024 * 1024;

export interface ScanHelperInit {
  scanner: ScannerOptions;
  retention: RetentionInputs;
  nowMs: number;
  countFacets: boolean;
}

export type ScanHelperRequest =
  /** Makes `memory` the scan memory that later requests without their own memory read. */
  | { type: 'bind'; memory: WebAssembly.Memory }
  /** `memory` null: the bound scan memory. Positions index the whole memory. */
  | { type: 'lines'; memory: SharedArrayBuffer | null; start: number; end: number }
  | { type: 'tally' };

export type ScanHelperReply =
  /** Sent once, when the helper thread has loaded its modules and takes requests. */
  | { type: 'ready' }
  /** `busyMs`: time the helper spent on this scan and on the digest work it did since the previous scan, in ms. */
  | { type: 'lines'; deleted: number; keptRuns: number[]; busyMs: number }
  | { type: 'tally'; tally: SerializedTally };

/** True when this machine has a second core for the helper. */
export function helperUseful(): boolean {
  return availableParallelism() > 1;
}

export class ScanHelper {
  private readonly pending: { resolve: (reply: ScanHelperReply) => void; reject: (error: Error) => void }[] = [];

  /**
   * Share of each region that the calling thread scans itself, between 0 and 1. It
   * follows the measured speeds of both threads, because the calling thread also does
   * the I/O and its scans run slower or faster than the helper's depending on load.
   */
  localShare = 0.5;

  /**
   * True once the helper thread has started. Until then the calling thread scans
   * everything itself: starting a thread takes tens of milliseconds, as long as
   * scanning a small file alone.
   */
  ready = false;
  private readonly readyWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private failure: Error | null = null;

  /** True when a scan was requested since the last tally. */
  private scannedSinceTally = false;

  /** The scan memory the helper thread has registered; it is sent once, not with every request. */
  private boundMemory: WebAssembly.Memory | null = null;

  private digestReplyHandler: ((reply: DigestReply) => void) | null = null;
  private digestErrorHandler: ((error: Error) => void) | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: ScanHelperReply | DigestReply) => {
      if (isDigestReply(reply)) {
        this.digestReplyHandler?.(reply);
      } else if (reply.type === 'ready') {
        this.ready = true;
        for (const waiter of this.readyWaiters.splice(0)) waiter.resolve();
      } else {
        this.pending.shift()?.resolve(reply);
      }
    });
    worker.on('error', (error) => this.fail(error));
    worker.on('exit', (code) => this.fail(new Error(`scan helper thread exited with code ${code}`)));
  }

  static start(init: ScanHelperInit): ScanHelper {
    return new ScanHelper(new Worker(new URL('./scan-worker.js', import.meta.url), { workerData: init }));
  }

  /** Resolves when the helper thread takes requests, or rejects when it failed to start. */
  started(): Promise<void> {
    if (this.ready) {
      return Promise.resolve();
    }
    if (this.failure !== null) {
      return Promise.reject(this.failure);
    }
    return new Promise((resolve, reject) => {
      this.readyWaiters.push({ resolve, reject });
    });
  }

  /** Decides the lines in `memory[start, end)`; same contract as LineProcessor.processLines. */
  async scanLines(memory: SharedArrayBuffer, start: number, end: number): Promise<{ deleted: number; keptRuns: number[]; busyMs: number }> {
    // A scan memory goes to the helper once: a memory posted with each request would
    // arrive as a new object each time, and the helper would compile its walk again.
    const scanMemory = scanMemoryOf(memory);
    if (scanMemory !== undefined && scanMemory !== this.boundMemory) {
      this.worker.postMessage({ type: 'bind', memory: scanMemory } satisfies ScanHelperRequest);
      this.boundMemory = scanMemory;
    }

    this.scannedSinceTally = true;
    const reply = await this.request({ type: 'lines', memory: scanMemory === undefined ? memory : null, start, end });
    if (reply.type !== 'lines') {
      throw new Error('scan helper thread replied out of order');
    }
    return reply;
  }

  /**
   * Returns the tally of everything scanned since the last call, and starts a new
   * one. Returns null without a round trip when the helper scanned nothing since, so
   * a file that the helper took no part in does not wait for it to start.
   */
  async takeTally(): Promise<SerializedTally | null> {
    if (!this.scannedSinceTally) {
      return null;
    }
    this.scannedSinceTally = false;
    const reply = await this.request({ type: 'tally' });
    if (reply.type !== 'tally') {
      throw new Error('scan helper thread replied out of order');
    }
    return reply.tally;
  }

  /** A channel to the helper thread for the digest of deleted lines, which it computes between scans. */
  digestChannel(): DigestChannel {
    return {
      ready: () => this.ready,
      post: (request, transfer = []) => this.worker.postMessage(request, transfer),
      onReply: (handler) => {
        this.digestReplyHandler = handler;
      },
      onError: (handler) => {
        this.digestErrorHandler = handler;
      },
    };
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }

  private request(request: ScanHelperRequest): Promise<ScanHelperReply> {
    if (this.failure !== null) {
      return Promise.reject(this.failure);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.worker.postMessage(request);
    });
  }

  private fail(error: Error): void {
    this.failure = error;
    this.digestErrorHandler?.(error);
    for (const waiter of [...this.pending.splice(0), ...this.readyWaiters.splice(0)]) {
      waiter.reject(error);
    }
  }
}
