/**
 * Bearer-token access control. Each route declares `config.access`:
 * - `admin`: cleanup, export and writes; needs AUDIT_RETENTION_ADMIN_TOKEN when it is set;
 * - `read`: stats, history and metrics; needs the read or the admin token when
 *   AUDIT_RETENTION_READ_TOKEN is set;
 * - `public`: health checks and the OpenAPI document.
 * With no token configured the service trusts its network, which is why HOST
 * defaults to 127.0.0.1.
 */

import { timingSafeEqual } from 'node:crypto';

import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

import type { Settings } from '../../config/load.js';
import { ErrorCode, RetentionError } from '../../core/errors.js';

export type Access = 'admin' | 'read' | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
}

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) {
    return undefined;
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** Compares in constant time, so response timing does not leak how much of a token matched. */
function tokenMatches(presented: string, expected: string | undefined): boolean {
  if (expected === undefined) {
    return false;
  }
  const presentedBytes = Buffer.from(presented);
  const expectedBytes = Buffer.from(expected);
  return presentedBytes.length === expectedBytes.length && timingSafeEqual(presentedBytes, expectedBytes);
}

export default fp(
  async function auth(app: FastifyInstance, options: { settings: Settings }) {
    const { adminToken, readToken } = options.settings;

    app.addHook('onRequest', async (request) => {
      const access = request.routeOptions.config.access ?? 'public';
      if (access === 'public') {
        return;
      }
      const required = access === 'admin' ? adminToken : readToken;
      if (required === undefined) {
        return;
      }

      const presented = bearerToken(request);
      if (presented === undefined) {
        throw new RetentionError(
          ErrorCode.TOKEN_MISSING,
          `Missing token: ${request.method} ${request.routeOptions.url} requires an ${access === 'admin' ? 'admin' : 'read or admin'} token in the header 'Authorization: Bearer TOKEN'.`,
        );
      }
      const granted = tokenMatches(presented, adminToken) || (access === 'read' && tokenMatches(presented, readToken));
      if (!granted) {
        throw new RetentionError(
          ErrorCode.TOKEN_INVALID,
          `Invalid token for ${request.method} ${request.routeOptions.url}: it needs the ${access === 'admin' ? 'admin' : 'read or admin'} token.`,
        );
      }
    });
  },
  { name: 'auth' },
);
