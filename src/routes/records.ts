/** POST /records: append records to a profile's log through its lock-aware writer. */

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';

import type { ProfileSettings } from '../config/load.js';
import { ErrorCode, RetentionError } from '../core/errors.js';
import { parseJsonDocument } from '../core/record-lines.js';
import { ErrorResponse } from '../schemas/common.js';
import { AuditRecordBody, NdjsonBody, RecordsQuery, RecordsResponse } from '../schemas/records.js';

const JSON_TYPE = 'application/json';
const NDJSON_TYPE = 'application/x-ndjson';

/** The body bytes as received, kept beside the parsed value because records are appended byte for byte. */
const rawBodies = new WeakMap<FastifyRequest, { ndjson: boolean; bytes: Buffer }>();

/** Returns the profile named in the query, or throws 404 for an unknown one and 400 for a disabled one. */
function enabledProfile(select: (name: string | undefined) => ProfileSettings, name: string | undefined): ProfileSettings {
  const profile = select(name);
  if (!profile.enabled) {
    throw new RetentionError(
      ErrorCode.AUDIT_DISABLED,
      `Audit logging is not enabled for profile '${profile.name}', so no record was appended. ` +
        `Set audit.enabled: true for it in the config (or MXCP_AUDIT_ENABLED=true) and restart the service.`,
    );
  }
  return profile;
}

function tooLarge(bytes: number, profile: ProfileSettings): RetentionError {
  return new RetentionError(
    ErrorCode.PAYLOAD_TOO_LARGE,
    `Request body of ${bytes} bytes exceeds max_batch_bytes (${profile.maxBatchBytes}) of profile '${profile.name}'. ` +
      'Split the records into smaller batches, or raise audit.max_batch_bytes.',
  );
}

const recordsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Fastify takes one body limit per route, before the profile is resolved, so each profile's own limit is checked below.
  const bodyLimit = Math.max(...[...app.retention.settings.profiles.values()].map((profile) => profile.maxBatchBytes));
  const select = (name: string | undefined) => app.retention.profile(name);

  // These parsers apply to this plugin's routes only, so any other content type gets 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(JSON_TYPE, { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    rawBodies.set(request, { ndjson: false, bytes });
    try {
      done(null, parseJsonDocument(bytes));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  app.addContentTypeParser(NDJSON_TYPE, { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    rawBodies.set(request, { ndjson: true, bytes });
    done(null, bytes.toString('utf8'));
  });

  app.post(
    '/records',
    {
      config: { access: 'admin' },
      bodyLimit,
      schema: {
        summary: 'Append records to the log, under the lock shared with cleanup; answers once they are on disk',
        security: [{ bearer: [] }],
        querystring: RecordsQuery,
        body: {
          content: {
            [JSON_TYPE]: { schema: AuditRecordBody },
            [NDJSON_TYPE]: { schema: NdjsonBody },
          },
        },
        response: {
          201: RecordsResponse,
          400: ErrorResponse,
          401: ErrorResponse,
          403: ErrorResponse,
          404: ErrorResponse,
          413: ErrorResponse,
          415: ErrorResponse,
          423: ErrorResponse,
          500: ErrorResponse,
          507: ErrorResponse,
        },
      },
      // Rejects an unknown or disabled profile and an oversized body before the body is read.
      preParsing: async (request, _reply, payload) => {
        const name = (request.query as { profile?: unknown }).profile;
        if (name !== undefined && typeof name !== 'string') {
          return payload;
        }
        const profile = enabledProfile(select, name);
        const declaredBytes = Number(request.headers['content-length']);
        if (declaredBytes > profile.maxBatchBytes) {
          throw tooLarge(declaredBytes, profile);
        }
        return payload;
      },
    },
    async (request, reply) => {
      const profile = enabledProfile(select, request.query.profile);
      const body = rawBodies.get(request);
      if (body === undefined) {
        throw new RetentionError(
          ErrorCode.INVALID_INPUT,
          `The request has no body. Send one record as ${JSON_TYPE}, or several as ${NDJSON_TYPE}, one object per line.`,
        );
      }
      if (body.bytes.length > profile.maxBatchBytes) {
        throw tooLarge(body.bytes.length, profile);
      }

      const writer = await app.writers.forProfile(profile);
      const result = body.ndjson ? await writer.appendNdjson(body.bytes) : await writer.appendJson(body.bytes);
      request.log.info(
        { profile: profile.name, records: result.records, path: result.path, lockWaitMs: Math.round(result.lockWaitMs) },
        'records appended',
      );

      reply.code(201);
      return {
        status: 'success' as const,
        message: `Appended ${result.records} records`,
        records_appended: result.records,
        path: result.path,
      };
    },
  );
};

export default recordsRoutes;
