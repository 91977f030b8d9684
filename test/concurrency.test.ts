/**
 * Writers and cleanups at the same time, as separate processes: two Node writers
 * using the library (with size rotation), a shell loop appending under flock(1),
 * and the cleanup CLI run again and again. Afterwards every record within
 * retention is present exactly once and every expired one is gone.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';

import { TEMPORARY_SUFFIX, discoverLayout } from '../src/core/layout.js';
import { DIRECT_CLEANUP_PATH, PROJECT_ROOT, directBytesOf, daysAgo, recordLine, runCli, runProcess, temporaryDirectory, writeConfig, writeText } from './helpers.js';
import { EXPIRED_TIMESTAMP, KEPT_TIMESTAMP, childRecordExpired } from './writer-child.js';

const CHILD_PATH = join(PROJECT_ROOT, 'dist', 'test', 'writer-child.js');

/** Records per Node writer, records of the shell writer, and records seeded before the start. */
const CHILD_RECORDS = 1500;
const SHELL_RECORDS = 300;
const SEEDED_RECORDS = 600;

/**
 * Appends SHELL_RECORDS lines under the writers' lock as an operator's script would,
 * each with its own flock(1) call; every even-numbered record is expired.
 */
const SHELL_WRITER = `
log="$1"; count="$2"; old="$3"; new="$4"
i=1
while [ "$i" -le "$count" ]; do
  if [ $((i % 2)) -eq 0 ]; then ts="$old"; else ts="$new"; fi
  flock "$log.lock" -c "printf '{\\"schema_name\\": \\"mxcp.endpoints\\", \\"seq\\": \\"sh-$i\\", \\"timestamp\\": \\"$ts\\"}\\\\n' >> '$log'"
  i=$((i + 1))
done
echo done
`;

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
}

