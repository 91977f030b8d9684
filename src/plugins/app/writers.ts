/**
 * One AuditLogWriter per profile, opened on the first POST /records of that
 * profile and exposed as `app.writers`. Closing the app drains every writer:
 * Fastify runs onClose hooks after the requests in flight have finished, so each
 * acknowledged append is on disk before the process exits.
 */

import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

import type { ProfileSettings } from '../../config/load.js';
import { AuditLogWriter, writerOptionsFor } from '../../core/writer.js';
import type { AuditRetention } from '../../service.js';

declare module 'fastify' {
  interface FastifyInstance {
    writers: ProfileWriters;
  }
}

export class ProfileWriters {
  private readonly writers = new Map<string, Promise<AuditLogWriter>>();
  private closed = false;

  constructor(
    private readonly service: AuditRetention,
    private readonly logger: FastifyBaseLogger,
  ) {}

  /** Returns the profile's writer, opening it on first use. A failed open is retried by the next call. */
  forProfile(profile: ProfileSettings): Promise<AuditLogWriter> {
    const existing = this.writers.get(profile.name);
    if (existing !== undefined) {
      return existing;
    }

    const logger = this.logger.child({ profile: profile.name });
    const opening = AuditLogWriter.open(writerOptionsFor(profile, () => this.service.now(), logger));
    this.writers.set(profile.name, opening);
    opening.then(
      (writer) => {
        logger.info({ logPath: writer.logPath, fsync: profile.fsync, maxFileSize: profile.maxFileSize }, 'writer started');
        if (this.closed) {
          // The app closed while this writer opened; closeAll() has already passed it by.
          void writer.close();
        }
      },
      (error: unknown) => {
        this.writers.delete(profile.name);
        logger.error({ logPath: profile.logPath, err: error }, 'could not start the writer');
      },
    );
    return opening;
  }

  /** Makes every open writer choose its file again at its next batch (SIGHUP). Returns the number of writers. */
  reopenAll(): number {
    let count = 0;
    for (const [profile, opening] of this.writers) {
      count++;
      void opening.then(
        (writer) => {
          writer.reopen();
          this.logger.info({ profile, logPath: writer.logPath }, 'writer reopens its log file at the next batch');
        },
        () => undefined,
      );
    }
    return count;
  }

  /** Writes every pending append and closes all writers. */
  async closeAll(): Promise<void> {
    this.closed = true;
    const openings = [...this.writers.entries()];
    this.writers.clear();
    for (const [profile, opening] of openings) {
      const writer = await opening.catch(() => null);
      if (writer === null) {
        continue;
      }
      const pending = writer.pending;
      try {
        await writer.close();
        this.logger.info({ profile, logPath: writer.logPath, drained: pending }, 'writer stopped');
      } catch (error) {
        this.logger.error({ profile, logPath: writer.logPath, err: error }, 'writer stopped with an error');
      }
    }
  }
}

export default fp(
  async function writers(app: FastifyInstance) {
    const registry = new ProfileWriters(app.retention, app.log);
    app.decorate('writers', registry);
    app.addHook('onClose', async () => {
      await registry.closeAll();
    });
  },
  { name: 'writers', dependencies: ['retention'] },
);
