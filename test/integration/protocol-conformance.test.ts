import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CloseCode } from '../../common/protocol/close-codes.js';
import { CLIENT_FRAME_TYPES, SUBPROTOCOL, MAX_CLIENT_FRAME_BYTES } from '../../common/protocol/frames.js';
import { parseTarget, requestFingerprint } from '../../common/push/index.js';
import { createRedis } from '../../common/redis/connection.js';
import { redisKeys } from '../../common/redis/keys.js';
import { claimIdempotencyKey } from '../../common/redis/messages.js';
import { repoRoot, startRedis } from '../support/stack.js';
import { publishAppLimits } from '../../common/ratelimit/releaser.js';
import {
  APP,
  OTHER_APP,
  OTHER_SECRET,
  basicAuth,
  pushApi,
  rawConnect,
  rawSession,
  sleep,
  startGatewayProcess,
  startPushgateProcess,
  stopGateway,
  token,
  uniquePrefix,
  until,
  type GatewayProcess,
  type PushgateProcess,
} from '../support/gateway.js';

/**
 * gateway/PROTOCOL.md is the contract: this test reads its own tables (device frames, close
 * codes, locator answers, push API answers, error-frame codes, message status fields) and
 *   - produces every row against real gateway processes (a row without a scenario fails), and
 *   - checks that every code the server source can produce is a row (a code added to the server
 *     but not to the document fails).
 */
const DOC = readFileSync(path.join(repoRoot, 'gateway/PROTOCOL.md'), 'utf8');

