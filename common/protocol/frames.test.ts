import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { clientFrame, MAX_ACK_IDS, parseClientFrame } from './frames.js';
import { signDeviceToken, verifyDeviceToken } from './token.js';

describe('parseClientFrame', () => {
  it.each([
    ['{"t":"hello","v":1,"token":"x"}', 'hello'],
    ['{"t":"hello","v":1,"token":"x","tags":["a","b"],"alias":null}', 'hello'],
    ['{"t":"hello","v":1,"token":"x","recv":true}', 'hello'],
    ['{"t":"ping"}', 'ping'],
    ['{"t":"ping","recv":7}', 'ping'],
    ['{"t":"ack","ids":["a","b"]}', 'ack'],
    ['{"t":"recv","seq":1}', 'recv'],
    ['{"t":"update","add":["a"],"alias":"x"}', 'update'],
    ['{"t":"bye"}', 'bye'],
  ])('accepts %s', (text, t) => {
    const r = parseClientFrame(text);
    expect(r.ok && r.frame.t).toBe(t);
  });

  it.each([
    ['{', 'bad JSON'],
    ['"hello"', 'frame is not an object'],
    ['null', 'frame is not an object'],
    ['{"t":"subscribe"}', 'unknown frame type "subscribe"'],
    ['{"type":"hello"}', 'unknown frame type undefined'],
    ['{"t":"hello","v":2,"token":"x"}', 'hello: v: '],
    ['{"t":"hello","v":1}', 'hello: token: '],
    ['{"t":"hello","v":1,"token":"x","tags":["a b"]}', 'hello: tags.0: only letters'],
    ['{"t":"ack","ids":[]}', 'ack: ids: '],
    ['{"t":"ping","x":1}', 'ping: frame: '],
    ['{"t":"hello","v":1,"token":"x","recv":1}', 'hello: recv: '],
    ['{"t":"recv"}', 'recv: seq: '],
    ['{"t":"recv","seq":0}', 'recv: seq: '],
    ['{"t":"recv","seq":-3}', 'recv: seq: '],
    ['{"t":"recv","seq":2.5}', 'recv: seq: '],
    ['{"t":"recv","seq":"5"}', 'recv: seq: '],
    ['{"t":"recv","seq":1e300}', 'recv: seq: '],
    ['{"t":"recv","seq":9007199254740992}', 'recv: seq: '],
    ['{"t":"recv","seq":1,"ids":["a"]}', 'recv: frame: '],
    ['{"t":"ping","recv":0}', 'ping: recv: '],
    ['{"t":"ping","recv":null}', 'ping: recv: '],
    ['{"t":"update","set":["a"],"add":["b"]}', 'update: frame: use either set or add/remove'],
  ])('rejects %s with a reason naming the problem', (text, reason) => {
    const r = parseClientFrame(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason.startsWith(reason)).toBe(true);
  });
});

