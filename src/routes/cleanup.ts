/** POST /cleanup: apply retention to one profile's log, or report what it would delete. */

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

import { cleanupResponse } from '../core/report.js';
import { httpStatusFor } from '../plugins/app/errors.js';
import { CleanupErrorResponse, CleanupQuery, CleanupResponse } from '../schemas/cleanup.js';
import { ErrorResponse } from '../schemas/common.js';

const cleanupRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/cleanup',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Delete expired records, or report what a real run would delete',
        security: [{ bearer: [] }],
        querystring: CleanupQuery,
        response: {
          200: CleanupResponse,
          400: ErrorResponse,
          401: ErrorResponse,
          403: ErrorResponse,
          404: ErrorResponse,
          409: ErrorResponse,
          423: CleanupErrorResponse,
          500: CleanupErrorResponse,
          507: CleanupErrorResponse,
        },
      },
    },
    async (request, reply) => {
      const { profile, lockTimeoutMs, archive } = request.query;
      const dryRun = request.query.dryRun === 'true';

      const outcome = await app.retention.cleanup({ profile, dryRun, lockTimeoutMs, archive, logger: request.log, requestedBy: request.ip });
      const body = cleanupResponse(outcome);
      request.log.info(
        { profile: outcome.profile, dryRun, status: outcome.status, deleted: outcome.totalDeleted, files: outcome.files.length, durationMs: outcome.durationMs },
        'cleanup finished',
      );

      if (outcome.error === null) {
        return body;
      }

      if (outcome.error.retryAfterSeconds !== undefined) {
        reply.header('retry-after', String(outcome.error.retryAfterSeconds));
      }
      reply.code(httpStatusFor(outcome.error) as 500);
      return body;
    },
  );
};

export default cleanupRoutes;
