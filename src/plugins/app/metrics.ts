/**
 * Prometheus metrics on GET /metrics through prom-client. Gauges of the logs come
 * from the same stats as GET /stats, computed at scrape time from the scan index;
 * counters and histograms of cleanups are updated as cleanups finish in this process.
 */

import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import type { CleanupOutcome } from '../../core/cleanup.js';
import { parseIsoString } from '../../core/timestamp.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry;
  }
}

/** Buckets of cleanup durations, in seconds: from a cached run of milliseconds to a rewrite of many gigabytes. */
const DURATION_BUCKETS_SECONDS = [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Buckets of lock waits, in seconds: writers hold the lock for milliseconds; the default timeout is 5 s. */
const LOCK_WAIT_BUCKETS_SECONDS = [0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

export default fp(
  async function metrics(app: FastifyInstance) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'audit_retention_' });
    const service = app.retention;

    const records = new Gauge({ name: 'audit_retention_records', help: 'Records in the log, by profile and schema key.', labelNames: ['profile', 'schema'], registers: [registry] });
    const recordBytes = new Gauge({ name: 'audit_retention_record_bytes', help: 'Bytes of record lines, by profile and schema key.', labelNames: ['profile', 'schema'], registers: [registry] });
    const logBytes = new Gauge({ name: 'audit_retention_log_bytes', help: 'Size of all log files on disk, by profile.', labelNames: ['profile'], registers: [registry] });
    const expired = new Gauge({ name: 'audit_retention_expired_records', help: 'Records the next cleanup would delete, by profile and schema key.', labelNames: ['profile', 'schema'], registers: [registry] });
    const malformed = new Gauge({ name: 'audit_retention_malformed_lines', help: 'Lines kept because they are not records, by profile.', labelNames: ['profile'], registers: [registry] });
    const lastSuccess = new Gauge({ name: 'audit_retention_last_successful_cleanup_timestamp_seconds', help: 'Unix time of the last successful cleanup, from the cleanup history.', labelNames: ['profile'], registers: [registry] });
    const statsUp = new Gauge({ name: 'audit_retention_stats_up', help: '1 when the stats of the profile could be collected at this scrape, else 0.', labelNames: ['profile'], registers: [registry] });

    const runs = new Counter({ name: 'audit_retention_cleanup_runs_total', help: 'Cleanup runs of this process, by profile, kind and status.', labelNames: ['profile', 'dry_run', 'status'], registers: [registry] });
    const deleted = new Counter({ name: 'audit_retention_records_deleted_total', help: 'Records deleted by real cleanups of this process, by profile and schema key.', labelNames: ['profile', 'schema'], registers: [registry] });
    const duration = new Histogram({ name: 'audit_retention_cleanup_duration_seconds', help: 'Duration of cleanup runs.', labelNames: ['profile', 'dry_run'], buckets: DURATION_BUCKETS_SECONDS, registers: [registry] });
    const lockWait = new Histogram({ name: 'audit_retention_lock_wait_seconds', help: "Time a cleanup waited for the writers' lock per file.", labelNames: ['profile'], buckets: LOCK_WAIT_BUCKETS_SECONDS, registers: [registry] });

    service.on('cleanup', (outcome: CleanupOutcome) => {
      const dryRun = String(outcome.dryRun);
      runs.inc({ profile: outcome.profile, dry_run: dryRun, status: outcome.status });
      duration.observe({ profile: outcome.profile, dry_run: dryRun }, outcome.durationMs / 1000);
      if (!outcome.dryRun) {
        for (const [schema, count] of outcome.deletedPerSchema) {
          deleted.inc({ profile: outcome.profile, schema }, count);
        }
      }
      for (const file of outcome.files) {
        if (file.lockWaitMs !== null) {
          lockWait.observe({ profile: outcome.profile }, file.lockWaitMs / 1000);
        }
      }
    });

    /** Refreshes the log gauges from the stats of every enabled profile; runs at each scrape. */
    async function refreshLogGauges(): Promise<void> {
      for (const gauge of [records, recordBytes, logBytes, expired, malformed, lastSuccess]) {
        gauge.reset();
      }
      for (const profile of service.settings.profiles.values()) {
        if (!profile.enabled) {
          continue;
        }
        try {
          const report = await service.stats({ profile: profile.name, logger: app.log });
          for (const [schema, count] of Object.entries(report.by_schema)) records.set({ profile: profile.name, schema }, count);
          for (const [schema, bytes] of Object.entries(report.bytes_by_schema)) recordBytes.set({ profile: profile.name, schema }, bytes);
          // Every schema in the log gets a series, 0 when nothing is expired, so alerts can compare with 0.
          for (const schema of Object.keys(report.by_schema)) expired.set({ profile: profile.name, schema }, report.expired_per_schema[schema] ?? 0);
          logBytes.set({ profile: profile.name }, report.total_bytes);
          malformed.set({ profile: profile.name }, report.malformed_lines);
          if (report.last_cleanup !== null && report.last_cleanup.status === 'success') {
            lastSuccess.set({ profile: profile.name }, parseIsoString(report.last_cleanup.at) / 1000);
          }
          statsUp.set({ profile: profile.name }, 1);
        } catch (error) {
          app.log.error({ profile: profile.name, err: error }, 'stats for metrics failed');
          statsUp.set({ profile: profile.name }, 0);
        }
      }
    }

    app.decorate('metrics', registry);
    app.decorate('refreshLogMetrics', refreshLogGauges);
  },
  { name: 'metrics', dependencies: ['retention'] },
);

declare module 'fastify' {
  interface FastifyInstance {
    refreshLogMetrics: () => Promise<void>;
  }
}
