/**
 * The logging interface the core needs: the subset of pino's Logger that it calls,
 * so that the core runs under Fastify's logger, a plain pino instance or none.
 */
export interface Logger {
  info(context: object, message: string): void;
  warn(context: object, message: string): void;
  error(context: object, message: string): void;
}