test('writers and cleanups keep every record once', { timeout: 120_000 }, async (t) => {
  const directory = await temporaryDirectory(t);
  const configPath = await writeConfig(directory, 'retention_days: 30\nmax_file_size: 16384\nlock_timeout_ms: 30000');
  const logDirectory = join(directory, 'audit');
  const logPath = join(logDirectory, 'logs.jsonl');

  // Seeded records, half of them expired, in an older segment and in the single file.
  const expected = new Map<string, boolean>();
  let seeded = '';
  for (let index = 1; index <= SEEDED_RECORDS; index++) {
    const expired = index % 2 === 0;
    seeded += recordLine({ seq: `seed-${index}`, timestamp: daysAgo(expired ? 45 : 2) });
    expected.set(`seed-${index}`, expired);
    if (index === SEEDED_RECORDS / 2) {
      await writeText(join(logDirectory, 'logs-20261101T000000.jsonl'), seeded);
      seeded = '';
    }
  }
  await writeText(logPath, seeded);
  for (const prefix of ['a', 'b']) {
    for (let sequence = 1; sequence <= CHILD_RECORDS; sequence++) {
      expected.set(`${prefix}-${sequence}`, childRecordExpired(sequence));
    }
  }
  for (let sequence = 1; sequence <= SHELL_RECORDS; sequence++) {
    expected.set(`sh-${sequence}`, sequence % 2 === 0);
  }

  const writers = [
    spawn(process.execPath, [CHILD_PATH, logPath, 'a', String(CHILD_RECORDS), '16384'], { stdio: ['ignore', 'pipe', 'inherit'] }),
    spawn(process.execPath, [CHILD_PATH, logPath, 'b', String(CHILD_RECORDS), '16384'], { stdio: ['ignore', 'pipe', 'inherit'] }),
    spawn('sh', ['-c', SHELL_WRITER, 'sh', logPath, String(SHELL_RECORDS), EXPIRED_TIMESTAMP, KEPT_TIMESTAMP], { stdio: ['ignore', 'pipe', 'inherit'] }),
  ];
  t.after(() => {
    for (const writer of writers) writer.kill('SIGKILL');
  });
  const writersDone = Promise.all(writers.map(exited));
  let running = true;
  void writersDone.then(() => {
    running = false;
  });

  // Cleanups run back to back while the writers append.
  const cleanups: { writeDirectly: boolean; directBytes: number; code: number | null; deleted: number; rewritten: number; removed: number }[] = [];
  while (running) {
    // Every second cleanup writes its copies directly, as the CLI does for files of 64 MiB or more.
    const writeDirectly = cleanups.length % 2 === 1;
    const result = writeDirectly ? await runProcess(process.execPath, [DIRECT_CLEANUP_PATH, configPath]) : await runCli(['cleanup', '--config', configPath, '--json']);
    const body = JSON.parse(result.stdout) as { details: { files_rewritten: string[]; files_removed: string[] }; deleted_per_schema: Record<string, number> };
    assert.equal(result.code, 0, result.stderr);
    cleanups.push({
      writeDirectly,
      directBytes: writeDirectly ? directBytesOf(result.stderr) : 0,
      code: result.code,
      deleted: Object.values(body.deleted_per_schema).reduce((sum, count) => sum + count, 0),
      rewritten: body.details.files_rewritten.length,
      removed: body.details.files_removed.length,
    });
  }
  const writerCodes = await writersDone;
  const deletedDuringWrites = cleanups.reduce((sum, cleanup) => sum + cleanup.deleted, 0);
  const rewrittenDuringWrites = cleanups.reduce((sum, cleanup) => sum + cleanup.rewritten, 0);
  t.diagnostic(`${cleanups.length} cleanups during the writes rewrote ${rewrittenDuringWrites} files and deleted ${deletedDuringWrites} records`);
  const final = await runCli(['cleanup', '--config', configPath]);

  assert.deepEqual(writerCodes, [0, 0, 0]);
  assert.equal(final.code, 0, final.stderr);
  // The check means something only when cleanups rewrote files while the writers appended.
  assert.ok(cleanups.length >= 2, `only ${cleanups.length} cleanups ran during the writes`);
  for (const writeDirectly of [false, true]) {
    const rewrote = cleanups.some((cleanup) => cleanup.writeDirectly === writeDirectly && cleanup.rewritten > 0 && cleanup.deleted > 0);
    assert.ok(rewrote, `no cleanup ${writeDirectly ? 'with' : 'without'} direct writes rewrote a file: ${JSON.stringify(cleanups)}`);
  }
  assert.ok(cleanups.some((cleanup) => cleanup.directBytes > 0), `no cleanup wrote directly: ${JSON.stringify(cleanups)}`);

  const layout = await discoverLayout(logPath, 'default');
  assert.ok(layout.files.length >= 3, `expected rotation into segments, found ${layout.files.map((file) => file.name).join(', ')}`);
  const seen = new Map<string, number>();
  for (const file of layout.files) {
    const content = await readFile(file.path, 'utf8');
    assert.ok(content.endsWith('\n'), `${file.name} ends with a partial line`);
    for (const line of content.slice(0, -1).split('\n')) {
      const record = JSON.parse(line) as { seq?: string };
      assert.equal(typeof record.seq, 'string', `${file.name}: ${line}`);
      seen.set(record.seq!, (seen.get(record.seq!) ?? 0) + 1);
    }
  }

  const missing = [...expected].filter(([seq, expired]) => !expired && seen.get(seq) !== 1).map(([seq]) => `${seq}×${seen.get(seq) ?? 0}`);
  const leftover = [...expected].filter(([seq, expired]) => expired && seen.has(seq)).map(([seq]) => seq);
  const unknown = [...seen.keys()].filter((seq) => !expected.has(seq));
  assert.deepEqual(missing, [], 'records within retention missing or duplicated');
  assert.deepEqual(leftover, [], 'expired records left');
  assert.deepEqual(unknown, []);
  assert.ok(!(await readdir(logDirectory)).some((name) => name.endsWith(TEMPORARY_SUFFIX)));
});
