/** GET /healthz (the process responds) and GET /readyz (it can do its work). */

import { constants } from 'node:fs';
import { access } from 'node:fs/promises';

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

import { logNames } from '../core/layout.js';

const HealthResponse = Type.Object({ status: Type.Literal('ok') });

const ReadinessResponse = Type.Object({
  status: Type.Enum(['ok', 'unavailable']),
  checks: Type.Array(
    Type.Object({
      profile: Type.String(),
      log_directory: Type.String(),
      ok: Type.Boolean(),
      message: Type.Optional(Type.String()),
    }),
  ),
});

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/healthz',
    { config: { access: 'public' }, schema: { summary: 'Liveness: the process answers', response: { 200: HealthResponse } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Readiness: config loaded and every enabled log directory readable and writable',
        response: { 200: ReadinessResponse, 503: ReadinessResponse },
      },
    },
    async (request, reply) => {
      const checks = [];
      for (const profile of app.retention.settings.profiles.values()) {
        if (!profile.enabled) {
          continue;
        }
        const { directory } = logNames(profile.logPath);
        try {
          await access(directory, constants.R_OK | constants.W_OK | constants.X_OK);
          checks.push({ profile: profile.name, log_directory: directory, ok: true });
        } catch (error) {
          const errno = (error as NodeJS.ErrnoException).code;
          checks.push({ profile: profile.name, log_directory: directory, ok: false, message: `${errno}: not readable and writable by this process` });
        }
      }

      const ready = checks.every((check) => check.ok);
      if (!ready) {
        request.log.warn({ checks }, 'not ready');
        reply.code(503);
      }
      return { status: ready ? ('ok' as const) : ('unavailable' as const), checks };
    },
  );
};

export default healthRoutes;
