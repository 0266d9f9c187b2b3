import { describe, expect, it } from 'vitest';
import { serverFrame } from './frames.js';
import {
  encodeDrain,
  encodeError,
  encodePong,
  encodePushFrame,
  encodeStoredMessage,
  encodeUpdated,
  encodeWelcome,
  storedMessageId,
} from './server-frames.js';

describe('server frame encoders', () => {
  it.each([
    ['welcome', encodeWelcome({ gateway: 'g', session: 's', hb: 1000, tags: ['a'], alias: null, now: 5 })],
    ['pong', encodePong(30_000)],
    ['updated', encodeUpdated({ tags: [], alias: 'x' })],
    ['error', encodeError({ code: 'unknown_id', message: 'no such unacked message', ids: ['i'] })],
    ['drain', encodeDrain({ reconnect: ['ws://h/v1/connect'], within: 1000 })],
    [
      'push',
      encodePushFrame(
        7,
        encodeStoredMessage({
          id: 'm1',
          exp: 9,
          ttl: 1,
          priority: 'high',
          collapse: 'c',
          sent: 2,
          data: { a: 1 },
        }),
      ),
    ],
  ])('%s satisfies the frame schema', (t, text) => {
    const parsed = serverFrame.parse(JSON.parse(text));
    expect(parsed.t).toBe(t);
  });

  it('a push frame carries the stored message and the per-device seq', () => {
    const body = encodeStoredMessage({ id: 'm1', exp: 9, ttl: 1, priority: 'normal', sent: 2, data: [1] });
    expect(JSON.parse(encodePushFrame(3, body))).toEqual({
      t: 'push',
      seq: 3,
      id: 'm1',
      exp: 9,
      ttl: 1,
      priority: 'normal',
      sent: 2,
      data: [1],
    });
  });
});

describe('storedMessageId', () => {
  it('reads the id of an encoded body, and of a body in any field order', () => {
    const body = encodeStoredMessage({
      id: 'lq2x9abc',
      exp: 9,
      ttl: 1,
      priority: 'normal',
      sent: 2,
      data: {},
    });
    expect(storedMessageId(body)).toBe('lq2x9abc');
    expect(storedMessageId('{"exp":9,"data":{"id":"not-this"},"id":"m-2"}')).toBe('m-2');
  });

  it('refuses a body without an id', () => {
    expect(() => storedMessageId('{"exp":9}')).toThrow(/no string id/);
  });
});
