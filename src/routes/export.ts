/** POST /export: write one profile's records to a file under the export directory. */

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

import { exportResponse, runExport } from '../core/export/run.js';
import { ErrorResponse } from '../schemas/common.js';
import { ExportBody, ExportResponse } from '../schemas/export.js';

const exportRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/export',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Export records to a DuckDB, Parquet, CSV or JSON-lines file under the export directory',
        security: [{ bearer: [] }],
        body: ExportBody,
        response: {
          200: ExportResponse,
          400: ErrorResponse,
          401: ErrorResponse,
          403: ErrorResponse,
          404: ErrorResponse,
          409: ErrorResponse,
          500: ErrorResponse,
          507: ErrorResponse,
        },
      },
    },
    async (request) => {
      const body = request.body;
      const service = app.retention;
      const profile = service.profile(body.profile);
      request.log.info({ profile: profile.name, format: body.format, destination: body.destination }, 'export started');

      const outcome = await runExport({
        profile,
        exportDirectory: service.settings.exportDirectory,
        format: body.format,
        destination: body.destination,
        partition: body.partition,
        overwrite: body.overwrite,
        filters: {
          since: body.since,
          until: body.until,
          schema: body.schema,
          operationType: body.operation_type,
          operationName: body.operation_name,
          status: body.status,
          policy: body.policy,
          userId: body.user_id,
        },
        nowMs: service.now(),
        logger: request.log,
      });

      request.log.info(
        { profile: outcome.profile, format: outcome.format, path: outcome.path, records: outcome.recordsExported, bytes: outcome.bytes, durationMs: outcome.durationMs },
        'export finished',
      );
      return exportResponse(outcome);
    },
  );
};

export default exportRoutes;
