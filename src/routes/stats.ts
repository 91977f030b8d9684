/** GET /stats: totals of one profile's log for monitoring, cheap enough to poll every few seconds. */

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

import { ErrorResponse } from '../schemas/common.js';
import { StatsQuery, StatsResponse } from '../schemas/stats.js';

const statsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/stats',
    {
      config: { access: 'read' },
      schema: {
        summary: "Record counts, sizes, expired-pending records and the last cleanup of one profile's log",
        security: [{ bearer: [] }],
        querystring: StatsQuery,
        response: { 200: StatsResponse, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 500: ErrorResponse },
      },
    },
    async (request) => {
      const report = await app.retention.stats({ profile: request.query.profile, logger: request.log });
      request.log.debug({ profile: report.profile, filesScanned: report.files_scanned, durationMs: report.duration_ms }, 'stats collected');
      return report;
    },
  );
};

export default statsRoutes;
