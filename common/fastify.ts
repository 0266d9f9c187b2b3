import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';

/** A route declared a JSON schema: pushgate's HTTP servers validate with zod only. */
export class JsonSchemaRouteError extends Error {
  override name = 'JsonSchemaRouteError';
  constructor(what: 'validation' | 'response') {
    super(
      `a fastify route declared a JSON ${what} schema; pushgate validates requests with zod ` +
        '(common/protocol, operator/api) and does not load ajv or fast-json-stringify',
    );
  }
}

/**
 * The schema compilers fastify builds on first use. By default fastify loads ajv (with formats)
 * and fast-json-stringify as it starts, about 100 modules and 4 MiB of RSS at rest that no
 * pushgate route uses. With these factories neither is loaded, and a route that declares a JSON
 * schema is refused when it is registered, instead of being silently validated a second way.
 */
const zodOnlySchemaController: FastifyServerOptions['schemaController'] = {
  compilersFactory: {
    buildValidator: () => {
      throw new JsonSchemaRouteError('validation');
    },
    buildSerializer: () => {
      throw new JsonSchemaRouteError('response');
    },
  },
};

/** A fastify instance as every pushgate HTTP server makes one (no logger of its own, zod only). */
export function createFastify(opts: Omit<FastifyServerOptions, 'schemaController'> = {}): FastifyInstance {
  return Fastify({ logger: false, ...opts, schemaController: zodOnlySchemaController });
}
