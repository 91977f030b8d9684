/**
 * Builds the Fastify application. Production and tests call this same function,
 * so tests exercise the real plugins, hooks and serializers.
 */

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';

import type { Settings } from './config/load.js';
import auth from './plugins/app/auth.js';
import errorHandling from './plugins/app/errors.js';
import retention from './plugins/app/retention.js';
import writers from './plugins/app/writers.js';
import closeConnections from './plugins/app/close-connections.js';
import openapi from './plugins/external/swagger.js';
import cleanupRoutes from './routes/cleanup.js';
import exportRoutes from './routes/export.js';
import statsRoutes from './routes/stats.js';
import metricsRoutes from './routes/metrics.js';
import historyRoutes from './routes/history.js';
import metrics from './plugins/app/metrics.js';
import docsRoutes from './routes/docs.js';
import healthRoutes from './routes/health.js';
import recordsRoutes from './routes/records.js';
import { AuditRetention } from './service.js';

/** Maximum time a cleanup request may take before Node closes the socket, in ms; 0 turns the limit off. */
const REQUEST_TIMEOUT_MS = 0;

export async function buildApp(settings: Settings): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: settings.logLevel,
      redact: { paths: ['req.headers.authorization'], censor: '[redacted]' },
    },
    // Cleanups of large logs outlast Node's default 300 s request timeout.
    requestTimeout: REQUEST_TIMEOUT_MS,
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  await app.register(openapi);
  await app.register(errorHandling);
  await app.register(auth, { settings });
  await app.register(retention, { service: new AuditRetention(settings) });
  await app.register(metrics);
  await app.register(writers);
  await app.register(closeConnections);

  await app.register(healthRoutes);
  await app.register(docsRoutes);
  await app.register(cleanupRoutes);
  await app.register(exportRoutes);
  await app.register(statsRoutes);
  await app.register(metricsRoutes);
  await app.register(historyRoutes);
  await app.register(recordsRoutes);

  return app;
}
