/** Exposes the AuditRetention service to routes as `app.retention`. */

import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

import type { AuditRetention } from '../../service.js';

declare module 'fastify' {
  interface FastifyInstance {
    retention: AuditRetention;
  }
}

export default fp(
  async function retention(app: FastifyInstance, options: { service: AuditRetention }) {
    app.decorate('retention', options.service);
  },
  { name: 'retention' },
);
