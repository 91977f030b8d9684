/**
 * The two faces of a cleanup outcome: the JSON object of the HTTP API and `--json`,
 * and the text that operators' scripts parse. Both are fixed by the product contract.
 */

import type { CleanupDetails, CleanupErrorResponse, CleanupResponse, FileDetail } from '../schemas/cleanup.js';
import type { StatsResponse } from '../schemas/stats.js';
import type { CleanupOutcome } from './cleanup.js';
import { UNKNOWN_SCHEMA_KEY, compareKeys } from './retention.js';
import { formatInstant } from './timestamp.js';

export function cleanupMessage(outcome: CleanupOutcome): string {
  switch (outcome.status) {
    case 'success':
      return `Deleted ${outcome.totalDeleted} records`;
    case 'dry_run':
      return `Would delete ${outcome.totalDeleted} records`;
    case 'skipped':
      return `Audit logging is not enabled for profile '${outcome.profile}'`;
    case 'error':
      return outcome.error!.message;
  }
}

/**
 * Builds the answer object: the contract's three keys, then `details`, which a
 * skipped run leaves out as the contract's example does. A run with a failed file
 * gets the error shape plus the same facts.
 */
export function cleanupResponse(outcome: CleanupOutcome): CleanupResponse | CleanupErrorResponse {
  const message = cleanupMessage(outcome);
  const deletedPerSchema = Object.fromEntries(outcome.deletedPerSchema);
  if (outcome.status === 'skipped') {
    return { status: 'skipped', message, deleted_per_schema: deletedPerSchema };
  }
  if (outcome.status === 'error') {
    return { status: 'error', message, code: outcome.error!.code, deleted_per_schema: deletedPerSchema, details: cleanupDetails(outcome) };
  }
  return { status: outcome.status, message, deleted_per_schema: deletedPerSchema, details: cleanupDetails(outcome) };
}

function cleanupDetails(outcome: CleanupOutcome): CleanupDetails {
  const cutoffs: CleanupDetails['cutoffs'] = {};
  for (const rule of outcome.rules) {
    cutoffs[rule.key] = {
      retention_days: rule.retentionDays,
      source: rule.source,
      cutoff: formatInstant(rule.cutoffMs),
    };
  }

  const malformedByKind: Record<string, number> = {};
  let malformedLines = 0;
  let blankLines = 0;
  let recordsKept = 0;
  let bytesFreed = 0;
  const files: FileDetail[] = [];

  for (const result of outcome.files) {
    const { tally } = result;
    malformedLines += tally.malformed;
    blankLines += tally.blankLines;
    for (const [kind, count] of Object.entries(tally.malformedByKind)) {
      malformedByKind[kind] = (malformedByKind[kind] ?? 0) + count;
    }
    if (result.action !== 'failed') {
      recordsKept += tally.records - tally.expired;
      bytesFreed += result.bytesBefore - result.bytesAfter;
    }

    const detail: FileDetail = {
      path: result.file.name,
      action: result.action,
      records: tally.records,
      deleted: result.action === 'failed' ? 0 : tally.expired,
      malformed_lines: tally.malformed,
      bytes_before: result.bytesBefore,
      bytes_after: result.bytesAfter,
      partial_last_line: tally.partialTailBytes > 0,
    };
    if (result.lockWaitMs !== null) {
      detail.lock_wait_ms = Math.round(result.lockWaitMs * 1000) / 1000;
    }
    if (result.skipReason !== null) {
      detail.skip_reason = result.skipReason;
    }
    if (result.fromIndex === true) {
      detail.from_index = true;
    }
    if (result.error !== null) {
      detail.error = { code: result.error.code, message: result.error.message };
    }
    files.push(detail);
  }

  const named = (action: FileDetail['action']): string[] => files.filter((file) => file.action === action).map((file) => file.path);

  return {
    profile: outcome.profile,
    log_path: outcome.logPath,
    dry_run: outcome.dryRun,
    now: formatInstant(outcome.nowMs)!,
    duration_ms: outcome.durationMs,
    cutoffs,
    files_scanned: outcome.files.length,
    files_rewritten: named('rewritten'),
    files_removed: named('removed'),
    files_unchanged: named('unchanged').length,
    files_skipped: [
      ...outcome.skipped.map((skipped) => ({ path: skipped.name, reason: skipped.reason })),
      ...files.flatMap((file) => (file.skip_reason === undefined ? [] : [{ path: file.path, reason: file.skip_reason }])),
    ],
    files_failed: files.flatMap((file) => (file.error === undefined ? [] : [{ path: file.path, ...file.error }])),
    files_not_processed: outcome.notProcessed,
    bytes_freed: bytesFreed,
    records_kept: recordsKept,
    malformed_lines: malformedLines,
    malformed_by_kind: malformedByKind,
    blank_lines: blankLines,
    partial_last_lines: files.filter((file) => file.partial_last_line).map((file) => file.path),
    leftover_temporaries_removed: outcome.leftoversRemoved,
    schemas_file_ignored_lines: outcome.schemasFileIgnoredLines,
    archive: outcome.archive,
    files,
  };
}

