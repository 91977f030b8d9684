/** Defaults of the audit section, shared by the schema and the loader without loading TypeBox. */

/** Default maximum time to wait for the log's lock file, in ms: a writer's batch append takes milliseconds. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;

/** Total log size above which stats sets `size_warning`, in bytes (1 GiB). */
export const DEFAULT_SIZE_WARNING_BYTES = 1024 ** 3;

/** Size at which the writer starts a new segment, in bytes (50 MiB, MXCP's default). */
export const DEFAULT_MAX_FILE_SIZE = 50 * 1024 ** 2;

/** Fsync policy of the writer: `always` fsyncs each batch before acknowledging it. */
export const DEFAULT_FSYNC_POLICY = 'always';

/**
 * Maximum body of POST /records, in bytes (4 MiB). The body is kept in memory and
 * written with one write(2) under the log's lock, so the limit bounds both the
 * memory per request and how long a cleanup waits for that lock. 4 MiB fits some
 * thousands of MXCP records of about 1 KiB each.
 */
export const DEFAULT_MAX_BATCH_BYTES = 4 * 1024 ** 2;
