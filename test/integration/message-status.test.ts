import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  APP,
  basicAuth,
  pushApi,
  startGatewayProcess,
  stopGateway,
  uniquePrefix,
  type GatewayProcess,
} from '../support/gateway.js';

/**
 * A message's fate is recorded on the message it happened to: when a newer push replaces it
 * (collapse key) or pushes it out of a full inbox, the OLDER message's status says so, and the
 * newer one's does not claim it. Real gateway, real Redis, the push API only.
 */
describe('message status: the fate lands on the message it happened to', () => {
  const redisUrl = inject('redisUrl');
  let gw: GatewayProcess;

  beforeAll(async () => {
    gw = await startGatewayProcess({
      redisUrl,
      prefix: uniquePrefix('status'),
      id: 'gw-status',
      args: ['--max-inbox', '2'],
    });
  });
  afterAll(() => stopGateway(gw));

  const status = async (id: unknown) => {
    const res = await fetch(`${gw.httpUrl}/v1/apps/${APP}/messages/${String(id)}`, {
      headers: { authorization: basicAuth() },
    });
    expect(res.status).toBe(200);
    return (await res.json()) as Record<string, number | string>;
  };
  const push = async (device: string, extra: Record<string, unknown> = {}) => {
    const r = await pushApi(gw.httpUrl, { to: { device }, data: 'x', ...extra });
    expect(r.status).toBe(202);
    return r.body.id;
  };

  it('replaced: counted on the older message, not on the newer one', async () => {
    const older = await push('offline-1', { collapseKey: 'score' });
    const newer = await push('offline-1', { collapseKey: 'score' });
    let s: Record<string, number | string> = {};
    for (let i = 0; i < 50 && !(s.replaced === 1); i++) {
      s = await status(older);
      if (s.replaced !== 1) await new Promise((r) => setTimeout(r, 100));
    }
    expect(s).toMatchObject({ stored: 1, replaced: 1, evicted: 0 });
    expect(await status(newer)).toMatchObject({ stored: 1, replaced: 0, evicted: 0 });
  });

  it('evicted: counted on the message the inbox bound dropped', async () => {
    const first = await push('offline-2');
    const second = await push('offline-2');
    const third = await push('offline-2'); // --max-inbox 2: the first one goes
    let s: Record<string, number | string> = {};
    for (let i = 0; i < 50 && !(s.evicted === 1); i++) {
      s = await status(first);
      if (s.evicted !== 1) await new Promise((r) => setTimeout(r, 100));
    }
    expect(s).toMatchObject({ stored: 1, evicted: 1 });
    for (const id of [second, third]) expect(await status(id)).toMatchObject({ stored: 1, evicted: 0 });
  });
});
