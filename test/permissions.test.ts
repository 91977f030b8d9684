/**
 * Missing permissions on a log file or directory, with the CLI and the service
 * running as the unprivileged user `nobody` (uid 65534) through setpriv(1). Root
 * ignores permission bits, so these tests need root to switch users and skip otherwise.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { CLI_PATH, NOW, PROJECT_ROOT, daysAgo, recordLine, temporaryDirectory, type CliResult } from './helpers.js';
import { NOBODY, startServe } from './serve-process.js';

const SKIP_REASON =
  process.getuid?.() !== 0
    ? 'permission bits only apply to an unprivileged user, and switching to one needs root; run the suite as root'
    : !existsSync('/usr/bin/setpriv')
      ? 'setpriv(1) from util-linux is missing'
      : false;

const EXPIRED = recordLine({ timestamp: daysAgo(300) });
const KEPT = recordLine({ timestamp: daysAgo(1) });

function runCliAsNobody(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, CLI_PATH, ...args], {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env['PATH'] ?? '', AUDIT_RETENTION_NOW: NOW },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Writes `content` to `path` with the given owner and mode. */
async function writeOwned(path: string, content: string, owner: number, mode: number): Promise<void> {
  await writeFile(path, content);
  await chown(path, owner, owner);
  await chmod(path, mode);
}

/** Creates a directory that the user `nobody` can enter, with a config of one profile per log directory in `profiles`. */
async function fixture(t: TestContext, profiles: string[]): Promise<{ root: string; configPath: string }> {
  const root = await temporaryDirectory(t);
  await chmod(root, 0o755);
  const configPath = join(root, 'audit-retention.yml');
  const sections = profiles.map((name) => `  ${name}:\n    audit:\n      enabled: true\n      path: ${name}/logs.jsonl\n`).join('');
  await writeFile(configPath, `profile: ${profiles[0]}\nprofiles:\n${sections}`);
  return { root, configPath };
}

/** Creates a log directory with the given owner and mode. */
async function logDirectory(root: string, name: string, owner: number, mode: number): Promise<string> {
  const directory = join(root, name);
  await mkdir(directory);
  await chown(directory, owner, owner);
  await chmod(directory, mode);
  return directory;
}

test('unreadable file fails the cleanup', { skip: SKIP_REASON }, async (t) => {
  const { root, configPath } = await fixture(t, ['default']);
  const directory = await logDirectory(root, 'default', NOBODY, 0o755);
  const unreadable = join(directory, 'logs-20260101T000000.jsonl');
  const readable = join(directory, 'logs-20260201T000000.jsonl');
  await writeOwned(unreadable, EXPIRED + KEPT, 0, 0o600);
  await writeOwned(readable, EXPIRED + KEPT, NOBODY, 0o644);

  const result = await runCliAsNobody(['cleanup', '--config', configPath]);

  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`Permission denied: could not read ${unreadable} \\(EACCES\\)\\. Grant the service user read`));
  assert.equal(await readFile(unreadable, 'utf8'), EXPIRED + KEPT);
  assert.equal(await readFile(readable, 'utf8'), KEPT);
});

test('read-only directory fails the cleanup', { skip: SKIP_REASON }, async (t) => {
  const { root, configPath } = await fixture(t, ['default']);
  const directory = await logDirectory(root, 'default', 0, 0o755);
  const logPath = join(directory, 'logs.jsonl');
  await writeOwned(logPath, EXPIRED + KEPT, NOBODY, 0o644);
  await writeOwned(`${logPath}.lock`, '', NOBODY, 0o644);

  const result = await runCliAsNobody(['cleanup', '--config', configPath]);

  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`Permission denied: could not [a-z ]+ ${logPath} \\(EACCES\\)\\. .*write access to its directory`));
  assert.equal(await readFile(logPath, 'utf8'), EXPIRED + KEPT);
});

test('foreign group fails the rewrite', { skip: SKIP_REASON }, async (t) => {
  const { root, configPath } = await fixture(t, ['default']);
  const directory = await logDirectory(root, 'default', NOBODY, 0o755);
  const logPath = join(directory, 'logs.jsonl');
  await writeFile(logPath, EXPIRED + KEPT);
  await chown(logPath, NOBODY, 0);
  await chmod(logPath, 0o664);

  const result = await runCliAsNobody(['cleanup', '--config', configPath]);

  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`Permission denied: could not give the rewritten copy of ${logPath} its owner ${NOBODY}:0 \\(EPERM, fchown\\)\\. Run the cleanup as user ${NOBODY} with group 0`));
  assert.equal(await readFile(logPath, 'utf8'), EXPIRED + KEPT);
});

test('unlistable directory fails the cleanup', { skip: SKIP_REASON }, async (t) => {
  const { root, configPath } = await fixture(t, ['default']);
  const directory = await logDirectory(root, 'default', 0, 0o700);

  const result = await runCliAsNobody(['cleanup', '--config', configPath]);

  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`Permission denied: could not list log directory ${directory} of profile 'default'\\. Grant the service user read and execute access`));
});

test('writer without permission answers 500', { skip: SKIP_REASON }, async (t) => {
  const { root, configPath } = await fixture(t, ['open', 'closed', 'readonly']);
  const open = await logDirectory(root, 'open', NOBODY, 0o755);
  const closed = await logDirectory(root, 'closed', 0, 0o755);
  const readonly = await logDirectory(root, 'readonly', NOBODY, 0o755);
  await writeOwned(join(readonly, 'logs.jsonl'), KEPT, 0, 0o644);
  const serve = await startServe(t, configPath, { asUser: NOBODY });
  const post = async (profile: string) => {
    const response = await fetch(`${serve.baseUrl}/records?profile=${profile}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n": 1}' });
    return { status: response.status, body: (await response.json()) as { code?: string; message: string } };
  };

  const closedAnswer = await post('closed');
  const readonlyAnswer = await post('readonly');
  const openAnswer = await post('open');

  assert.equal(closedAnswer.status, 500);
  assert.equal(closedAnswer.body.code, 'AR_PERMISSION_DENIED');
  assert.match(closedAnswer.body.message, new RegExp(`^Permission denied: could not open the lock file ${join(closed, 'logs.jsonl.lock')} \\(EACCES\\)`));
  assert.equal(readonlyAnswer.status, 500);
  assert.match(readonlyAnswer.body.message, new RegExp(`^Permission denied: could not append to ${join(readonly, 'logs.jsonl')} \\(EACCES\\)\\. Grant the service user read and write access`));
  assert.equal(await readFile(join(readonly, 'logs.jsonl'), 'utf8'), KEPT);
  assert.equal(openAnswer.status, 201);
  assert.match(await readFile(join(open, 'logs.jsonl'), 'utf8'), /"n": 1\}\n$/);
});
