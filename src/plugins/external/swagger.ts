/**
 * Builds the OpenAPI document from the TypeBox route schemas. The committed copy in
 * openapi/ is generated from it with `npm run openapi`, and a test keeps both equal.
 */

import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

export const API_VERSION = '1.0.0';

export default fp(
  async function openapi(app: FastifyInstance) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'audit-retention',
          version: API_VERSION,
          description:
            'Keeps JSON-lines audit logs within their retention policy. Error responses have the shape {"status":"error","message":"..."}.',
        },
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer', description: 'AUDIT_RETENTION_ADMIN_TOKEN or AUDIT_RETENTION_READ_TOKEN, when set.' },
          },
        },
      },
    });
  },
  { name: 'openapi' },
);
