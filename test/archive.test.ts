/**
 * Archive before delete: the archive contains exactly the deleted records, is durable
 * before the log changes, and a kill at any moment leaves every expired record in the
 * log, in the archive, or in both.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';

import { DuckDBInstance } from '@duckdb/node-api';
import request from 'supertest';

import { buildApp } from '../src/app.js';
import { CLI_PATH, NOW, daysAgo, recordLine, runCli, temporaryDirectory, testSettings, writeConfig, writeText } from './helpers.js';

async function setup(t: Parameters<typeof temporaryDirectory>[0], recordsPerFile = 3) {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory);
  const logDirectory = join(directory, 'audit');
  const expired: string[] = [];
  const kept: string[] = [];
  for (const [index, name] of ['logs-20250101T000000.jsonl', 'logs-20260601T000000.jsonl', 'logs-20261201T000000.jsonl'].entries()) {
    let content = '';
    for (let line = 0; line < recordsPerFile; line++) {
      const old = (line + index) % 2 === 0;
      const text = recordLine({ timestamp: daysAgo(old ? 120 + line / 1000 : 5), sequence: `${index}-${line}` });
      (old ? expired : kept).push(text);
      content += text;
    }
    await writeText(join(logDirectory, name), content);
  }
  return { directory, configPath, logDirectory, expired, kept, archiveDirectory: join(directory, 'exports', 'archive', 'default') };
}

async function logLines(logDirectory: string): Promise<string[]> {
  const lines: string[] = [];
  for (const name of (await readdir(logDirectory)).sort()) {
    if (/^logs-\d{8}T\d{6}\.jsonl$/.test(name)) {
      lines.push(...(await readFile(join(logDirectory, name), 'utf8')).split(/(?<=\n)/).filter((line) => line !== ''));
    }
  }
  return lines;
}

async function archivedLines(archiveDirectory: string): Promise<string[]> {
  const names = await readdir(archiveDirectory).catch(() => [] as string[]);
  const lines: string[] = [];
  for (const name of names.filter((entry) => entry.endsWith('.jsonl'))) {
    lines.push(...(await readFile(join(archiveDirectory, name), 'utf8')).split(/(?<=\n)/).filter((line) => line !== ''));
  }
  return lines;
}

test('jsonl archive holds the deleted bytes', async (t) => {
  const fixture = await setup(t);

  const result = await runCli(['cleanup', '--json', '--archive', 'jsonl', '--config', fixture.configPath]);

  const body = JSON.parse(result.stdout);
  assert.equal(result.code, 0);
  assert.equal(body.details.archive.records, fixture.expired.length);
  assert.equal(body.details.archive.format, 'jsonl');
  assert.equal(await readFile(body.details.archive.path, 'utf8'), fixture.expired.join(''));
  assert.deepEqual(await logLines(fixture.logDirectory), fixture.kept);
  const history = JSON.parse((await readFile(join(fixture.logDirectory, 'logs_cleanup.jsonl'), 'utf8')).trim());
  assert.deepEqual(history.archive, { path: body.details.archive.path, records: fixture.expired.length });
});

test('parquet archive over HTTP', async (t) => {
  const fixture = await setup(t);
  const app = await buildApp(testSettings(fixture.configPath));
  await app.ready();
  t.after(() => app.close());

  const response = await request(app.server).post('/cleanup?archive=parquet').expect(200);

  const archive = response.body.details.archive;
  assert.match(archive.path, /audit-archive-default-\d{8}T\d{6}Z-[0-9a-f]{8}\.parquet$/);
  assert.equal(archive.records, fixture.expired.length);
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  t.after(() => {
    connection.closeSync();
    instance.closeSync();
  });
  const rows = (await connection.runAndReadAll(`SELECT sequence FROM read_parquet('${archive.path}') ORDER BY sequence`)).getRowsJS();
  assert.deepEqual(
    rows.map((row) => row[0]),
    fixture.expired.map((line) => JSON.parse(line).sequence).sort(),
  );
});

test('dry run writes no archive', async (t) => {
  const fixture = await setup(t);

  const result = await runCli(['cleanup', '--dry-run', '--json', '--archive', 'jsonl', '--config', fixture.configPath]);

  assert.equal(JSON.parse(result.stdout).details.archive, null);
  assert.deepEqual(await readdir(fixture.archiveDirectory).catch(() => []), []);
});

test('kill never loses an expired record', async (t) => {
  const fixture = await setup(t, 3000);
  const original = new Set([...fixture.expired, ...fixture.kept]);

  // Kill the archiving cleanup at growing delays, then let a full run finish the job.
  for (const delayMs of [5, 15, 30, 60, 90, 120, 200]) {
    const child = spawn(process.execPath, [CLI_PATH, 'cleanup', '--archive', 'jsonl', '--config', fixture.configPath], {
      env: { PATH: process.env['PATH'] ?? '', AUDIT_RETENTION_NOW: NOW },
      stdio: 'ignore',
    });
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));

    const present = new Set([...(await logLines(fixture.logDirectory)), ...(await archivedLines(fixture.archiveDirectory))]);
    const staging = (await readdir(fixture.archiveDirectory).catch(() => [] as string[])).filter((name) => name.endsWith('.staging.jsonl'));
    for (const name of staging) {
      for (const line of (await readFile(join(fixture.archiveDirectory, name), 'utf8')).split(/(?<=\n)/)) present.add(line);
    }
    for (const line of original) {
      assert.ok(present.has(line), `record lost after a kill at ${delayMs} ms: ${line.slice(0, 80)}`);
    }
  }

  const finish = await runCli(['cleanup', '--archive', 'jsonl', '--config', fixture.configPath]);
  assert.equal(finish.code, 0);
  assert.deepEqual((await logLines(fixture.logDirectory)).sort(), [...fixture.kept].sort());
  const archived = await archivedLines(fixture.archiveDirectory);
  assert.deepEqual([...new Set(archived)].sort(), [...fixture.expired].sort());
});
