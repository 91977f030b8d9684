/** GET /cleanup/history: the cleanup history of one profile, newest first. */

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

import { ErrorResponse } from '../schemas/common.js';
import { HistoryQuery, HistoryResponse } from '../schemas/history.js';

const historyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/cleanup/history',
    {
      config: { access: 'read' },
      schema: {
        summary: 'Records of past real cleanups: when, who asked, cutoffs, counts, files, archive and the SHA-256 of the deleted lines',
        security: [{ bearer: [] }],
        querystring: HistoryQuery,
        response: { 200: HistoryResponse, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 500: ErrorResponse },
      },
    },
    async (request) => {
      const { profile, limit } = request.query;
      return app.retention.history({ profile, limit: limit ?? 100 });
    },
  );
};

export default historyRoutes;
