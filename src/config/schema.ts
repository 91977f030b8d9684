/**
 * Schemas of the config file (the shape of MXCP's `mxcp-site.yml`) and of the
 * environment. The TypeScript types are derived from them, never written twice.
 * The build writes them as JSON beside the loader (scripts/emit-config-schemas.ts),
 * which validates with Ajv, so commands start without loading TypeBox.
 */

import { Type, type Static } from 'typebox';

// Modules that must not load TypeBox import these from defaults.js directly.
export { DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_MAX_FILE_SIZE, DEFAULT_SIZE_WARNING_BYTES } from './defaults.js';

/** Whole days of at least 1, or `forever`. Checked first by hand so that the message names the schema. */
const RetentionValue = Type.Union([Type.Integer({ minimum: 1 }), Type.Literal('forever')]);

/** The `audit` section of a profile. Keys MXCP defines are `enabled` and `path`; the rest are ours. */
export const AuditSection = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    path: Type.Optional(Type.String({ minLength: 1 })),
    retention_days: Type.Optional(RetentionValue),
    retention: Type.Optional(Type.Record(Type.String(), RetentionValue)),
    timestamp_field: Type.Optional(Type.String({ minLength: 1 })),
    timestamp_unit: Type.Optional(Type.Union([Type.Literal('ms'), Type.Literal('s')])),
    lock_timeout_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
    size_warning_bytes: Type.Optional(Type.Integer({ minimum: 0 })),
    max_file_size: Type.Optional(Type.Integer({ minimum: 1024 })),
    fsync: Type.Optional(Type.Union([Type.Literal('always'), Type.Literal('interval'), Type.Literal('none')])),
    max_batch_bytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 256 * 1024 ** 2 })),
  },
  { additionalProperties: true },
);

export const ProfileSection = Type.Object(
  {
    audit: Type.Optional(Type.Union([AuditSection, Type.Null()])),
  },
  { additionalProperties: true },
);

export const ConfigFile = Type.Object(
  {
    profile: Type.Optional(Type.String({ minLength: 1 })),
    /** MXCP's `paths` section; `paths.audit` is the directory of profiles without `audit.path`. */
    paths: Type.Optional(
      Type.Union([Type.Object({ audit: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: true }), Type.Null()]),
    ),
    profiles: Type.Optional(Type.Record(Type.String(), Type.Union([ProfileSection, Type.Null()]))),
  },
  { additionalProperties: true },
);

export type AuditSection = Static<typeof AuditSection>;
export type ConfigFile = Static<typeof ConfigFile>;

const LogLevel = Type.Union([
  Type.Literal('fatal'),
  Type.Literal('error'),
  Type.Literal('warn'),
  Type.Literal('info'),
  Type.Literal('debug'),
  Type.Literal('trace'),
  Type.Literal('silent'),
]);

/** Settings taken from the environment. Empty strings count as unset. */
export const Environment = Type.Object({
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65_535, default: 8080 }),
  AUDIT_RETENTION_CONFIG: Type.Optional(Type.String({ minLength: 1 })),
  AUDIT_RETENTION_ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  AUDIT_RETENTION_READ_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  AUDIT_RETENTION_EXPORT_DIR: Type.Optional(Type.String({ minLength: 1 })),
  LOG_LEVEL: Type.Optional(LogLevel),
  /** MXCP's override of every profile's `audit.enabled`: true, 1, yes, false, 0 or no. */
  MXCP_AUDIT_ENABLED: Type.Optional(Type.String()),
  /** Fixed clock for tests and previews, as an ISO 8601 instant. */
  AUDIT_RETENTION_NOW: Type.Optional(Type.String({ minLength: 1 })),
});

export type Environment = Static<typeof Environment>;
