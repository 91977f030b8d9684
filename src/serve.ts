/**
 * Runs the HTTP service until SIGTERM or SIGINT: the `serve` command and the demo
 * both start it here, so they behave the same.
 */

import type { FastifyInstance } from 'fastify';

import { buildApp } from './app.js';
import type { Settings } from './config/load.js';

const LOOPBACK_HOSTS = ['127.0.0.1', '::1', 'localhost'];

/** Builds the app, removes crash leftovers, installs the signal handlers and listens; resolves once listening. */
export async function serve(settings: Settings): Promise<FastifyInstance> {
  const app = await buildApp(settings);
  for (const warning of settings.warnings) {
    app.log.warn({ configPath: settings.configPath }, warning);
  }
  if (settings.fixedNowMs !== undefined) {
    app.log.warn({ now: new Date(settings.fixedNowMs).toISOString() }, 'AUDIT_RETENTION_NOW fixes the clock; cleanups use it instead of the system time');
  }
  if (settings.adminToken === undefined && !LOOPBACK_HOSTS.includes(settings.host)) {
    app.log.warn({ host: settings.host }, 'listening beyond loopback without AUDIT_RETENTION_ADMIN_TOKEN: anyone who reaches the port can delete records');
  }

  await app.retention.removeCrashLeftovers(app.log);

  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'service stopping');
    app.close().then(
      () => {
        app.log.info({}, 'service stopped');
        process.exitCode = 0;
      },
      (error: unknown) => {
        app.log.error({ err: error }, 'service stopped with an error');
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // logrotate's postrotate sends SIGHUP: each writer chooses its log file again at its next batch.
  process.on('SIGHUP', () => {
    app.log.info({ signal: 'SIGHUP', writers: app.writers.reopenAll() }, 'reopening log files');
  });

  await app.listen({ host: settings.host, port: settings.port });
  app.log.info(
    { host: settings.host, port: settings.port, configPath: settings.configPath, profiles: [...settings.profiles.keys()] },
    'service started',
  );
  return app;
}
