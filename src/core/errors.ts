/**
 * The one catalog of errors that audit-retention raises on purpose.
 *
 * Every error carries a stable `code`. The HTTP layer maps codes to statuses and
 * the CLI maps them to exit codes; nothing branches on message text.
 */

export const ErrorCode = {
  /** A request parameter or body is invalid. */
  INVALID_INPUT: 'AR_INVALID_INPUT',
  /** The request body exceeds the configured size limit. */
  PAYLOAD_TOO_LARGE: 'AR_PAYLOAD_TOO_LARGE',
  /** The request body has a content type the endpoint does not accept. */
  UNSUPPORTED_MEDIA_TYPE: 'AR_UNSUPPORTED_MEDIA_TYPE',
  /** The request carries no token but the endpoint requires one. */
  TOKEN_MISSING: 'AR_TOKEN_MISSING',
  /** The request carries a token that does not grant this endpoint. */
  TOKEN_INVALID: 'AR_TOKEN_INVALID',
  /** No route matches the method and path. */
  ROUTE_NOT_FOUND: 'AR_ROUTE_NOT_FOUND',
  /** The named profile is not in the config. */
  PROFILE_NOT_FOUND: 'AR_PROFILE_NOT_FOUND',
  /** Another cleanup has locked the log directory. */
  CLEANUP_RUNNING: 'AR_CLEANUP_RUNNING',
  /** An export destination exists and overwrite was not requested. */
  DESTINATION_EXISTS: 'AR_DESTINATION_EXISTS',
  /** DuckDB could not write an export from records the scanner accepted. */
  EXPORT_FAILED: 'AR_EXPORT_FAILED',
  /** Records were sent to a profile whose audit logging is disabled. */
  AUDIT_DISABLED: 'AR_AUDIT_DISABLED',
  /** Another process held the log's lock file for longer than the lock timeout. */
  LOG_LOCKED: 'AR_LOG_LOCKED',
  /** A write failed with ENOSPC or EDQUOT. */
  DISK_FULL: 'AR_DISK_FULL',
  /** The config file or environment is invalid. */
  CONFIG_INVALID: 'AR_CONFIG_INVALID',
  /** The schemas file beside the log contains an invalid retention. */
  SCHEMAS_INVALID: 'AR_SCHEMAS_INVALID',
  /** The configured log directory does not exist. */
  LOG_DIR_MISSING: 'AR_LOG_DIR_MISSING',
  /** The process lacks a permission on a file or directory. */
  PERMISSION_DENIED: 'AR_PERMISSION_DENIED',
  /** A log file could not be read, for example a corrupt gzip member. */
  FILE_UNREADABLE: 'AR_FILE_UNREADABLE',
  /** A log file could not be rewritten for a reason other than the ones above. */
  FILE_NOT_REWRITTEN: 'AR_FILE_NOT_REWRITTEN',
  /** Anything else: a defect. */
  INTERNAL: 'AR_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

// Marks errors of this catalog across copies of this module, because the bundled command
// line and the HTTP layer it loads from dist/src each contain one.
const RETENTION_ERROR_BRAND = Symbol.for('audit-retention.RetentionError');

/** An expected failure with a stable code and a message that names the value at fault. */
export class RetentionError extends Error {
  override readonly name = 'RetentionError';
  readonly [RETENTION_ERROR_BRAND] = true;
  readonly code: ErrorCode;
  /** Seconds after which a retry may succeed; set for LOG_LOCKED and CLEANUP_RUNNING. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isRetentionError(error: unknown): error is RetentionError {
  return typeof error === 'object' && error !== null && RETENTION_ERROR_BRAND in error;
}

/**
 * Translates a failed file system call into a RetentionError that names the path.
 * `action` is a verb phrase such as "read" or "rewrite".
 */
export function fromFileSystemError(error: unknown, action: string, path: string): RetentionError {
  if (isRetentionError(error)) {
    return error;
  }

  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason = error instanceof Error ? error.message : String(error);

  switch (errno) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new RetentionError(
        ErrorCode.DISK_FULL,
        `Disk full: could not ${action} ${path}. Free space on its file system and run again; the original file is unchanged.`,
        { cause: error },
      );
    case 'EACCES':
    case 'EPERM':
      return new RetentionError(
        ErrorCode.PERMISSION_DENIED,
        `Permission denied: could not ${action} ${path} (${errno}). Grant the service user read and write access to the file and write access to its directory.`,
        { cause: error },
      );
    case 'EROFS':
      return new RetentionError(
        ErrorCode.PERMISSION_DENIED,
        `Read-only file system: could not ${action} ${path}. Mount the log directory read-write.`,
        { cause: error },
      );
    case 'Z_BUF_ERROR':
      return new RetentionError(
        ErrorCode.FILE_UNREADABLE,
        `Could not read ${path}: its gzip data ends too early (${reason}). Restore it from a backup, or move it out of the log directory.`,
        { cause: error },
      );
    case 'Z_DATA_ERROR':
      return new RetentionError(
        ErrorCode.FILE_UNREADABLE,
        `Could not read ${path}: it is not valid gzip data (${reason}). Restore it from a backup, or move it out of the log directory.`,
        { cause: error },
      );
    default:
      return new RetentionError(
        action === 'read' ? ErrorCode.FILE_UNREADABLE : ErrorCode.FILE_NOT_REWRITTEN,
        `Could not ${action} ${path}: ${reason}`,
        { cause: error },
      );
  }
}
