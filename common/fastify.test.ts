import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createFastify } from './fastify.js';

const here = path.dirname(fileURLToPath(import.meta.url));

describe('createFastify: zod-only HTTP servers', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('serves routes without JSON schemas, object replies as JSON', async () => {
    app = createFastify({ bodyLimit: 1024 });
    app.post('/echo', async (req) => ({ got: req.body, n: 1 }));
    const res = await app.inject({ method: 'POST', url: '/echo', payload: { a: [1, 'x'] } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ got: { a: [1, 'x'] }, n: 1 });
    // The options given still apply.
    const big = await app.inject({ method: 'POST', url: '/echo', payload: { a: 'x'.repeat(2000) } });
    expect(big.statusCode).toBe(413);
  });

  it.each([
    ['body', { body: { type: 'object' } }, /JSON validation schema/],
    ['querystring', { querystring: { type: 'object' } }, /JSON validation schema/],
    ['response', { response: { 200: { type: 'object' } } }, /JSON response schema/],
  ])(
    'refuses a route with a JSON %s schema when it is registered, naming why',
    async (_what, schema, message) => {
      app = createFastify();
      app.post('/x', { schema }, async () => ({}));
      await expect(app.ready()).rejects.toThrow(message);
    },
  );

  it('loads neither ajv nor fast-json-stringify (a fresh process serving a request)', async () => {
    // A child process: this test runner's own module cache may hold them for other reasons.
    // (Plain fastify loads about 100 files of them here.)
    const program = `
      import { createRequire } from 'node:module';
      import { createFastify } from ${JSON.stringify(path.join(here, 'fastify.ts'))};
      const app = createFastify();
      app.get('/x', async () => ({ ok: true }));
      const res = await app.inject({ url: '/x' });
      const loaded = Object.keys(createRequire(import.meta.url).cache);
      const of = (name) => loaded.filter((f) => f.includes('/node_modules/' + name + '/')).length;
      // fastify's precompiled error serializer needs fast-json-stringify's small runtime
      // (lib/serializer.js, lib/v8.js), not its schema compiler.
      const runtime = ['lib/serializer.js', 'lib/v8.js'].map((f) => '/fast-json-stringify/' + f);
      const compiler = loaded.filter((f) => f.includes('/fast-json-stringify/') && !runtime.some((r) => f.endsWith(r))).length;
      console.log(JSON.stringify({ status: res.statusCode, body: res.json(), fastify: of('fastify'),
        ajv: of('ajv'), fjsCompiler: compiler }));
      await app.close();
    `;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', program],
      { cwd: here, timeout: 60_000 },
    );
    const seen = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(seen).toMatchObject({ status: 200, body: { ok: true }, ajv: 0, fjsCompiler: 0 });
    // The check sees CommonJS modules at all: fastify itself is there.
    expect(seen.fastify).toBeGreaterThan(10);
  });
});
