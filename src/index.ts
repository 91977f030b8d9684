/** Library entry point: the retention engine and its settings, usable without the HTTP service. */

export { buildApp } from './app.js';
export { loadSettings, selectProfile, type ProfileSettings, type Settings } from './config/load.js';
export { runCleanup, type CleanupOutcome, type CleanupRequest } from './core/cleanup.js';
export { ErrorCode, RetentionError } from './core/errors.js';
export { cleanupResponse, cleanupText } from './core/report.js';
export { AuditRetention } from './service.js';
