/** GET /metrics: Prometheus text format. */

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const metricsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/metrics',
    {
      config: { access: 'read' },
      schema: {
        summary: 'Prometheus metrics: records, bytes and expired records per profile and schema, cleanup runs, durations and lock waits',
        security: [{ bearer: [] }],
        produces: ['text/plain'],
      },
    },
    async (_request, reply) => {
      await app.refreshLogMetrics();
      reply.header('content-type', app.metrics.contentType);
      return app.metrics.metrics();
    },
  );
};

export default metricsRoutes;
