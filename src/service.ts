/**
 * The product's operations behind both faces, HTTP and CLI: profile selection,
 * the clock, and the core calls. Holds no Fastify.
 */

import { selectProfile, type ProfileSettings, type Settings } from './config/load.js';
import { runCleanup, type CleanupOutcome } from './core/cleanup.js';
import { removeLeftoverTemporaries } from './core/durable.js';
import { isDirectory, logNames } from './core/layout.js';
import { acquireRunLock } from './core/lock.js';
import type { Logger } from './core/logger.js';

export interface CleanupCall {
  profile?: string | undefined;
  dryRun: boolean;
  lockTimeoutMs?: number | undefined;
  logger?: Logger | undefined;
}

export class AuditRetention {
  constructor(readonly settings: Settings) {}

  /** Returns the current instant in epoch ms: AUDIT_RETENTION_NOW when set, else the system clock. */
  now(): number {
    return this.settings.fixedNowMs ?? Date.now();
  }

  profile(name: string | undefined): ProfileSettings {
    return selectProfile(this.settings, name);
  }

  async cleanup(call: CleanupCall): Promise<CleanupOutcome> {
    const profile = this.profile(call.profile);
    return runCleanup({
      profile,
      dryRun: call.dryRun,
      nowMs: this.now(),
      lockTimeoutMs: call.lockTimeoutMs,
      logger: call.logger,
    });
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
            logger.warn({ profile: profile.name, files: removed }, 'removed temporary files of an interrupted cleanup');
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