describe('device tokens', () => {
  const secrets = (app: string) => ({ app1: 'secret-one-0123456789', app2: 'secret-two-0123456789' })[app];
  it('round-trips app, device and expiry', async () => {
    const token = await signDeviceToken('secret-one-0123456789', {
      app: 'app1',
      device: 'phone-1',
      exp: 4_000_000_000,
    });
    expect(await verifyDeviceToken(token, secrets)).toEqual({
      ok: true,
      claims: { app: 'app1', device: 'phone-1', exp: 4_000_000_000, alias: null },
    });
  });
  it('carries the alias the app server binds to the device', async () => {
    const token = await signDeviceToken('secret-one-0123456789', {
      app: 'app1',
      device: 'phone-1',
      alias: 'user-1001',
      exp: 4_000_000_000,
    });
    expect(await verifyDeviceToken(token, secrets)).toMatchObject({
      ok: true,
      claims: { alias: 'user-1001' },
    });
  });
  it.each([
    [
      'a token signed with another app secret',
      { app: 'app1', secret: 'secret-two-0123456789' },
      undefined,
      'bad_signature',
    ],
    ['an expired token', { app: 'app1', secret: 'secret-one-0123456789', exp: 1000 }, undefined, 'expired'],
    ['an unknown app', { app: 'app9', secret: 'secret-one-0123456789' }, undefined, 'unknown_app'],
    ['another app than expected', { app: 'app2', secret: 'secret-two-0123456789' }, 'app1', 'unknown_app'],
  ])('refuses %s', async (_label, t, expectedApp, reason) => {
    const token = await signDeviceToken(t.secret, {
      app: t.app,
      device: 'd',
      exp: (t as { exp?: number }).exp,
    });
    expect(await verifyDeviceToken(token, secrets, expectedApp)).toEqual({ ok: false, reason });
  });
  it('refuses garbage', async () => {
    expect(await verifyDeviceToken('a.b.c', secrets)).toEqual({ ok: false, reason: 'malformed' });
    expect(await verifyDeviceToken('only.two', secrets)).toEqual({ ok: false, reason: 'malformed' });
  });

  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const signed = (header: object, payload: object, secret = 'secret-one-0123456789') => {
    const hp = `${b64(header)}.${b64(payload)}`;
    return `${hp}.${createHmac('sha256', secret).update(hp).digest('base64url')}`;
  };
  const good = { iss: 'app1', sub: 'd1', aud: 'pushgate-device', exp: 4_000_000_000 };
  it.each([
    ['alg none, unsigned', `${b64({ alg: 'none' })}.${b64(good)}.`, 'malformed'],
    ['alg HS512', signed({ alg: 'HS512' }, good), 'malformed'],
    ['a crit header', signed({ alg: 'HS256', crit: ['x'] }, good), 'malformed'],
    ['a wrong audience', signed({ alg: 'HS256' }, { ...good, aud: 'someone-else' }), 'invalid_claims'],
    ['no sub', signed({ alg: 'HS256' }, { ...good, sub: undefined }), 'invalid_claims'],
    ['no exp', signed({ alg: 'HS256' }, { ...good, exp: undefined }), 'invalid_claims'],
    ['a device id with a brace', signed({ alg: 'HS256' }, { ...good, sub: '{x}' }), 'invalid_claims'],
    ['an alias with a brace', signed({ alg: 'HS256' }, { ...good, alias: '{x}' }), 'invalid_claims'],
    ['an alias that is not a string', signed({ alg: 'HS256' }, { ...good, alias: 7 }), 'invalid_claims'],
    ['not yet valid (nbf)', signed({ alg: 'HS256' }, { ...good, nbf: 4_000_000_000 - 1 }), 'invalid_claims'],
    [
      'a payload edited after signing',
      signed({ alg: 'HS256' }, good).replace(/\.[^.]+\./, `.${b64({ ...good, sub: 'd2' })}.`),
      'bad_signature',
    ],
  ])('refuses %s', async (_label, token, reason) => {
    expect(await verifyDeviceToken(token, secrets)).toEqual({ ok: false, reason });
  });

  // One token, one spelling: Node's base64url decoder would accept every one of these as the
  // same signature, header or payload.
  const token = signed({ alg: 'HS256' }, good);
  const [h, p, sig] = token.split('.') as [string, string, string];
  // The 43rd character of a 32-byte signature carries 2 unused bits: flip one of them (the
  // decoded bytes stay the same).
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sameBitsOtherChar = alphabet[alphabet.indexOf(sig.at(-1)!) ^ 1]!;
  it.each([
    ['a padded signature', `${h}.${p}.${sig}=`],
    ['a signature with a stray character', `${h}.${p}.${sig}!`],
    ['a signature with a space inside', `${h}.${p}.${sig.slice(0, 10)} ${sig.slice(10)}`],
    ['a padded payload', `${h}.${p}==.${sig}`],
    ['standard base64 characters in the header', `${h.replace(/-/g, '+').replace(/_/g, '/')}+.${p}.${sig}`],
    ['non-zero unused bits in the signature', `${h}.${p}.${sig.slice(0, -1)}${sameBitsOtherChar}`],
  ])('refuses %s as malformed', async (_label, t) => {
    expect(t).not.toBe(token);
    expect(await verifyDeviceToken(token, secrets)).toMatchObject({ ok: true });
    expect(await verifyDeviceToken(t, secrets)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('accepts a token signed by hand the way PROTOCOL.md describes', async () => {
    expect(await verifyDeviceToken(signed({ alg: 'HS256', typ: 'JWT' }, good), secrets)).toMatchObject({
      ok: true,
      claims: { device: 'd1' },
    });
  });
});

describe('parseClientFrame on acks, receipts and pings (checked without the schema)', () => {
  const id = (n: number) => 'm'.repeat(n);
  it.each([
    '{"t":"ack","ids":["a","b"]}',
    `{"t":"ack","ids":["${id(64)}"]}`,
    `{"t":"ack","ids":[${Array.from({ length: MAX_ACK_IDS }, () => '"x"').join(',')}]}`,
    '{"t":"ping"}',
    '{"t":"ack","ids":[]}',
    `{"t":"ack","ids":["${id(65)}"]}`,
    '{"t":"ack","ids":[""]}',
    '{"t":"ack","ids":[1]}',
    '{"t":"ack","ids":"a"}',
    '{"t":"ack"}',
    '{"t":"ack","ids":["a"],"x":1}',
    '{"t":"ping","ids":["a"]}',
    '{"t":"ping","x":null}',
    '{"t":"recv","seq":1}',
    '{"t":"recv","seq":9007199254740991}',
    '{"t":"recv","seq":9007199254740992}',
    '{"t":"recv","seq":0}',
    '{"t":"recv","seq":-1}',
    '{"t":"recv","seq":1.5}',
    '{"t":"recv","seq":1e300}',
    '{"t":"recv","seq":"1"}',
    '{"t":"recv","seq":null}',
    '{"t":"recv"}',
    '{"t":"recv","seq":1,"recv":1}',
    '{"t":"recv","ids":["a"]}',
    '{"t":"ping","recv":12}',
    '{"t":"ping","recv":0}',
    '{"t":"ping","recv":2.5}',
    '{"t":"ping","recv":"3"}',
    '{"t":"ping","recv":3,"x":1}',
    '{"t":"ping","seq":3}',
    '{"t":"ack","ids":["a"],"seq":1}',
    '{"t":"bye","recv":1}',
    `{"t":"ack","ids":[${Array.from({ length: MAX_ACK_IDS + 1 }, () => '"x"').join(',')}]}`,
  ])('%s: the same verdict and frame as the schema', (text) => {
    const viaSchema = clientFrame.safeParse(JSON.parse(text));
    const r = parseClientFrame(text);
    expect(r.ok).toBe(viaSchema.success);
    if (r.ok && viaSchema.success) expect(r.frame).toEqual(viaSchema.data);
  });
});
