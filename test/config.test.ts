/** Config discovery and MXCP compatibility of the loader. */

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';

import { loadSettings } from '../src/config/load.js';
import { ErrorCode, RetentionError } from '../src/core/errors.js';
import { daysAgo, recordLine, runCli, temporaryDirectory, writeText } from './helpers.js';

async function configIn(t: Parameters<typeof temporaryDirectory>[0], yaml: string): Promise<string> {
  const directory = await temporaryDirectory(t);
  const path = join(directory, 'mxcp-site.yml');
  await writeFile(path, yaml);
  return path;
}

test('audit path defaults like MXCP', async (t) => {
  const path = await configIn(t, 'profiles:\n  prod:\n    audit:\n      enabled: true\n');

  const settings = loadSettings({ configPath: path, env: {} });

  assert.equal(settings.profiles.get('prod')!.logPath, join(path, '..', 'audit', 'logs-prod.jsonl'));
});

test('paths.audit moves the default', async (t) => {
  const path = await configIn(t, 'paths:\n  audit: var/audit\nprofiles:\n  default:\n    audit:\n      enabled: true\n');

  const settings = loadSettings({ configPath: path, env: {} });

  assert.equal(settings.profiles.get('default')!.logPath, join(path, '..', 'var', 'audit', 'logs-default.jsonl'));
});

test('audit is disabled unless enabled', async (t) => {
  const path = await configIn(t, 'profiles:\n  default:\n    audit:\n      path: audit/logs.jsonl\n  bare: {}\n');

  const settings = loadSettings({ configPath: path, env: {} });

  assert.equal(settings.profiles.get('default')!.enabled, false);
  assert.equal(settings.profiles.get('bare')!.enabled, false);
});

test('YAML 1.1 yes enables audit', async (t) => {
  const path = await configIn(t, 'profiles:\n  default:\n    audit:\n      enabled: yes\n');

  const settings = loadSettings({ configPath: path, env: {} });

  assert.equal(settings.profiles.get('default')!.enabled, true);
});

test('MXCP_AUDIT_ENABLED overrides enabled', async (t) => {
  const path = await configIn(t, 'profiles:\n  default:\n    audit:\n      enabled: false\n');

  const on = loadSettings({ configPath: path, env: { MXCP_AUDIT_ENABLED: 'true' } });
  const off = loadSettings({ configPath: path, env: { MXCP_AUDIT_ENABLED: '0' } });

  assert.equal(on.profiles.get('default')!.enabled, true);
  assert.equal(off.profiles.get('default')!.enabled, false);
});

test('no config file gives the built-in profile', async (t) => {
  const directory = await temporaryDirectory(t);

  const settings = loadSettings({ cwd: directory, env: {} });

  assert.equal(settings.configPath, null);
  assert.equal(settings.defaultProfile, 'default');
  assert.equal(settings.profiles.get('default')!.logPath, join(directory, 'audit', 'logs.jsonl'));
  assert.equal(settings.profiles.get('default')!.enabled, true);
});

test('config lookup order', async (t) => {
  const directory = await temporaryDirectory(t);
  await writeFile(join(directory, 'mxcp-site.yml'), 'profiles:\n  from-mxcp: {}\n');
  await writeFile(join(directory, 'audit-retention.yml'), 'profiles:\n  from-own: {}\n');
  await writeFile(join(directory, 'named.yml'), 'profiles:\n  from-env: {}\n');

  const fromCwd = loadSettings({ cwd: directory, env: {} });
  const fromEnv = loadSettings({ cwd: directory, env: { AUDIT_RETENTION_CONFIG: 'named.yml' } });
  const fromFlag = loadSettings({ cwd: directory, env: { AUDIT_RETENTION_CONFIG: 'named.yml' }, configPath: 'mxcp-site.yml' });

  assert.deepEqual([...fromCwd.profiles.keys()], ['from-own']);
  assert.deepEqual([...fromEnv.profiles.keys()], ['from-env']);
  assert.deepEqual([...fromFlag.profiles.keys()], ['from-mxcp']);
});

test('several profiles need a name', async (t) => {
  const path = await configIn(t, 'profiles:\n  one: {}\n  two: {}\n');

  const settings = loadSettings({ configPath: path, env: {} });

  assert.equal(settings.defaultProfile, null);
});

test('invalid config names key', async (t) => {
  const cases: [yaml: string, expected: RegExp][] = [
    ['profiles:\n  default:\n    audit:\n      enabled: maybe\n', /\/profiles\/default\/audit\/enabled: must be boolean \(got "maybe"\)\.$/],
    ['profiles:\n  default:\n    audit:\n      timestamp_unit: us\n', /\/profiles\/default\/audit\/timestamp_unit: must be one of "ms", "s" \(got "us"\)\.$/],
    ['profiles:\n  default:\n    audit:\n      retention_days: .inf\n', /Invalid retention_days Infinity in profile 'default'/],
    ['profiles:\n  default:\n    audit:\n      retention: {auth.events: -1}\n', /schema 'auth\.events'/],
    ['profile: missing\nprofiles:\n  default: {}\n', /names profile 'missing'/],
    ['profiles: [1, 2\n', /not valid YAML/],
    ['profiles:\n  a: {}\n  a: {}\n', /not valid YAML/],
  ];
  for (const [yaml, expected] of cases) {
    const path = await configIn(t, yaml);
    assert.throws(
      () => loadSettings({ configPath: path, env: {} }),
      (error: unknown) => error instanceof RetentionError && error.code === ErrorCode.CONFIG_INVALID && expected.test(error.message),
      yaml,
    );
  }
});

test('config path of a directory', async (t) => {
  const directory = await temporaryDirectory(t);

  assert.throws(
    () => loadSettings({ configPath: directory, env: {} }),
    (error: unknown) => error instanceof RetentionError && error.code === ErrorCode.CONFIG_INVALID && /^Could not read config file .*EISDIR/.test(error.message),
  );
});

test('unknown audit key warns', async (t) => {
  const directory = await temporaryDirectory(t);
  await writeFile(join(directory, 'audit-retention.yml'), 'profiles:\n  default:\n    audit:\n      enabled: true\n      retention_day: 1\n');
  await writeText(join(directory, 'audit', 'logs-default.jsonl'), recordLine({ timestamp: daysAgo(5) }));

  const result = await runCli(['cleanup', '--dry-run'], { cwd: directory });

  assert.equal(result.code, 0);
  assert.match(result.stderr, /Unknown key audit\.retention_day in profile 'default'/);
});

test('bad environment names the variable', async (t) => {
  const directory = await temporaryDirectory(t);

  const result = await runCli(['cleanup', '--dry-run'], { cwd: directory, env: { LOG_LEVEL: 'loud', PORT: 'eighty' } });

  assert.equal(result.code, 1);
  assert.match(result.stderr, /LOG_LEVEL="loud": must be one of fatal, error, warn, info/);
  assert.match(result.stderr, /PORT="eighty"/);
});
