/**
 * Scan memory: the compiled walk reads lines in it, and the memory goes back to a
 * pool after each run and comes out with a new generation. Where WebAssembly memory
 * would be unsafe (above 2 GiB, under an address-space limit), the buffers are plain
 * shared memory for the JavaScript walk.
 */

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { acquireScanBuffers, lineWalkAvailable, scanMemoryOf } from '../src/core/line-walk.js';
import { LineScanner } from '../src/core/scanner.js';
import { CLI_PATH, daysAgo, recordLine, runProcess, temporaryDirectory, writeConfig, writeText, type CliResult } from './helpers.js';

const STAMP = '2026-03-15T10:20:30Z';
const STAMP_MS = Date.parse(STAMP);

/** Writes `text` and a line feed at the start of `buffer` and scans it; returns a copy of the facts. */
function scanText(scanner: LineScanner, buffer: Buffer, text: string) {
  const length = buffer.write(text);
  buffer[length] = 0x0a;
  scanner.scanLine(buffer, 0, length);
  return { ...scanner.facts };
}

test('compiled walk reads scan memory', () => {
  assert.ok(lineWalkAvailable(), 'line-walk.wasm did not load; run the build');
  const scanBuffers = acquireScanBuffers(1, 4096);
  const [buffer] = scanBuffers.buffers as [Buffer];
  const slotsTaken = new Int32Array(scanMemoryOf(buffer.buffer)!.buffer, 0, 1);
  const scanner = new LineScanner({ timestampField: 'timestamp', timestampUnit: 'ms' });

  const first = scanText(scanner, buffer, `{"timestamp": "${STAMP}", "schema_name": "auth.events"}`);
  scanText(scanner, buffer, `{"timestamp": "${STAMP}"}`);
  scanBuffers.release();

  // One walk instance bound to the memory, on the first line only.
  assert.equal(slotsTaken[0], 1);
  assert.equal(first.timestampMs, STAMP_MS);
  assert.equal(first.schemaName, 'auth.events');
});

test('released scan memory is reused safely', () => {
  const firstRun = acquireScanBuffers(1, 8192);
  const [firstBuffer] = firstRun.buffers as [Buffer];
  const memory = scanMemoryOf(firstBuffer.buffer);
  const byTimestamp = new LineScanner({ timestampField: 'timestamp', timestampUnit: 'ms' });
  scanText(byTimestamp, firstBuffer, `{"timestamp": "${STAMP}"}`);
  firstRun.release();

  // The next run of the same shape gets the same memory, and its scanner matches another key in the freed slot.
  const secondRun = acquireScanBuffers(1, 8192);
  const [secondBuffer] = secondRun.buffers as [Buffer];
  const byTs = new LineScanner({ timestampField: 'ts', timestampUnit: 'ms' });
  const other = scanText(byTs, secondBuffer, `{"ts": "${STAMP}", "timestamp": "1999-01-01T00:00:00Z"}`);
  // A scanner of the earlier run binds again instead of using the slot that now has the other key.
  const earlier = scanText(byTimestamp, secondBuffer, `{"ts": "1999-01-01T00:00:00Z", "timestamp": "${STAMP}"}`);
  secondRun.release();

  assert.equal(scanMemoryOf(secondBuffer.buffer), memory);
  assert.equal(other.timestampMs, STAMP_MS);
  assert.equal(earlier.timestampMs, STAMP_MS);
});

test('scan memory stays below 2 GiB', () => {
  // The compiled walk returns addresses as signed 32-bit integers; these buffers would end past 2 GiB.
  const large = acquireScanBuffers(2, 1100 * 1024 * 1024);
  const [first] = large.buffers as [Buffer];
  large.release();

  assert.equal(scanMemoryOf(first.buffer), undefined);
  assert.ok(first.buffer instanceof SharedArrayBuffer);
});

/** Runs the CLI under `ulimit -v` (KiB) through sh, which sets the limit for the child. */
function runCliLimited(limitKiB: number, args: string[]): Promise<CliResult> {
  const quoted = [process.execPath, CLI_PATH, ...args].map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(' ');
  return runProcess('sh', ['-c', `ulimit -v ${limitKiB} && exec ${quoted}`]);
}

test('address-space limit uses plain memory', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  // Above the 64 MiB from which a run starts the helper thread, whose start needs address space.
  const expiredLine = recordLine({ timestamp: daysAgo(200), padding: 'x'.repeat(900) });
  const keptLine = recordLine({ timestamp: daysAgo(2), padding: 'y'.repeat(900) });
  const pairs = Math.ceil((70 * 1024 * 1024) / (expiredLine.length + keptLine.length));
  await writeText(join(directory, 'audit', 'logs.jsonl'), (expiredLine + keptLine).repeat(pairs));

  // 12,000,000 KiB: room for Node.js and a worker thread, not for another 10 GiB WebAssembly reservation.
  const limitKiB = 12_000_000;
  const dryRun = await runCliLimited(limitKiB, ['cleanup', '--dry-run', '--json', '--config', configPath]);
  const realRun = await runCliLimited(limitKiB, ['cleanup', '--json', '--config', configPath]);

  assert.equal(dryRun.code, 0, dryRun.stderr);
  assert.equal(JSON.parse(dryRun.stdout).deleted_per_schema['mxcp.endpoints:1'], pairs);
  assert.equal(realRun.code, 0, realRun.stderr);
  assert.equal(JSON.parse(realRun.stdout).deleted_per_schema['mxcp.endpoints:1'], pairs);
});