/** The rows of the first markdown table after `heading` (a line that contains it). */
function tableAfter(heading: string): string[][] {
  const lines = DOC.split('\n');
  const start = lines.findIndex((l) => l.includes(heading));
  if (start < 0) throw new Error(`PROTOCOL.md has no "${heading}"`);
  const rows: string[][] = [];
  let inTable = false;
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('|')) {
      inTable = true;
      const cells = line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim());
      if (!/^-+$/.test(cells[0] ?? '')) rows.push(cells);
    } else if (inTable) break;
  }
  return rows.slice(1); // without the header row
}
const unquote = (s: string) => s.replace(/`/g, '');

const DOC_CLOSE_CODES = tableAfter('## 7. Close codes').map((r) => Number(r[0]));
const DOC_LOCATOR = tableAfter('Locator answers').map((r) => `${r[0]} ${unquote(r[1]!)}`.trim());
const DOC_PUSH_API = tableAfter('Push API answers').map((r) => `${r[0]} ${unquote(r[1]!)}`.trim());
const DOC_ERROR_FRAMES = tableAfter('### error').map((r) => unquote(r[0]!));
const DOC_STATUS_FIELDS = tableAfter('Message status fields').map((r) => [unquote(r[0]!), r[1]!] as const);
/** The frames section 5 documents (one `### <t>` each; "Rate" is not a frame). */
const DOC_DEVICE_FRAMES = (() => {
  const section = DOC.slice(DOC.indexOf('## 5. Frames from the device'), DOC.indexOf('## 6. '));
  return [...section.matchAll(/^### (\S+)$/gm)].map((m) => m[1]!).filter((t) => t !== 'Rate');
})();
const DOC_RECV_FIELDS = tableAfter('### recv').map((r) => unquote(r[0]!));

/** Source files of the programs that speak the protocol (not tests). */
function sources(): { file: string; text: string }[] {
  const dirs = ['gateway', 'workloads/locator', 'common/protocol'];
  return dirs.flatMap((d) =>
    readdirSync(path.join(repoRoot, d), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
      .map((f) => ({ file: `${d}/${f}`, text: readFileSync(path.join(repoRoot, d, f), 'utf8') })),
  );
}

describe('PROTOCOL.md tables', () => {
  it('parse to the expected shape', () => {
    expect(DOC_CLOSE_CODES.length).toBeGreaterThanOrEqual(12);
    expect(DOC_CLOSE_CODES.every((c) => Number.isInteger(c) && c >= 1000 && c < 5000)).toBe(true);
    expect(DOC_LOCATOR).toContain('200');
    expect(DOC_PUSH_API).toContain('202');
    expect(DOC_ERROR_FRAMES).toContain('unknown_id');
    expect(DOC_RECV_FIELDS).toEqual(['seq']);
  });

  it('document every frame a device can send, and nothing else', () => {
    expect([...DOC_DEVICE_FRAMES].sort()).toEqual([...CLIENT_FRAME_TYPES].sort());
  });

  it('list every close code the server can send', () => {
    const fromSource = new Set<number>(Object.values(CloseCode));
    for (const { text } of sources())
      for (const m of text.matchAll(/\.close\((\d{4})\b/g)) fromSource.add(Number(m[1]));
    expect([...fromSource].filter((c) => !DOC_CLOSE_CODES.includes(c))).toEqual([]);
  });

  it('list every HTTP error code the server can answer', () => {
    const fromSource = new Set<string>();
    for (const { text } of sources()) {
      for (const m of text.matchAll(/error: '([a-z_]+)'/g)) fromSource.add(m[1]!);
      for (const m of text.matchAll(/problem\(reply, \d+, '([a-z_]+)'/g)) fromSource.add(m[1]!);
      const handler = /setErrorHandler\(([\s\S]*?)\n {2}\}\);/.exec(text);
      if (handler) for (const m of handler[1]!.matchAll(/'([a-z_]+)'/g)) fromSource.add(m[1]!);
    }
    expect(fromSource.size).toBeGreaterThanOrEqual(8);
    const documented = new Set([...DOC_LOCATOR, ...DOC_PUSH_API].map((r) => r.split(' ')[1]).filter(Boolean));
    expect([...fromSource].filter((c) => !documented.has(c))).toEqual([]);
  });

  it('list every error-frame code the server can send', () => {
    const fromSource = new Set<string>();
    for (const { text } of sources())
      for (const m of text.matchAll(/(?:t: 'error',|encodeError\()\s*\{?\s*code: '([a-z_]+)'/g))
        fromSource.add(m[1]!);
    expect(fromSource.size).toBeGreaterThanOrEqual(1);
    expect([...fromSource].filter((c) => !DOC_ERROR_FRAMES.includes(c))).toEqual([]);
  });
});

describe('every row of PROTOCOL.md is produced by a real gateway', () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('conform');
  let gw: GatewayProcess;
  let small: GatewayProcess;
  let locator: PushgateProcess | undefined;

  beforeAll(async () => {
    [gw, small] = await Promise.all([
      startGatewayProcess({
        redisUrl,
        prefix,
        id: 'gw-conform',
        args: [
          ...['--hello-timeout-ms', '1000', '--heartbeat-min-ms', '1000'],
          ...['--heartbeat-initial-ms', '1000', '--max-recipients', '1'],
        ],
      }),
      // A gateway of its own for the connection limit (1013), on another prefix.
      startGatewayProcess({
        redisUrl,
        prefix: uniquePrefix('conform-small'),
        id: 'gw-small',
        args: ['--max-connections', '1', '--max-tags-per-app', '2'],
      }),
    ]);
  });
  afterAll(async () => {
    locator?.proc.kill('SIGKILL');
    await Promise.all([stopGateway(gw), stopGateway(small)]);
  });

  const hello = async (device: string, opts: Parameters<typeof token>[1] = {}) =>
    JSON.stringify({ t: 'hello', v: 1, token: await token(device, opts) });

  /** Opens a connection, runs `act`, resolves the close (code, reason) and frames seen. */
  async function closeOf(act: (ws: WebSocket) => unknown | Promise<unknown>, url = gw.wsUrl) {
    const c = rawConnect(url);
    await c.opened;
    await act(c.ws);
    return { ...(await c.closed), frames: c.frames };
  }

  /** One scenario per documented close code: it must end with that code. */
  const closeScenarios: Record<number, () => Promise<{ code: number; reason: string; frames: object[] }>> = {
    1000: () =>
      closeOf(async (ws) => {
        ws.send(await hello('c-bye'));
        await sleep(300);
        ws.send('{"t":"bye"}');
      }),
    1003: () => closeOf((ws) => ws.send(Buffer.from('{"t":"ping"}'), { binary: true })),
    1007: () => closeOf((ws) => ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false })),
    1008: () => closeOf((ws) => ws.send('{"t":')),
    1009: () => closeOf((ws) => ws.send('x'.repeat(MAX_CLIENT_FRAME_BYTES + 1))),
    1012: async () => {
      // A draining gateway: a new connection gets the drain frame, then 1012.
      const g = await startGatewayProcess({
        redisUrl,
        prefix,
        id: 'gw-conform-drain',
        args: ['--drain-rate', '1', '--drain-grace-ms', '20000'],
      });
      try {
        const held = await Promise.all([0, 1, 2, 3, 4].map((i) => rawSession(g.wsUrl, `c-held-${i}`)));
        g.kill('SIGTERM');
        await until(() => held.some((h) => h.ws.readyState !== WebSocket.OPEN), 10_000, 'the drain to start');
        return await closeOf(() => undefined, g.wsUrl);
      } finally {
        await stopGateway(g);
      }
    },
    1013: async () => {
      // The connection limit counts authenticated devices (connections without hello have a
      // budget of their own).
      const first = await rawSession(small.wsUrl, 'c-limit');
      try {
        return await closeOf(() => undefined, small.wsUrl);
      } finally {
        first.ws.close();
      }
    },
    4001: () =>
      closeOf(async (ws) => ws.send(await hello('c-forged', { app: OTHER_APP, secret: 'x'.repeat(24) }))),
    4002: () =>
      closeOf(async (ws) => ws.send(await hello('c-expired', { exp: Math.floor(Date.now() / 1000) - 60 }))),
    4003: () => closeOf(() => undefined),
    4004: () => closeOf(async (ws) => ws.send(await hello('c-silent'))),
    4005: async () => {
      const first = await rawSession(gw.wsUrl, 'c-twice');
      await rawSession(gw.wsUrl, 'c-twice');
      return { ...(await first.closed), frames: first.frames };
    },
  };

  /** A gateway whose own Redis has just been stopped (storage_unavailable). */
  let deadRedisGateway: Promise<GatewayProcess> | undefined;
  const withDeadRedis = () =>
    (deadRedisGateway ??= (async () => {
      const redis = await startRedis(`conform-${process.pid}`);
      const g = await startGatewayProcess({ redisUrl: redis.url, prefix, id: 'gw-conform-dead-redis' });
      await redis.down();
      return g;
    })());
  afterAll(async () => {
    if (deadRedisGateway) await stopGateway(await deadRedisGateway);
  });

  it('has a scenario for every documented close code, and nothing else', () => {
    expect(Object.keys(closeScenarios).map(Number).sort()).toEqual([...DOC_CLOSE_CODES].sort());
  });

  it.each(DOC_CLOSE_CODES)('close %i', async (code) => {
    const scenario = closeScenarios[code];
    expect(scenario, `no scenario for close ${code}`).toBeDefined();
    const closed = await scenario!();
    expect(closed.code).toBe(code);
    if (code === 1007 || code === 1009) expect(closed.reason).toBe(''); // as documented
    if (code === 1012) expect(closed.frames.map((f) => (f as { t?: string }).t)).toEqual(['drain']);
  });

  it('documents exactly the error frames that have a scenario here', () => {
    expect(DOC_ERROR_FRAMES).toEqual(['unknown_id', 'tag_limit', 'rate_limited']);
  });

  it("error frame tag_limit: tags beyond the app's cap of distinct tags", async () => {
    const c = await rawSession(small.wsUrl, 'c-tagger');
    c.ws.send(JSON.stringify({ t: 'update', set: ['t1', 't2', 't3'] }));
    await until(() => c.frames.some((f) => f.t === 'error'), 5000, 'the error frame');
    expect(c.frames.find((f) => f.t === 'error')).toMatchObject({ code: 'tag_limit' });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    c.ws.close();
    await c.closed;
  });

  it('error frame rate_limited: more update frames than the update rate', async () => {
    const c = await rawSession(gw.wsUrl, 'c-updater');
    for (let i = 0; i < 12; i++) c.ws.send(JSON.stringify({ t: 'update', set: [`u${i}`] }));
    await until(() => c.frames.some((f) => f.t === 'error'), 5000, 'the error frame');
    expect(c.frames.find((f) => f.t === 'error')).toMatchObject({ code: 'rate_limited' });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    c.ws.close();
  });

  it('error frame unknown_id: an ack of an id the gateway does not hold', async () => {
    const c = await rawSession(gw.wsUrl, 'c-acker');
    c.ws.send(JSON.stringify({ t: 'ack', ids: ['no-such-message'] }));
    await until(() => c.frames.some((f) => f.t === 'error'), 5000, 'the error frame');
    expect(c.frames.find((f) => f.t === 'error')).toMatchObject({
      code: 'unknown_id',
      ids: ['no-such-message'],
    });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    c.ws.close();
  });

  const locate = async (base: string, query: string) => {
    const res = await fetch(`${base}/v1/locate?${query}`);
    const body = (await res.json()) as { error?: string };
    return `${res.status} ${body.error ?? ''}`.trim();
  };

  const locatorScenarios: Record<string, () => Promise<string>> = {
    '200': () => locate(gw.httpUrl, `app=${APP}&device=d1&region=cn-north-1`),
    '400 bad_request': () => locate(gw.httpUrl, `app=${APP}&device=d1`),
    '503 no_gateway': async () => {
      locator ??= await startPushgateProcess('locator', [
        ...['--redis-url', redisUrl, '--key-prefix', uniquePrefix('conform-empty')],
      ]);
      return locate(`http://127.0.0.1:${locator.port}`, `app=${APP}&device=d1&region=cn-north-1`);
    },
    '503 storage_unavailable': async () =>
      locate((await withDeadRedis()).httpUrl, `app=${APP}&device=d1&region=cn-north-1`),
  };

  it('has a scenario for every documented locator answer', () => {
    expect(Object.keys(locatorScenarios).sort()).toEqual([...DOC_LOCATOR].sort());
  });
  it.each(DOC_LOCATOR)('locator %s', async (row) => {
    expect(await locatorScenarios[row]!()).toBe(row);
  });

  it('locator: an unknown app gets the same answer as a known one', async () => {
    const q = (app: string) => fetch(`${gw.httpUrl}/v1/locate?app=${app}&device=d1&region=cn-north-1`);
    const [known, unknown] = await Promise.all([q(APP), q('no-such-app')]);
    expect(unknown.status).toBe(known.status);
    expect(await unknown.json()).toEqual(await known.json());
  });

  const push = async (opts: Parameters<typeof pushApi>[2] & { body?: unknown; base?: string } = {}) => {
    const r = await pushApi(opts.base ?? gw.httpUrl, opts.body ?? { to: { device: 'p1' }, data: 'x' }, opts);
    return `${r.status} ${(r.body.error as string | undefined) ?? ''}`.trim();
  };

  const pushScenarios: Record<string, () => Promise<string>> = {
    '202': () => push(),
    '200': async () => {
      await push({ idempotencyKey: 'conform-1' });
      return push({ idempotencyKey: 'conform-1' });
    },
    '400 bad_request': () => push({ body: { to: { device: 'p1' }, data: 'x', ttl: 604_801 } }),
    '401 unauthorized': () => push({ auth: basicAuth(APP, 'wrong-secret-0123456789') }),
    '403 forbidden': () => push({ auth: basicAuth(OTHER_APP, OTHER_SECRET) }),
    '404 not_found': async () => {
      const res = await fetch(`${gw.httpUrl}/v1/apps/${APP}/messages/no-such-id`, {
        headers: { authorization: basicAuth() },
      });
      return `${res.status} ${((await res.json()) as { error: string }).error}`;
    },
    '413 too_large': () => push({ rawBody: JSON.stringify({ to: { all: true }, data: 'x'.repeat(70_000) }) }),
    '415 unsupported_media_type': () =>
      push({ contentType: 'text/plain', rawBody: '{"to":{"all":true},"data":1}' }),
    '503 storage_unavailable': async () => push({ base: (await withDeadRedis()).httpUrl }),
    '422 idempotency_key_reused': async () => {
      await push({ idempotencyKey: 'conform-2', body: { to: { device: 'p1' }, data: 'first' } });
      return push({ idempotencyKey: 'conform-2', body: { to: { device: 'p1' }, data: 'another' } });
    },
    '409 idempotency_in_progress': async () => {
      // A first request with this key that is still storing (reserved just now, never finished):
      // the same request again waits 5 s for it, then gives up.
      const body = { to: { device: 'p1' }, data: 'slow' };
      const req = { to: parseTarget(body.to), data: body.data, ttl: 86_400, priority: 'normal' as const };
      const redis = createRedis(redisUrl);
      await claimIdempotencyKey(
        redis,
        redisKeys(prefix),
        APP,
        'conform-3',
        'still-storing',
        requestFingerprint(req),
      );
      redis.disconnect();
      return push({ idempotencyKey: 'conform-3', body });
    },
    '429 deferred_queue_full': async () => {
      // A RateLimitPolicy as the operator publishes it: 1/s, a deferred queue of one.
      const redis = createRedis(redisUrl);
      await publishAppLimits(redis, redisKeys(prefix), {
        [OTHER_APP]: { ratePerSecond: 1, burst: 1, maxDeferred: 1 },
      });
      await redis.quit();
      await new Promise((r) => setTimeout(r, 1500)); // gateways read the limits once a second
      const other = { app: OTHER_APP, auth: basicAuth(OTHER_APP, OTHER_SECRET) };
      await push(other); // goes now
      await push(other); // deferred
      return push(other);
    },
    '429 device_cap_full': async () => {
      // A RateLimitPolicy with a daily cap of one message per device (perDevice.messagesPerDay).
      const redis = createRedis(redisUrl);
      await publishAppLimits(redis, redisKeys(prefix), {
        [OTHER_APP]: {
          ratePerSecond: 1000,
          burst: 1000,
          maxDeferred: 1000,
          perDevice: { messagesPerDay: 1 },
        },
      });
      await redis.quit();
      await new Promise((r) => setTimeout(r, 1500)); // gateways read the limits once a second
      const other = {
        app: OTHER_APP,
        auth: basicAuth(OTHER_APP, OTHER_SECRET),
        body: { to: { device: 'capped-1' }, data: 'x' },
      };
      await push(other); // today's one
      await push(other); // held for the next UTC day (deferred)
      return push(other); // the device holds a whole day's allowance: refused
    },
    '422 too_many_recipients': async () => {
      await Promise.all(['r1', 'r2'].map((d) => rawSession(gw.wsUrl, d).then((c) => c.ws.close())));
      return push({ body: { to: { all: true }, data: 'x' } });
    },
  };
  /** Rows no test can produce without breaking the platform on purpose, and why. */
  const NOT_PRODUCED: Record<string, string> = {
    '500 internal':
      'an unexpected failure; provoking one means breaking Redis mid-call (issue 13 tests that path)',
  };

  it('has a scenario for every documented push API answer (or a stated reason)', () => {
    expect(Object.keys({ ...pushScenarios, ...NOT_PRODUCED }).sort()).toEqual([...DOC_PUSH_API].sort());
  });
  it.each(DOC_PUSH_API.filter((r) => !(r in NOT_PRODUCED)))('push API %s', async (row) => {
    expect(await pushScenarios[row]!()).toBe(row);
  });

  it('message status: exactly the documented fields, with the documented types', async () => {
    const accepted = await pushApi(gw.httpUrl, { to: { tag: 'vip' }, data: 'x' });
    expect(accepted.status).toBe(202);
    const res = await fetch(`${gw.httpUrl}/v1/apps/${APP}/messages/${String(accepted.body.id)}`, {
      headers: { authorization: basicAuth() },
    });
    expect(res.status).toBe(200);
    const status = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(status).sort()).toEqual(DOC_STATUS_FIELDS.map(([f]) => f).sort());
    for (const [field, type] of DOC_STATUS_FIELDS) expect(typeof status[field], field).toBe(type);
    expect(status).toMatchObject({ target: { tag: 'vip' }, state: 'accepted', app: APP });
  });

  /** Waits for a status in which `done` holds (counters are written about once a second). */
  const statusWhen = async (id: string, done: (s: Record<string, unknown>) => boolean) => {
    let s: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${gw.httpUrl}/v1/apps/${APP}/messages/${id}`, {
        headers: { authorization: basicAuth() },
      });
      s = (await res.json()) as Record<string, unknown>;
      if (done(s)) break;
      await sleep(100);
    }
    return s;
  };
  /** A session that announced receipts and was sent one push; resolves its id and seq. */
  const pushedSession = async (device: string, hello: Record<string, unknown> = { recv: true }) => {
    const c = await rawSession(gw.wsUrl, device, hello);
    const r = await pushApi(gw.httpUrl, { to: { device }, data: 'x' });
    expect(r.status).toBe(202);
    await until(() => c.frames.some((f) => f.t === 'push'), 10_000, 'the push');
    const p = c.frames.find((f) => f.t === 'push')!;
    return { c, id: String(p.id), seq: Number(p.seq) };
  };

  /** One scenario per documented device frame: its documented effect, as a short verdict. */
  const deviceFrameScenarios: Record<string, () => Promise<string>> = {
    hello: async () => {
      const c = await rawSession(gw.wsUrl, 'f-hello', { recv: true });
      c.ws.close();
      return String(c.frames[0]!.t);
    },
    ping: async () => {
      // A ping answers pong; one carrying a receipt counts the push read, as recv would.
      const { c, id, seq } = await pushedSession('f-ping');
      c.ws.send(JSON.stringify({ t: 'ping', recv: seq }));
      await until(() => c.frames.some((f) => f.t === 'pong'), 5000, 'the pong');
      const s = await statusWhen(id, (x) => x.delivered === 1);
      c.ws.close();
      return `pong delivered=${String(s.delivered)} acked=${String(s.acked)}`;
    },
    ack: async () => {
      const { c, id } = await pushedSession('f-ack', {});
      c.ws.send(JSON.stringify({ t: 'ack', ids: [id] }));
      const s = await statusWhen(id, (x) => x.acked === 1);
      c.ws.close();
      return `delivered=${String(s.delivered)} acked=${String(s.acked)}`;
    },
    recv: async () => {
      const { c, id, seq } = await pushedSession('f-recv');
      c.ws.send(JSON.stringify({ t: 'recv', seq }));
      const s = await statusWhen(id, (x) => x.delivered === 1);
      const open = c.ws.readyState === WebSocket.OPEN;
      c.ws.close();
      return `delivered=${String(s.delivered)} acked=${String(s.acked)} open=${open}`;
    },
    update: async () => {
      const c = await rawSession(gw.wsUrl, 'f-update');
      c.ws.send(JSON.stringify({ t: 'update', add: ['f1'] }));
      await until(() => c.frames.some((f) => f.t === 'updated'), 5000, 'updated');
      c.ws.close();
      return 'updated';
    },
    bye: async () => {
      const c = await rawSession(gw.wsUrl, 'f-bye');
      c.ws.send('{"t":"bye"}');
      return String((await c.closed).code);
    },
  };
  const DEVICE_FRAME_ANSWERS: Record<string, string> = {
    hello: 'welcome',
    ping: 'pong delivered=1 acked=0',
    ack: 'delivered=1 acked=1',
    recv: 'delivered=1 acked=0 open=true',
    update: 'updated',
    bye: '1000',
  };
  it('has a scenario for every documented device frame', () => {
    expect(Object.keys(deviceFrameScenarios).sort()).toEqual([...DOC_DEVICE_FRAMES].sort());
  });
  it.each(DOC_DEVICE_FRAMES)('device frame %s', async (t) => {
    expect(await deviceFrameScenarios[t]!()).toBe(DEVICE_FRAME_ANSWERS[t]);
  });

  it.each([
    ['a seq that is not a positive integer', { recv: true }, '{"t":"recv","seq":-1}', 'recv: seq: '],
    ['a fractional seq', { recv: true }, '{"t":"recv","seq":1.5}', 'recv: seq: '],
    ['a seq beyond 2^53 - 1', { recv: true }, '{"t":"recv","seq":1e300}', 'recv: seq: '],
    ['a receipt on ping that is not a seq', { recv: true }, '{"t":"ping","recv":"1"}', 'ping: recv: '],
    ['a receipt without "recv":true in hello', {}, '{"t":"recv","seq":1}', 'recv: recv: not announced'],
    [
      'a receipt on ping without "recv":true in hello',
      {},
      '{"t":"ping","recv":1}',
      'ping: recv: not announced',
    ],
  ])('recv: %s closes 1008 naming the frame and field', async (_what, hello, frame, reason) => {
    const c = await rawSession(gw.wsUrl, 'f-bad-recv', hello);
    c.ws.send(frame);
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason.startsWith(reason), closed.reason).toBe(true);
  });

  it('offers and echoes the subprotocol', async () => {
    const ws = new WebSocket(gw.wsUrl, SUBPROTOCOL);
    await new Promise((r) => ws.once('open', r));
    expect(ws.protocol).toBe(SUBPROTOCOL);
    ws.close();
  });
});
