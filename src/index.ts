/** Library entry point: the retention engine and its settings, usable without the HTTP service. */

export { buildApp } from './app.js';
export { loadSettings, selectProfile, type ProfileSettings, type Settings } from './config/load.js';
export { runCleanup, type CleanupOutcome, type CleanupRequest } from './core/cleanup.js';
export { ErrorCode, RetentionError } from './core/errors.js';
export { writeArchive, type ArchiveFormat, type ArchiveOptions, type ArchiveResult } from './core/export/archive.js';
export { runExport, exportResponse, type ExportOutcome, type ExportRequest } from './core/export/run.js';
export { StagingWriter, stageLogFiles, type StagingFiles } from './core/export/staging.js';
export type { AuditRecordInput } from './core/record-lines.js';
export {
  AuditLogWriter,
  FSYNC_POLICIES,
  writerOptionsFor,
  type AppendResult,
  type AuditLogWriterOptions,
  type FsyncPolicy,
} from './core/writer.js';
export { cleanupResponse, cleanupText } from './core/report.js';
export { AuditRetention } from './service.js';