/**
 * Formats the text output of `audit-retention cleanup`, as `mxcp log-cleanup` prints
 * it. The real run lists every key with deletions, sorted by key. The dry run has one
 * line per schema name and retention, summing versions that share both, sorted by name.
 */
export function cleanupText(outcome: CleanupOutcome): string {
  if (outcome.status === 'skipped') {
    return `${cleanupMessage(outcome)}\n`;
  }
  return outcome.dryRun ? dryRunText(outcome) : realRunText(outcome);
}

function realRunText(outcome: CleanupOutcome): string {
  if (outcome.totalDeleted === 0) {
    return 'Applying retention policies...\nNo records were deleted.\n';
  }
  const lines = ['Applying retention policies...', '', 'Deleted records by schema:'];
  for (const [key, count] of outcome.deletedPerSchema) {
    lines.push(`  ${key}: ${count} records`);
  }
  lines.push('', `Total records deleted: ${outcome.totalDeleted}`);
  return `${lines.join('\n')}\n`;
}

function dryRunText(outcome: CleanupOutcome): string {
  const groups = new Map<string, { name: string; retentionDays: number | null; count: number }>();
  for (const rule of outcome.rules) {
    const count = outcome.deletedPerSchema.get(rule.key) ?? 0;
    if (count === 0) {
      continue;
    }
    const name = rule.schemaName ?? UNKNOWN_SCHEMA_KEY;
    const groupKey = `${name}\u0000${rule.retentionDays}`;
    const group = groups.get(groupKey) ?? { name, retentionDays: rule.retentionDays, count: 0 };
    group.count += count;
    groups.set(groupKey, group);
  }
  const sorted = [...groups.values()].sort(
    (left, right) => compareKeys(left.name, right.name) || (left.retentionDays ?? Infinity) - (right.retentionDays ?? Infinity),
  );

  const lines = ['DRY RUN: Analyzing what would be deleted...', ''];
  if (outcome.totalDeleted === 0) {
    lines.push('No records would be deleted.');
    return `${lines.join('\n')}\n`;
  }
  for (const group of sorted) {
    lines.push(`  ${group.name} (retention: ${group.retentionDays} days): ${group.count} records`);
  }
  lines.push('', `Total records that would be deleted: ${outcome.totalDeleted}`, '', 'Run without --dry-run to actually delete these records.');
  return `${lines.join('\n')}\n`;
}

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

function countLines(counts: Record<string, number>): string[] {
  const entries = Object.entries(counts);
  return entries.length === 0 ? ['  (none)'] : entries.map(([key, count]) => `  ${key}: ${count}`);
}

/** Formats the text output of `audit-retention stats`, for people; scripts use --json. */
export function statsText(report: StatsResponse): string {
  if (!report.enabled) {
    return `Audit logging is not enabled for profile '${report.profile}'\n`;
  }
  const lines = [
    `Profile: ${report.profile}`,
    `Records: ${report.total_records} (malformed lines: ${report.malformed_lines}, blank lines: ${report.blank_lines})`,
    `Size: ${formatBytes(report.total_bytes)} in ${report.files.length} files${report.size_warning ? `, above the warning threshold of ${formatBytes(report.size_warning_bytes)}` : ''}`,
    `Earliest: ${report.earliest_timestamp ?? '-'}`,
    `Latest: ${report.latest_timestamp ?? '-'}`,
    '',
    'Records by schema:',
    ...countLines(report.by_schema),
    '',
    'Expired, deleted by the next cleanup:',
    ...countLines(report.expired_per_schema),
    '',
    `Last cleanup: ${report.last_cleanup === null ? 'none yet' : `${report.last_cleanup.at}, ${report.last_cleanup.status}, ${report.last_cleanup.deleted} records deleted`}`,
    '',
    'Files:',
    ...report.files.map(
      (file) =>
        `  ${file.path}: ${file.records} records, ${formatBytes(file.bytes)}, ${file.earliest_timestamp ?? '-'} to ${file.latest_timestamp ?? '-'}${file.active ? ', active' : ''}`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
