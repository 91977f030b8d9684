/** GET /openapi.json: the API contract, generated from the route schemas. */

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const docsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/openapi.json',
    { config: { access: 'public' }, schema: { hide: true } },
    async () => app.swagger(),
  );
};

export default docsRoutes;
