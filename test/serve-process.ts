/** The `serve` command as a child process on a loopback port, with its pino log lines, for signal and permission tests. */

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { TestContext } from 'node:test';

import { CLI_PATH, NOW, PROJECT_ROOT } from './helpers.js';

/** Unprivileged user and group of Debian's `nobody`, for tests that need permission bits to apply. */
export const NOBODY = 65534;

export interface ServeProcess {
  child: ChildProcess;
  baseUrl: string;
  /** Parsed log lines so far. */
  logs: { msg?: string; [key: string]: unknown }[];
  /** Resolves with the first log line, past or future, whose `msg` is `message`. */
  waitForLog(message: string): Promise<Record<string, unknown>>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') {
    throw new Error('no port assigned');
  }
  return address.port;
}

/**
 * Starts `audit-retention serve --config CONFIG` and resolves once it logs
 * "service started". With `asUser`, runs it through setpriv(1) as that uid and gid.
 */
export async function startServe(t: TestContext, configPath: string, options: { asUser?: number; env?: Record<string, string> } = {}): Promise<ServeProcess> {
  const port = await freePort();
  const command = [process.execPath, CLI_PATH, 'serve', '--config', configPath];
  const argv =
    options.asUser === undefined
      ? command
      : ['setpriv', `--reuid=${options.asUser}`, `--regid=${options.asUser}`, '--clear-groups', ...command];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', AUDIT_RETENTION_NOW: NOW, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(() => {
    child.kill('SIGKILL');
  });

  const logs: ServeProcess['logs'] = [];
  const waiters: { message: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  let buffered = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = JSON.parse(buffered.slice(0, newline)) as ServeProcess['logs'][number];
      buffered = buffered.slice(newline + 1);
      logs.push(line);
      for (const waiter of waiters.filter((candidate) => candidate.message === line.msg)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });

  const waitForLog = (message: string): Promise<Record<string, unknown>> => {
    const seen = logs.find((line) => line.msg === message);
    if (seen !== undefined) {
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      waiters.push({ message, resolve });
      void exited.then((code) => reject(new Error(`serve exited with ${code} before logging '${message}': ${stderr}`)));
    });
  };

  await waitForLog('service started');
  return { child, baseUrl: `http://127.0.0.1:${port}`, logs, waitForLog, exited };
}
