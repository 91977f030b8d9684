/**
 * Lets a stopping service exit as soon as its requests in flight have their responses.
 *
 * fastify.close() closes the connections that are idle when it is called, but a
 * keep-alive connection whose request is still running stays open after its
 * response until keepAliveTimeout (72 s by default in Fastify 5) expires, and
 * close() waits for it. Responses sent while the app closes therefore carry
 * `Connection: close`, so Node ends each such connection right after the response.
 */

import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

export default fp(
  async function closeConnections(app: FastifyInstance) {
    let closing = false;
    app.addHook('preClose', async () => {
      closing = true;
    });
    app.addHook('onSend', async (_request, reply, payload) => {
      if (closing) {
        reply.header('connection', 'close');
      }
      return payload;
    });
  },
  { name: 'close-connections' },
);
