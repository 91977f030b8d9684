/**
 * The product's operations behind both faces, HTTP and CLI: profile selection,
 * the clock, and the core calls. Holds no Fastify.
 */

import { EventEmitter } from 'node:events';
import { join } from 'node:path';

import { selectProfile, type ProfileSettings, type Settings } from './config/load.js';
import type { CleanupArchiveFormat } from './core/archive-sink.js';
import { runCleanup, type CleanupOutcome } from './core/cleanup.js';
import { removeLeftoverTemporaries } from './core/durable.js';
import { isDirectory, logNames } from './core/layout.js';
import { acquireRunLock } from './core/lock.js';
import { readCleanupHistory, type CleanupHistoryRecord } from './core/history.js';
import type { Logger } from './core/logger.js';
import { ScanIndex } from './core/scan-index.js';
import { collectStats, type StatsReport } from './core/stats.js';

export interface CleanupCall {
  profile?: string | undefined;
  dryRun: boolean;
  lockTimeoutMs?: number | undefined;
  logger?: Logger | undefined;
  /** The client address for HTTP, `cli` for the command line; recorded in the cleanup history. */
  requestedBy: string;
  /** Format of the archive of deleted records, written before they are deleted. */
  archive?: CleanupArchiveFormat | undefined;
}

/** Events of the service, for observers such as the metrics plugin. */
export interface ServiceEvents {
  cleanup: [outcome: CleanupOutcome];
}

export class AuditRetention extends EventEmitter<ServiceEvents> {
  /** Scan index per log path, loaded once and shared by stats and cleanups of this process. */
  private readonly indexes = new Map<string, Promise<ScanIndex>>();

  constructor(readonly settings: Settings) {
    super();
  }

  private indexFor(profile: ProfileSettings): Promise<ScanIndex> {
    // Two profiles may share a log but read another timestamp field, so the settings are part of the key.
    const key = `${profile.logPath}\0${profile.timestampField}\0${profile.timestampUnit}`;
    let index = this.indexes.get(key);
    if (index === undefined) {
      index = ScanIndex.load(profile.logPath, { timestampField: profile.timestampField, timestampUnit: profile.timestampUnit });
      this.indexes.set(key, index);
    }
    return index;
  }

  /** Directory of a profile's archives: `archive/PROFILE` under the export directory. */
  archiveDirectory(profile: ProfileSettings): string {
    return join(this.settings.exportDirectory, 'archive', profile.name);
  }

  /** Returns the cleanup history of a profile, newest first. */
  async history(call: { profile?: string | undefined; limit: number }): Promise<{ profile: string; records: CleanupHistoryRecord[] }> {
    const profile = this.profile(call.profile);
    return { profile: profile.name, records: await readCleanupHistory(profile.logPath, call.limit) };
  }

  async stats(call: { profile?: string | undefined; logger?: Logger | undefined }): Promise<StatsReport> {
    const profile = this.profile(call.profile);
    return collectStats({ profile, nowMs: this.now(), index: await this.indexFor(profile), logger: call.logger });
  }

  /** Returns the current instant in epoch ms: AUDIT_RETENTION_NOW when set, else the system clock. */
  now(): number {
    return this.settings.fixedNowMs ?? Date.now();
  }

  profile(name: string | undefined): ProfileSettings {
    return selectProfile(this.settings, name);
  }

  async cleanup(call: CleanupCall): Promise<CleanupOutcome> {
    const profile = this.profile(call.profile);
    const outcome = await runCleanup({
      profile,
      dryRun: call.dryRun,
      nowMs: this.now(),
      lockTimeoutMs: call.lockTimeoutMs,
      logger: call.logger,
      requestedBy: call.requestedBy,
      archive: call.archive === undefined ? undefined : { format: call.archive, directory: this.archiveDirectory(profile) },
      index: profile.enabled ? await this.indexFor(profile) : null,
    });
    this.emit('cleanup', outcome);
    return outcome;
  }

  /**
   * Removes temporary files that a crash left in the log directories, for every
   * enabled profile whose directory no cleanup has locked right now.
   */
  async removeCrashLeftovers(logger: Logger): Promise<void> {
    for (const profile of this.settings.profiles.values()) {
      const { directory } = logNames(profile.logPath);
      if (!profile.enabled || !(await isDirectory(directory))) {
        continue;
      }
      try {
        const release = await acquireRunLock(directory);
        try {
          const removed = await removeLeftoverTemporaries(directory);
          if (removed.length > 0) {
            logger.warn({ profile: profile.name, files: removed }, 'removed temporary files of an interrupted run');
          }
        } finally {
          await release();
        }
      } catch (error) {
        logger.warn({ profile: profile.name, err: error }, 'could not check for leftover temporary files');
      }
    }
  }
}
