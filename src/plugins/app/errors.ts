/**
 * Maps error codes to HTTP statuses and turns every failure into the JSON error
 * shape `{"status":"error","message":"..."}`. Client errors are logged at info,
 * server errors at error.
 */

import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

import { ErrorCode, isRetentionError, type RetentionError } from '../../core/errors.js';

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  [ErrorCode.INVALID_INPUT]: 400,
  [ErrorCode.PAYLOAD_TOO_LARGE]: 413,
  [ErrorCode.UNSUPPORTED_MEDIA_TYPE]: 415,
  [ErrorCode.TOKEN_MISSING]: 401,
  [ErrorCode.TOKEN_INVALID]: 403,
  [ErrorCode.ROUTE_NOT_FOUND]: 404,
  [ErrorCode.PROFILE_NOT_FOUND]: 404,
  [ErrorCode.CLEANUP_RUNNING]: 409,
  [ErrorCode.DESTINATION_EXISTS]: 409,
  [ErrorCode.EXPORT_FAILED]: 500,
  // 400, not 409: the contract keeps 409 for a cleanup that is already running, which clients retry.
  [ErrorCode.AUDIT_DISABLED]: 400,
  [ErrorCode.LOG_LOCKED]: 423,
  [ErrorCode.DISK_FULL]: 507,
  [ErrorCode.CONFIG_INVALID]: 500,
  [ErrorCode.SCHEMAS_INVALID]: 500,
  [ErrorCode.LOG_DIR_MISSING]: 500,
  [ErrorCode.PERMISSION_DENIED]: 500,
  [ErrorCode.FILE_UNREADABLE]: 500,
  [ErrorCode.FILE_NOT_REWRITTEN]: 500,
  [ErrorCode.INTERNAL]: 500,
};

export function httpStatusFor(error: RetentionError): number {
  return STATUS_BY_CODE[error.code];
}

/** Describes a schema validation failure in words an operator can act on. */
function validationMessage(error: FastifyError): string {
  const problems = (error.validation ?? []).map((problem) => {
    const unknown = (problem.params as { additionalProperty?: string }).additionalProperty;
    if (problem.keyword === 'additionalProperties' && unknown !== undefined) {
      return `unknown parameter '${unknown}' (parameter names are case-sensitive; see GET /openapi.json)`;
    }
    const field = problem.instancePath.replace(/^\//, '').replaceAll('/', '.') || (problem.params as { missingProperty?: string }).missingProperty || '';
    const allowed = (problem.params as { allowedValues?: unknown[] }).allowedValues;
    const hint = allowed === undefined ? '' : ` (allowed: ${allowed.map(String).join(', ')})`;
    return `${field === '' ? '' : `${field} `}${problem.message ?? 'is invalid'}${hint}`;
  });
  const where = error.validationContext ?? 'request';
  return `Invalid ${where}: ${problems.join('; ')}.`;
}

export default fp(
  async function errorHandling(app: FastifyInstance) {
    app.setErrorHandler((error: FastifyError | RetentionError, request, reply) => {
      if (isRetentionError(error)) {
        const status = httpStatusFor(error);
        const log = status >= 500 ? request.log.error.bind(request.log) : request.log.info.bind(request.log);
        log({ code: error.code, err: error }, 'request failed');
        if (error.retryAfterSeconds !== undefined) {
          reply.header('retry-after', String(error.retryAfterSeconds));
        }
        return reply.code(status).send({ status: 'error', message: error.message, code: error.code });
      }

      if (error.validation !== undefined) {
        const message = validationMessage(error);
        request.log.info({ code: ErrorCode.INVALID_INPUT, message }, 'request rejected');
        return reply.code(400).send({ status: 'error', message, code: ErrorCode.INVALID_INPUT });
      }

      const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
      if (status < 500) {
        // Fastify's own client errors (FST_ERR_*) keep their status and get a code of this catalog.
        const code = status === 413 ? ErrorCode.PAYLOAD_TOO_LARGE : status === 415 ? ErrorCode.UNSUPPORTED_MEDIA_TYPE : ErrorCode.INVALID_INPUT;
        request.log.info({ code, fastifyCode: error.code, message: error.message }, 'request rejected');
        return reply.code(status).send({ status: 'error', message: error.message, code });
      }

      request.log.error({ err: error }, 'request failed');
      return reply.code(500).send({
        status: 'error',
        message: `Internal error while handling ${request.method} ${request.url}; the service log has the details under request id ${request.id}.`,
        code: ErrorCode.INTERNAL,
      });
    });

    app.setNotFoundHandler((request, reply) => {
      request.log.info({ method: request.method, url: request.url }, 'route not found');
      return reply.code(404).send({
        status: 'error',
        message: `Route ${request.method} ${request.url.split('?')[0]} not found. GET /openapi.json lists the routes.`,
        code: ErrorCode.ROUTE_NOT_FOUND,
      });
    });
  },
  { name: 'error-handling' },
);
