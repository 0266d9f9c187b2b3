import net from 'node:net';
import type WebSocket from 'ws';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CloseCode } from '../../common/protocol/close-codes.js';
import {
  APP,
  OTHER_APP,
  OTHER_SECRET,
  basicAuth,
  pushApi,
  rawConnect,
  rawSession,
  RecordingDevice,
  sleep,
  startGatewayProcess,
  stopGateway,
  token,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../support/gateway.js';

/**
 * Hostile and malformed input against a real gateway process: every case is answered with the
 * documented close code or HTTP error, and a healthy device on the same gateway keeps getting
 * pushes throughout.
 */
describe('gateway bad input', () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('bad');
  let gw: GatewayProcess;
  let healthy: RecordingDevice;

  beforeAll(async () => {
    gw = await startGatewayProcess({
      redisUrl,
      prefix,
      id: 'gw-bad',
      args: [
        ...['--hello-timeout-ms', '1000', '--upgrade-timeout-ms', '1000', '--frame-rate', '20'],
        ...['--max-pending-handshakes-per-address', '20'],
      ],
    });
    healthy = new RecordingDevice({ device: 'healthy', endpoints: [gw.wsUrl] });
    await healthy.client.start();
  });
  afterAll(async () => {
    healthy?.client.stop();
    await stopGateway(gw);
  });

  /** After each case the healthy device still gets a push. */
  async function stillServing(label: string) {
    const r = await pushApi(gw.httpUrl, { to: { device: 'healthy' }, data: label });
    expect(r.status).toBe(202);
    await until(() => healthy.ids().includes(r.body.id as string), 5000, `healthy push after ${label}`);
  }

  async function expectClose(
    send: (ws: WebSocket) => Promise<void> | void,
    code: number,
    reason?: RegExp,
    url = gw.wsUrl,
  ) {
    const c = rawConnect(url);
    await c.opened;
    await send(c.ws);
    const closed = await c.closed;
    expect(closed.code).toBe(code);
    if (reason) expect(closed.reason).toMatch(reason);
    return c;
  }

  const hello = async (extra: Record<string, unknown> = {}) =>
    JSON.stringify({ t: 'hello', v: 1, token: await token('attacker'), ...extra });

  const wsCases: [string, (ws: WebSocket) => Promise<void> | void, number, RegExp?][] = [
    ['bad JSON', (ws) => ws.send('{"t":"hello",'), CloseCode.policyViolation, /bad JSON/],
    ['JSON that is not an object', (ws) => ws.send('[1,2,3]'), CloseCode.policyViolation, /not an object/],
    [
      'unknown frame type',
      (ws) => ws.send('{"t":"subscribe","topic":"x"}'),
      CloseCode.policyViolation,
      /unknown frame type "subscribe"/,
    ],
    [
      'hello without token',
      (ws) => ws.send('{"t":"hello","v":1}'),
      CloseCode.policyViolation,
      /hello: token/,
    ],
    [
      'hello with a future protocol version',
      async (ws) => ws.send(await hello({ v: 2 })),
      CloseCode.policyViolation,
      /hello: v/,
    ],
    [
      'hello with an unknown field',
      async (ws) => ws.send(await hello({ admin: true })),
      CloseCode.policyViolation,
      /hello/,
    ],
    [
      'hello with 65 tags',
      async (ws) => ws.send(await hello({ tags: Array.from({ length: 65 }, (_, i) => `t${i}`) })),
      CloseCode.policyViolation,
      /hello: tags/,
    ],
    [
      'hello with a tag containing a brace',
      async (ws) => ws.send(await hello({ tags: ['{x}'] })),
      CloseCode.policyViolation,
      /hello: tags\.0/,
    ],
    ['a frame before hello', (ws) => ws.send('{"t":"ping"}'), CloseCode.policyViolation, /before welcome/],
    [
      'an ack before hello',
      (ws) => ws.send('{"t":"ack","ids":["x"]}'),
      CloseCode.policyViolation,
      /before welcome/,
    ],
    [
      'an oversize frame',
      (ws) => ws.send(JSON.stringify({ t: 'ping', pad: 'x'.repeat(20_000) })),
      CloseCode.tooBig,
    ],
    ['a binary frame', (ws) => ws.send(Buffer.from([1, 2, 3])), CloseCode.unsupportedData],
    [
      'a garbage token',
      (ws) => ws.send('{"t":"hello","v":1,"token":"not.a.jwt"}'),
      CloseCode.authFailed,
      /auth: malformed/,
    ],
    [
      'a forged token (signed with another secret)',
      async (ws) =>
        ws.send(
          JSON.stringify({
            t: 'hello',
            v: 1,
            token: await token('forger', { secret: 'not-the-secret-0123456' }),
          }),
        ),
      CloseCode.authFailed,
      /auth: bad_signature/,
    ],
    [
      'an expired token',
      async (ws) =>
        ws.send(
          JSON.stringify({
            t: 'hello',
            v: 1,
            token: await token('late', { exp: Math.floor(Date.now() / 1000) - 60 }),
          }),
        ),
      CloseCode.tokenExpired,
      /auth: expired/,
    ],
    [
      'a token of an app the gateway does not know',
      async (ws) =>
        ws.send(
          JSON.stringify({
            t: 'hello',
            v: 1,
            token: await token('x', { app: 'nope', secret: 'whatever-secret-123456' }),
          }),
        ),
      CloseCode.authFailed,
      /auth: unknown_app/,
    ],
    [
      'an unsigned token (alg none)',
      (ws) => {
        const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
        const exp = Math.floor(Date.now() / 1000) + 600;
        const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: APP, sub: 'evil', aud: 'pushgate-device', exp })}.`;
        ws.send(JSON.stringify({ t: 'hello', v: 1, token: unsigned }));
      },
      CloseCode.authFailed,
    ],
    [
      'a token without a device (sub)',
      async (ws) => {
        const t = await new SignJWT({})
          .setProtectedHeader({ alg: 'HS256' })
          .setIssuer(APP)
          .setAudience('pushgate-device')
          .setExpirationTime('10m')
          .sign(new TextEncoder().encode('app1-secret-0123456789'));
        ws.send(JSON.stringify({ t: 'hello', v: 1, token: t }));
      },
      CloseCode.authFailed,
    ],
    [
      // One token, one spelling: `=` padding or a stray character is not another spelling of
      // a valid token (Node's base64 decoder would skip both).
      'a valid token with its signature padded',
      async (ws) => ws.send(JSON.stringify({ t: 'hello', v: 1, token: `${await token('padded')}=` })),
      CloseCode.authFailed,
      /auth: malformed/,
    ],
    [
      'a valid token with a stray character in its signature',
      async (ws) => {
        const t = await token('stray');
        ws.send(JSON.stringify({ t: 'hello', v: 1, token: `${t.slice(0, -4)}!${t.slice(-4)}` }));
      },
      CloseCode.authFailed,
      /auth: malformed/,
    ],
    [
      // Aliases are bound by the app server in the token: a device cannot take a user's alias.
      'a hello claiming an alias its token does not carry',
      async (ws) => ws.send(await hello({ alias: 'user-1001' })),
      CloseCode.policyViolation,
      /hello: alias: not the alias in the device token/,
    ],
    ['no hello at all (hello timeout)', () => {}, CloseCode.helloTimeout],
  ];

  it.each(wsCases)('closes on %s', async (label, send, code, reason) => {
    await expectClose(send, code, reason);
    await stillServing(label);
  });

  it('refuses a token of another app on a connection opened for a given app (?app=)', async () => {
    await expectClose(
      async (ws) =>
        ws.send(
          JSON.stringify({
            t: 'hello',
            v: 1,
            token: await token('x', { app: OTHER_APP, secret: OTHER_SECRET }),
          }),
        ),
      CloseCode.authFailed,
      /unknown_app/,
      `${gw.wsUrl}?app=${APP}`,
    );
    await stillServing('wrong app');
  });

  it('closes a session that floods frames', async () => {
    const c = await rawSession(gw.wsUrl, 'flooder');
    for (let i = 0; i < 200; i++) c.ws.send('{"t":"ping"}');
    expect(await c.closed).toMatchObject({ code: CloseCode.policyViolation, reason: 'frame flood' });
    await stillServing('frame flood');
  });

  it('closes a session that tries to take an alias by an update frame', async () => {
    const c = await rawSession(gw.wsUrl, 'alias-taker');
    c.ws.send(JSON.stringify({ t: 'update', alias: 'user-1001' }));
    expect(await c.closed).toMatchObject({
      code: CloseCode.policyViolation,
      reason: expect.stringMatching(/^update: alias: not the alias in the device token/) as string,
    });
    await stillServing('alias by update');
  });

  it('refuses an Idempotency-Key reused for a different request with 422, and sends the first once', async () => {
    const first = await pushApi(
      gw.httpUrl,
      { to: { device: 'healthy' }, data: 'first' },
      { idempotencyKey: 'k-reuse' },
    );
    expect(first.status).toBe(202);
    const other = await pushApi(
      gw.httpUrl,
      { to: { device: 'healthy' }, data: 'second' },
      { idempotencyKey: 'k-reuse' },
    );
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ error: 'idempotency_key_reused' });
    const again = await pushApi(
      gw.httpUrl,
      { to: { device: 'healthy' }, data: 'first' },
      { idempotencyKey: 'k-reuse' },
    );
    expect(again).toMatchObject({ status: 200, body: { id: first.body.id, duplicate: true } });
    await until(() => healthy.dataOf().includes('first'), 5000, 'first push');
    await stillServing('idempotency key reuse');
    expect(healthy.dataOf().filter((d) => d === 'first')).toHaveLength(1);
    expect(healthy.dataOf()).not.toContain('second');
  });

  it('refuses more idle upgrades from one address than its budget of connections without hello (1013)', async () => {
    const idle = [];
    for (let i = 0; i < 20; i++) {
      const c = rawConnect(gw.wsUrl);
      await c.opened;
      idle.push(c);
    }
    const over = rawConnect(gw.wsUrl);
    expect(await over.closed).toMatchObject({
      code: CloseCode.tryAgainLater,
      reason: 'too many connections without hello from this address',
    });
    for (const c of idle) c.ws.terminate();
    await stillServing('idle upgrades from one address');
  });

  it('answers update frames beyond the update rate with an error frame rate_limited and keeps the connection', async () => {
    const c = await rawSession(gw.wsUrl, 'tag-flapper');
    for (let i = 0; i < 15; i++) c.ws.send(JSON.stringify({ t: 'update', set: [`flap-${i}`] }));
    await until(
      () => c.frames.filter((f) => f.t === 'updated' || f.t === 'error').length === 15,
      5000,
      'answers',
    );
    const limited = c.frames.filter((f) => f.t === 'error' && f.code === 'rate_limited');
    expect(limited.length).toBeGreaterThanOrEqual(4);
    expect(c.frames.filter((f) => f.t === 'updated').length).toBeLessThanOrEqual(11);
    c.ws.send('{"t":"ping"}');
    await until(() => c.frames.some((f) => f.t === 'pong'), 5000, 'pong after rate limit');
    c.ws.close();
    await stillServing('update flood');
  });

  it('closes a second hello on an authenticated session', async () => {
    const c = await rawSession(gw.wsUrl, 'twice');
    c.ws.send(await hello());
    expect((await c.closed).code).toBe(CloseCode.policyViolation);
    await stillServing('hello twice');
  });

  it('answers an ack for an unknown id with an error frame and keeps the connection', async () => {
    const c = await rawSession(gw.wsUrl, 'acker');
    c.ws.send('{"t":"ack","ids":["no-such-message"]}');
    await until(() => c.frames.some((f) => f.t === 'error'), 5000, 'error frame');
    expect(c.frames.find((f) => f.t === 'error')).toMatchObject({
      code: 'unknown_id',
      ids: ['no-such-message'],
    });
    c.ws.send('{"t":"ping"}');
    await until(() => c.frames.some((f) => f.t === 'pong'), 5000, 'pong after bad ack');
    c.ws.close();
    await stillServing('unknown ack');
  });

  it('cuts off a slow upgrade that never finishes its headers', async () => {
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('GET /v1/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
    const started = Date.now();
    let response = '';
    sock.on('data', (d) => (response += d.toString()));
    await new Promise((r) => sock.once('close', r));
    expect(Date.now() - started).toBeLessThan(8000);
    expect(response).toMatch(/^HTTP\/1\.1 408/);
    await stillServing('slow upgrade');
  });

  it('answers an upgrade on an unknown path with 404', async () => {
    const c = rawConnect(`ws://127.0.0.1:${gw.port}/not-here`);
    await expect(c.opened).rejects.toThrow();
    const status = await new Promise<number>((resolve) => {
      c.ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      setTimeout(() => resolve(-1), 100);
    });
    expect([404, -1]).toContain(status);
  });

  const apiCases: [
    string,
    () => Promise<{ status: number; body: Record<string, unknown> }>,
    number,
    RegExp?,
  ][] = [
    ['a body that is not JSON', () => pushApi(gw.httpUrl, null, { rawBody: '{"to":' }), 400],
    ['a body without a target', () => pushApi(gw.httpUrl, { data: 1 }), 400, /^to: /],
    [
      'two targets at once',
      () => pushApi(gw.httpUrl, { to: { device: 'a', alias: 'b' }, data: 1 }),
      400,
      /^to/,
    ],
    [
      'a malformed tag expression',
      () => pushApi(gw.httpUrl, { to: { tag: 'vip && (bj' }, data: 1 }),
      400,
      /^to.tag: missing '\)'/,
    ],
    [
      'a device id with a brace',
      () => pushApi(gw.httpUrl, { to: { device: '{evil}' }, data: 1 }),
      400,
      /^to/,
    ],
    ['a negative ttl', () => pushApi(gw.httpUrl, { to: { device: 'a' }, data: 1, ttl: -1 }), 400, /^ttl: /],
    [
      'an unknown priority',
      () => pushApi(gw.httpUrl, { to: { device: 'a' }, data: 1, priority: 'urgent' }),
      400,
      /^priority: /,
    ],
    [
      'data over 4 KB',
      () => pushApi(gw.httpUrl, { to: { device: 'a' }, data: 'x'.repeat(5000) }),
      400,
      /^data: larger than/,
    ],
    [
      // The body parser accepts it (it fits in 64 KB); the check runs before any recursive
      // walk, so it is a 400 naming the field, not a stack overflow and a 500.
      'data nested 5,000 deep',
      () =>
        pushApi(gw.httpUrl, null, {
          rawBody: `{"to":{"device":"a"},"data":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`,
        }),
      400,
      /^data: nested deeper than 32 levels/,
    ],
    [
      'data nested 33 deep in arrays',
      () =>
        pushApi(gw.httpUrl, null, {
          rawBody: `{"to":{"device":"a"},"data":${'['.repeat(33)}${']'.repeat(33)}}`,
        }),
      400,
      /^data: nested deeper than 32 levels/,
    ],
    ['a body over 64 KB', () => pushApi(gw.httpUrl, { to: { device: 'a' }, data: 'x'.repeat(70_000) }), 413],
    [
      'a text/plain body',
      () => pushApi(gw.httpUrl, null, { rawBody: 'hello', contentType: 'text/plain' }),
      415, // PROTOCOL.md: not JSON -> 415 (fastify would parse text/plain itself and answer 400)
      /application\/json/,
    ],
    [
      'an XML body',
      () => pushApi(gw.httpUrl, null, { rawBody: '<push/>', contentType: 'application/xml' }),
      415,
    ],
    ['no credentials', () => pushApi(gw.httpUrl, { to: { device: 'a' }, data: 1 }, { auth: '' }), 401],
    [
      'a wrong secret',
      () =>
        pushApi(
          gw.httpUrl,
          { to: { device: 'a' }, data: 1 },
          { auth: basicAuth(APP, 'wrong-secret-0123456789') },
        ),
      401,
    ],
    [
      "another app's credentials",
      () =>
        pushApi(gw.httpUrl, { to: { device: 'a' }, data: 1 }, { auth: basicAuth(OTHER_APP, OTHER_SECRET) }),
      403,
    ],
    [
      'a bad idempotency key',
      () => pushApi(gw.httpUrl, { to: { device: 'a' }, data: 1 }, { idempotencyKey: 'has space' }),
      400,
      /^Idempotency-Key/,
    ],
  ];

  it.each(apiCases)('push API answers %s with an error', async (label, call, status, message) => {
    const r = await call();
    expect(r.status).toBe(status);
    expect(typeof r.body.error).toBe('string');
    if (message) expect(r.body.message).toMatch(message);
    await stillServing(label);
  });

  it('answers a status lookup of an unknown message with 404', async () => {
    const res = await fetch(`${gw.httpUrl}/v1/apps/${APP}/messages/nope`, {
      headers: { authorization: basicAuth() },
    });
    expect(res.status).toBe(404);
  });

  it('kept every healthy push flowing and never dropped the healthy device', async () => {
    await sleep(100);
    expect(healthy.client.connects).toBe(1);
    expect(healthy.closes).toEqual([]);
  });
});
