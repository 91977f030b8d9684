/**
 * Retention rules: which retention applies to a schema, and the cutoff instant it gives.
 *
 * First match wins: the config's per-schema value, the schemas file's `retention_days`
 * for that name and version (a missing version falls back to the name's latest
 * version), the profile's `retention_days`, then DEFAULT_RETENTION_DAYS.
 */

import { DEFAULT_SCHEMA_VERSION } from './scanner.js';

/** Retention applied when neither the config nor the schemas file sets one, in days (MXCP's default). */
export const DEFAULT_RETENTION_DAYS = 90;

/** Seconds in a retention day. Days are fixed 86,400 s spans, so DST and leap seconds do not shift a cutoff. */
export const SECONDS_PER_DAY = 86_400;

/** Key under which records without a `schema_name` are counted. */
export const UNKNOWN_SCHEMA_KEY = 'unknown';

/** A retention period in whole days, or null for records kept for good. */
export type RetentionDays = number | null;

export type RetentionSource = 'config' | 'schemas_file' | 'profile' | 'default';

/**
 * Retention from the schemas file: name, then version, then days. Null keeps for good;
 * undefined marks a version that the file defines without `retention_days`.
 */
export type SchemaFileRetention = ReadonlyMap<string, ReadonlyMap<number, RetentionDays | undefined>>;

export interface RetentionInputs {
  /** Per-schema retention from the config, by schema name. */
  configRetention: ReadonlyMap<string, RetentionDays>;
  schemasFileRetention: SchemaFileRetention;
  /** The profile's `retention_days`, or undefined when it sets none. */
  profileRetentionDays: RetentionDays | undefined;
}

/** The retention that applies to one `schema_name:schema_version` key, and its cutoff. */
export interface SchemaRule {
  key: string;
  schemaName: string | null;
  retentionDays: RetentionDays;
  source: RetentionSource;
  /** Records strictly before this epoch ms are expired; -Infinity when kept for good. */
  cutoffMs: number;
}

export function schemaKey(schemaName: string | null, schemaVersion: number): string {
  return schemaName === null ? UNKNOWN_SCHEMA_KEY : `${schemaName}:${schemaVersion}`;
}

/** Returns the cutoff for a retention at `nowMs`: records strictly before it are expired. */
export function cutoffFor(retentionDays: RetentionDays, nowMs: number): number {
  return retentionDays === null ? -Infinity : nowMs - retentionDays * SECONDS_PER_DAY * 1000;
}

/**
 * Resolves and memoizes the rule for each schema seen during one run, at one instant.
 * Lookups happen per record, so the common path is two Map reads.
 */
export class RetentionRules {
  private readonly byName = new Map<string | null, Map<number, SchemaRule>>();

  constructor(
    private readonly inputs: RetentionInputs,
    readonly nowMs: number,
  ) {}

  ruleFor(schemaName: string | null, schemaVersion: number): SchemaRule {
    let versions = this.byName.get(schemaName);
    if (versions === undefined) {
      versions = new Map();
      this.byName.set(schemaName, versions);
    }
    // Records without a schema name share one rule whatever their version.
    const version = schemaName === null ? DEFAULT_SCHEMA_VERSION : schemaVersion;
    let rule = versions.get(version);
    if (rule === undefined) {
      rule = this.resolve(schemaName, version);
      versions.set(version, rule);
    }
    return rule;
  }

  /** Returns every rule resolved so far, sorted by key. */
  resolvedRules(): SchemaRule[] {
    const rules: SchemaRule[] = [];
    for (const versions of this.byName.values()) {
      rules.push(...versions.values());
    }
    return rules.sort((left, right) => compareKeys(left.key, right.key));
  }

  private resolve(schemaName: string | null, schemaVersion: number): SchemaRule {
    const { retentionDays, source } = this.lookup(schemaName, schemaVersion);
    return {
      key: schemaKey(schemaName, schemaVersion),
      schemaName,
      retentionDays,
      source,
      cutoffMs: cutoffFor(retentionDays, this.nowMs),
    };
  }

  private lookup(schemaName: string | null, schemaVersion: number): { retentionDays: RetentionDays; source: RetentionSource } {
    if (schemaName !== null) {
      const configured = this.inputs.configRetention.get(schemaName);
      if (configured !== undefined) {
        return { retentionDays: configured, source: 'config' };
      }

      const versions = this.inputs.schemasFileRetention.get(schemaName);
      if (versions !== undefined && versions.size > 0) {
        const definedVersion = versions.has(schemaVersion) ? schemaVersion : latestVersion(versions);
        const fromFile = versions.get(definedVersion);
        if (fromFile !== undefined) {
          return { retentionDays: fromFile, source: 'schemas_file' };
        }
      }
    }

    if (this.inputs.profileRetentionDays !== undefined) {
      return { retentionDays: this.inputs.profileRetentionDays, source: 'profile' };
    }
    return { retentionDays: DEFAULT_RETENTION_DAYS, source: 'default' };
  }
}

/**
 * Returns the highest version in `versions`, which must not be empty. It loops because
 * `Math.max(...keys)` overflows the stack for 200,000 versions of one name (Node 20).
 */
function latestVersion(versions: ReadonlyMap<number, unknown>): number {
  let latest = -Infinity;
  for (const version of versions.keys()) {
    if (version > latest) {
      latest = version;
    }
  }
  return latest;
}

/** Orders schema keys by code unit, the same on every machine and locale. */
export function compareKeys(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

/**
 * Validates one retention value from a config or schemas file. Returns whole days,
 * or null for "keep for good"; returns undefined when `value` is invalid.
 */
export function parseRetentionValue(value: unknown, foreverValue: 'forever' | null): RetentionDays | undefined {
  if (value === foreverValue) {
    return null;
  }
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1) {
    return value;
  }
  return undefined;
}
