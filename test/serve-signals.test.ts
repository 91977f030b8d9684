/** Signals of the `serve` command as a real process: SIGHUP reopens the writers' files, SIGTERM drains pending appends. */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { daysAgo, recordLine, temporaryDirectory, writeConfig, writeText } from './helpers.js';
import { startServe } from './serve-process.js';

async function postRecord(baseUrl: string, line: string): Promise<{ status: number; body: { path?: string; records_appended?: number } }> {
  const response = await fetch(`${baseUrl}/records`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: line });
  return { status: response.status, body: (await response.json()) as { path?: string } };
}

test('SIGHUP reopens the log file', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logPath = join(directory, 'audit', 'logs.jsonl');
  await writeText(join(directory, 'audit', '.keep'), '');
  const serve = await startServe(t, configPath);

  const first = await postRecord(serve.baseUrl, recordLine({ timestamp: daysAgo(1) }));
  // An operator starts a new segment, and the writer keeps its open file until SIGHUP.
  const segment = join(directory, 'audit', 'logs-20300101T000000.jsonl');
  await writeText(segment, '');
  const beforeSignal = await postRecord(serve.baseUrl, recordLine({ timestamp: daysAgo(1) }));
  serve.child.kill('SIGHUP');
  await serve.waitForLog('writer reopens its log file at the next batch');
  const afterSignal = await postRecord(serve.baseUrl, recordLine({ timestamp: daysAgo(1) }));

  assert.equal(first.status, 201);
  assert.equal(first.body.path, logPath);
  assert.equal(beforeSignal.body.path, logPath);
  assert.equal(afterSignal.status, 201);
  assert.equal(afterSignal.body.path, segment);
  assert.equal((await serve.waitForLog('reopening log files'))['writers'], 1);
});

test('SIGTERM drains a pending append', async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logPath = join(directory, 'audit', 'logs.jsonl');
  await writeText(join(directory, 'audit', '.keep'), '');
  await writeFile(`${logPath}.lock`, '');
  const serve = await startServe(t, configPath);

  // flock(1) holds the lock, so the append waits in the writer while the signal arrives.
  const holder = spawn('flock', [`${logPath}.lock`, '-c', 'echo ready; sleep 1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    holder.kill('SIGKILL');
  });
  await once(holder.stdout!, 'data');
  const line = recordLine({ timestamp: daysAgo(1) });
  const pending = postRecord(serve.baseUrl, line);
  await serve.waitForLog('writer started');
  await sleep(100);
  serve.child.kill('SIGTERM');

  const response = await pending;
  const code = await serve.exited;

  assert.equal(response.status, 201);
  assert.equal(response.body.records_appended, 1);
  assert.equal(await readFile(logPath, 'utf8'), line);
  assert.equal(code, 0);
  const messages = serve.logs.map((entry) => entry.msg);
  assert.ok(messages.indexOf('service stopping') < messages.indexOf('records appended'), messages.join(' | '));
  assert.ok(messages.indexOf('records appended') < messages.indexOf('writer stopped'), messages.join(' | '));
  assert.ok(messages.indexOf('writer stopped') < messages.indexOf('service stopped'), messages.join(' | '));
});
