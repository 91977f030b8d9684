/**
 * Loads the settings once at start: the config file, then the environment.
 * The result is validated and frozen; nothing else reads process.env.
 */

import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';

import type { ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';

import { ErrorCode, RetentionError } from '../core/errors.js';
import { parseRetentionValue, type RetentionDays } from '../core/retention.js';
import { parseIsoString } from '../core/timestamp.js';
import { DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_MAX_FILE_SIZE, DEFAULT_SIZE_WARNING_BYTES } from './defaults.js';
import { DEFAULT_FSYNC_POLICY, DEFAULT_MAX_BATCH_BYTES } from './defaults.js';
import { validateConfigFile } from './config-file-validator.js';
import { validateEnvironment } from './environment-validator.js';
import type { AuditSection, ConfigFile, Environment } from './schema.js';

/** JSON Schemas written by the build from src/config/schema.ts; see scripts/emit-config-schemas.ts. */
interface ConfigSchemas {
  configFile: { properties: { profiles: { patternProperties: Record<string, { anyOf: { properties?: Record<string, unknown> }[] }> } } };
  environment: { properties: Record<string, unknown> };
}

const SCHEMAS = JSON.parse(readFileSync(new URL('./config-schemas.json', import.meta.url), 'utf8')) as ConfigSchemas;

/** Keys of the audit section, read from its schema; any other key is reported as a likely typo. */
const AUDIT_KEYS: ReadonlySet<string> = new Set(Object.keys(auditSectionProperties()));

function auditSectionProperties(): Record<string, unknown> {
  const profile = Object.values(SCHEMAS.configFile.properties.profiles.patternProperties)[0]!.anyOf[0]!;
  const audit = profile.properties!['audit'] as { anyOf: { properties?: Record<string, unknown> }[] };
  return audit.anyOf[0]!.properties!;
}

/**
 * Turns Ajv's errors into one message per error. A value that must be one of several
 * constants (a TypeBox union of literals) gets the list of them, not Ajv's "must be
 * equal to constant" for the first.
 */
function ajvProblems(errors: ErrorObject[] | null | undefined): { instancePath: string; message: string }[] {
  const allowedByPath = new Map<string, unknown[]>();
  for (const error of errors ?? []) {
    let allowed: unknown[] = [];
    if (error.keyword === 'const') {
      allowed = [error.params['allowedValue']];
    } else if (error.keyword === 'enum') {
      allowed = error.params['allowedValues'] as unknown[];
    }
    if (allowed.length > 0) {
      allowedByPath.set(error.instancePath, [...(allowedByPath.get(error.instancePath) ?? []), ...allowed]);
    }
  }

  return (errors ?? []).map((error) => {
    const allowed = allowedByPath.get(error.instancePath);
    const message = allowed === undefined ? (error.message ?? 'is invalid') : `must be one of ${allowed.map((value) => JSON.stringify(value)).join(', ')}`;
    return { instancePath: error.instancePath, message };
  });
}

/** Returns the value at a JSON Pointer such as `/profiles/default/audit/enabled`, or undefined. */
function valueAt(document: unknown, pointer: string): unknown {
  let value = document;
  for (const token of pointer.split('/').slice(1)) {
    if (typeof value !== 'object' || value === null) {
      return undefined;
    }
    value = (value as Record<string, unknown>)[token.replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  return value;
}

/** Formats a scalar value as ` (got VALUE)`; nested values are left out, since the path names them. */
function shownValue(value: unknown): string {
  return value === null || ['string', 'number', 'boolean'].includes(typeof value) ? ` (got ${JSON.stringify(value)})` : '';
}

/** Config file names looked up in the working directory, in order, when none is named. */
export const CONFIG_FILE_NAMES = ['audit-retention.yml', 'mxcp-site.yml'] as const;

/** Log path of the built-in profile, used when no config file exists. */
export const DEFAULT_LOG_PATH = 'audit/logs.jsonl';

/** Directory of a profile's log when the config sets neither `audit.path` nor `paths.audit` (MXCP's default). */
export const DEFAULT_AUDIT_DIRECTORY = 'audit';

export const DEFAULT_PROFILE_NAME = 'default';

export interface ProfileSettings {
  name: string;
  /** False when the profile has no `audit` section or sets `enabled: false`. */
  enabled: boolean;
  /** Absolute path of the configured log, `DIR/STEM.jsonl`. */
  logPath: string;
  /** The profile's `retention_days`: whole days, null for forever, undefined when unset. */
  retentionDays: RetentionDays | undefined;
  /** Per-schema retention by schema name. */
  retention: ReadonlyMap<string, RetentionDays>;
  timestampField: string;
  timestampUnit: 'ms' | 's';
  lockTimeoutMs: number;
  sizeWarningBytes: number;
  maxFileSize: number;
  /** Fsync policy of the writer: always, interval or none. */
  fsync: 'always' | 'interval' | 'none';
  /** Maximum body of POST /records, in bytes. */
  maxBatchBytes: number;
}

export interface Settings {
  /** Absolute path of the config file, or null for the built-in default. */
  configPath: string | null;
  /** Profile used when a request names none; null when the config defines several and none is marked. */
  defaultProfile: string | null;
  profiles: ReadonlyMap<string, ProfileSettings>;
  host: string;
  port: number;
  adminToken: string | undefined;
  readToken: string | undefined;
  exportDirectory: string;
  logLevel: string;
  /** Fixed clock in epoch ms from AUDIT_RETENTION_NOW, for tests and previews. */
  fixedNowMs: number | undefined;
  /** Facts worth a warning at start, such as unknown keys in an `audit` section. */
  warnings: readonly string[];
}

export interface LoadOptions {
  /** Value of `--config`. */
  configPath?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Ignore config files and the environment: the built-in default, for commands that need no config. */
  builtInOnly?: boolean;
}

function configError(message: string, cause?: unknown): RetentionError {
  return new RetentionError(ErrorCode.CONFIG_INVALID, message, { cause });
}

/** Shows a config value as written: numbers such as .inf as numbers, the rest as JSON. */
function describeValue(value: unknown): string {
  return typeof value === 'number' ? String(value) : JSON.stringify(value);
}

/**
 * Keeps the first validation message per location, and only the deepest locations:
 * a union such as "section or null" otherwise adds "must be null" for every parent.
 */
function firstProblemPerPath(errors: readonly { instancePath: string; message: string }[]): { path: string; message: string }[] {
  const byPath = new Map<string, string>();
  for (const error of errors) {
    if (!byPath.has(error.instancePath)) {
      byPath.set(error.instancePath, error.message);
    }
  }
  const paths = [...byPath.keys()];
  return paths
    .filter((path) => !paths.some((other) => other !== path && other.startsWith(`${path}/`)))
    .map((path) => ({ path, message: byPath.get(path)! }));
}

/** Finds the config file: `--config`, AUDIT_RETENTION_CONFIG, then the file names in the working directory. */
function locateConfigFile(options: LoadOptions, environment: Environment, cwd: string): string | null {
  const named = options.configPath ?? environment.AUDIT_RETENTION_CONFIG;
  if (named !== undefined) {
    const path = resolve(cwd, named);
    if (!existsSync(path)) {
      const origin = options.configPath !== undefined ? '--config' : 'AUDIT_RETENTION_CONFIG';
      throw configError(`Config file ${path} (from ${origin}) does not exist. Fix the path or create the file.`);
    }
    return path;
  }
  for (const name of CONFIG_FILE_NAMES) {
    const path = join(cwd, name);
    if (existsSync(path)) {
      return path;
    }
  }
  return null;
}

function readEnvironment(env: NodeJS.ProcessEnv): Environment {
  const present: Record<string, string> = {};
  for (const key of Object.keys(SCHEMAS.environment.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') {
      present[key] = value;
    }
  }

  const converted: Record<string, unknown> = { ...present };
  if (!validateEnvironment(converted)) {
    const problems = firstProblemPerPath(ajvProblems(validateEnvironment.errors)).map(({ path, message }) => {
      const key = path.replace(/^\//, '');
      const shown = key.endsWith('_TOKEN') ? '(hidden)' : JSON.stringify(present[key]);
      const hint = key === 'LOG_LEVEL' ? 'must be one of fatal, error, warn, info, debug, trace, silent' : message;
      return `${key}=${shown}: ${hint}`;
    });
    throw configError(`Invalid environment: ${problems.join('; ')}.`);
  }
  return converted as Environment;
}

function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw configError(`Could not read config file ${path}: ${reason}. Pass a readable YAML file with --config or AUDIT_RETENTION_CONFIG.`, error);
  }

  let document: unknown;
  try {
    // YAML 1.1, as PyYAML reads mxcp-site.yml, so `enabled: yes` is a boolean here too.
    document = parseYaml(text, { uniqueKeys: true, version: '1.1' });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw configError(`Config file ${path} is not valid YAML: ${reason}`, error);
  }
  if (document === null || document === undefined) {
    return {};
  }
  if (typeof document !== 'object' || Array.isArray(document)) {
    throw configError(`Config file ${path} must be a YAML mapping with a 'profiles' key.`);
  }

  checkRetentionValues(document as Record<string, unknown>, path);
  if (!validateConfigFile(document)) {
    const problems = firstProblemPerPath(ajvProblems(validateConfigFile.errors)).map(
      ({ path, message }) => `${path || '/'}: ${message}${shownValue(valueAt(document, path))}`,
    );
    throw configError(`Config file ${path} is invalid: ${problems.join('; ')}.`);
  }
  return document;
}

/** Rejects invalid retention values with a message that names the profile and schema. */
function checkRetentionValues(document: Record<string, unknown>, path: string): void {
  const profiles = document['profiles'];
  if (typeof profiles !== 'object' || profiles === null) {
    return;
  }
  for (const [profileName, profile] of Object.entries(profiles as Record<string, unknown>)) {
    const audit = (profile as { audit?: unknown } | null)?.audit;
    if (typeof audit !== 'object' || audit === null) {
      continue;
    }
    const section = audit as Record<string, unknown>;

    if ('retention_days' in section && parseRetentionValue(section['retention_days'], 'forever') === undefined) {
      throw configError(
        `Invalid retention_days ${describeValue(section['retention_days'])} in profile '${profileName}' of ${path}. ` +
          `Use a whole number of days of at least 1, or 'forever'.`,
      );
    }
    const perSchema = section['retention'];
    if (perSchema === undefined || perSchema === null) {
      continue;
    }
    if (typeof perSchema !== 'object' || Array.isArray(perSchema)) {
      throw configError(`audit.retention in profile '${profileName}' of ${path} must map schema names to days.`);
    }
    for (const [schemaName, value] of Object.entries(perSchema as Record<string, unknown>)) {
      if (parseRetentionValue(value, 'forever') === undefined) {
        throw configError(
          `Invalid retention ${describeValue(value)} for schema '${schemaName}' in profile '${profileName}' of ${path}. ` +
            `Use a whole number of days of at least 1, or 'forever'.`,
        );
      }
    }
  }
}

/**
 * Resolves one profile as MXCP does: `enabled` defaults to false, MXCP_AUDIT_ENABLED
 * overrides it, and a missing `path` becomes `PATHS_AUDIT/logs-PROFILE.jsonl`.
 */
function resolveProfile(
  name: string,
  audit: AuditSection | null | undefined,
  baseDirectory: string,
  auditDirectory: string,
  enabledOverride: boolean | undefined,
): ProfileSettings {
  const rawPath = audit?.path ?? join(auditDirectory, `logs-${name}.jsonl`);
  const retention = new Map<string, RetentionDays>();
  for (const [schemaName, value] of Object.entries(audit?.retention ?? {})) {
    retention.set(schemaName, parseRetentionValue(value, 'forever')!);
  }

  return {
    name,
    enabled: enabledOverride ?? audit?.enabled === true,
    logPath: isAbsolute(rawPath) ? rawPath : resolve(baseDirectory, rawPath),
    retentionDays: audit?.retention_days === undefined ? undefined : parseRetentionValue(audit.retention_days, 'forever'),
    retention,
    timestampField: audit?.timestamp_field ?? 'timestamp',
    timestampUnit: audit?.timestamp_unit ?? 'ms',
    lockTimeoutMs: audit?.lock_timeout_ms ?? DEFAULT_LOCK_TIMEOUT_MS,
    sizeWarningBytes: audit?.size_warning_bytes ?? DEFAULT_SIZE_WARNING_BYTES,
    maxFileSize: audit?.max_file_size ?? DEFAULT_MAX_FILE_SIZE,
    fsync: audit?.fsync ?? DEFAULT_FSYNC_POLICY,
    maxBatchBytes: audit?.max_batch_bytes ?? DEFAULT_MAX_BATCH_BYTES,
  };
}

/** Reads MXCP_AUDIT_ENABLED the way MXCP does; other values leave `enabled` as configured. */
function parseEnabledOverride(value: string | undefined): boolean | undefined {
  const normalized = value?.trim().toLowerCase();
  if (normalized === 'true' || normalized === '1' || normalized === 'yes') {
    return true;
  }
  if (normalized === 'false' || normalized === '0' || normalized === 'no') {
    return false;
  }
  return undefined;
}

function deepFreeze<T>(value: T): T {
  if (value instanceof Map) {
    for (const item of value.values()) deepFreeze(item);
  } else if (typeof value === 'object' && value !== null) {
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return Object.freeze(value);
}

/** Loads, validates and freezes the settings. Throws CONFIG_INVALID with the file and key at fault. */
export function loadSettings(options: LoadOptions = {}): Settings {
  const env = options.builtInOnly === true ? {} : (options.env ?? process.env);
  const cwd = options.cwd ?? process.cwd();
  const environment = readEnvironment(env);

  const configPath = options.builtInOnly === true ? null : locateConfigFile(options, environment, cwd);
  const file =
    configPath === null
      ? { profiles: { [DEFAULT_PROFILE_NAME]: { audit: { enabled: true, path: DEFAULT_LOG_PATH } } } }
      : readConfigFile(configPath);
  const baseDirectory = configPath === null ? cwd : dirname(configPath);
  const auditDirectory = file.paths?.audit ?? DEFAULT_AUDIT_DIRECTORY;
  const enabledOverride = parseEnabledOverride(environment.MXCP_AUDIT_ENABLED);

  const warnings: string[] = [];
  const profiles = new Map<string, ProfileSettings>();
  for (const [name, section] of Object.entries(file.profiles ?? {})) {
    const audit = section?.audit;
    for (const key of Object.keys(audit ?? {})) {
      if (!AUDIT_KEYS.has(key)) {
        warnings.push(`Unknown key audit.${key} in profile '${name}' of ${configPath}; it is ignored.`);
      }
    }
    profiles.set(name, resolveProfile(name, audit, baseDirectory, auditDirectory, enabledOverride));
  }
  if (profiles.size === 0) {
    throw configError(`Config file ${configPath} defines no profiles. Add a 'profiles' mapping with at least one profile.`);
  }

  let defaultProfile: string | null;
  if (file.profile !== undefined) {
    if (!profiles.has(file.profile)) {
      throw configError(
        `Config file ${configPath} names profile '${file.profile}', which it does not define. Defined: ${[...profiles.keys()].join(', ')}.`,
      );
    }
    defaultProfile = file.profile;
  } else if (profiles.has(DEFAULT_PROFILE_NAME)) {
    defaultProfile = DEFAULT_PROFILE_NAME;
  } else {
    defaultProfile = profiles.size === 1 ? [...profiles.keys()][0]! : null;
  }

  let fixedNowMs: number | undefined;
  if (environment.AUDIT_RETENTION_NOW !== undefined) {
    fixedNowMs = parseIsoString(environment.AUDIT_RETENTION_NOW);
    if (Number.isNaN(fixedNowMs)) {
      throw configError(
        `Invalid AUDIT_RETENTION_NOW ${JSON.stringify(environment.AUDIT_RETENTION_NOW)}. Use an ISO 8601 instant such as 2026-12-04T00:00:00Z, or unset it.`,
      );
    }
  }

  const exportDirectory = resolve(baseDirectory, environment.AUDIT_RETENTION_EXPORT_DIR ?? 'exports');

  return deepFreeze({
    configPath,
    defaultProfile,
    profiles,
    host: environment.HOST,
    port: environment.PORT,
    adminToken: environment.AUDIT_RETENTION_ADMIN_TOKEN,
    readToken: environment.AUDIT_RETENTION_READ_TOKEN,
    exportDirectory,
    logLevel: environment.LOG_LEVEL ?? 'info',
    fixedNowMs,
    warnings,
  });
}

/**
 * Returns the profile called `name`, or the default profile when `name` is undefined.
 * Throws PROFILE_NOT_FOUND or INVALID_INPUT with the names that exist.
 */
export function selectProfile(settings: Settings, name: string | undefined): ProfileSettings {
  const defined = [...settings.profiles.keys()].join(', ');
  if (name === undefined) {
    if (settings.defaultProfile === null) {
      throw new RetentionError(
        ErrorCode.INVALID_INPUT,
        `No profile named and the config defines several without a 'profile:' key. Pass a profile: ${defined}.`,
      );
    }
    return settings.profiles.get(settings.defaultProfile)!;
  }

  const profile = settings.profiles.get(name);
  if (profile === undefined) {
    throw new RetentionError(ErrorCode.PROFILE_NOT_FOUND, `Profile '${name}' not found. Defined profiles: ${defined}.`);
  }
  return profile;
}
