import { describe, expect, it } from 'vitest';
import { deliveryState, recipientStates, type RecipientStates } from './messages.js';

const T = 1_000_000;
const zero = {
  recipients: 0,
  stored: 0,
  dropped: 0,
  sent: 0,
  delivered: 0,
  acked: 0,
  readGone: 0,
  replaced: 0,
  evicted: 0,
  deferred: 0,
  released: 0,
  expired: 0,
  capRefused: 0,
  expiresAt: T,
};
const sum = (r: RecipientStates) =>
  r.waiting.deferred +
  r.waiting.inbox +
  r.acked +
  r.expired +
  r.replaced +
  r.evicted +
  r.dropped +
  r.capRefused;

describe('message status: every recipient in exactly one state', () => {
  it.each([
    [
      'just accepted: 3 stored, 1 dropped (TTL 0, offline), 2 deferred',
      { recipients: 6, stored: 3, dropped: 1, deferred: 2 },
      T - 1,
      { waiting: { deferred: 2, inbox: 3 }, dropped: 1 },
    ],
    [
      'one deferred released, one acked, one replaced, one evicted',
      { recipients: 6, stored: 3, dropped: 1, deferred: 2, released: 1, acked: 1, replaced: 1, evicted: 1 },
      T - 1,
      { waiting: { deferred: 1, inbox: 1 }, acked: 1, replaced: 1, evicted: 1, dropped: 1 },
    ],
    [
      'a deferred one expired in the queue (counted by the releaser)',
      { recipients: 2, deferred: 2, released: 1, expired: 1 },
      T,
      { waiting: { deferred: 0, inbox: 1 }, expired: 1 },
    ],
    [
      'past expiresAt: whatever was still waiting is expired',
      { recipients: 6, stored: 3, dropped: 1, deferred: 2, released: 1, acked: 1, replaced: 1 },
      T + 1,
      { waiting: { deferred: 0, inbox: 0 }, acked: 1, replaced: 1, dropped: 1, expired: 3 },
    ],
    [
      'past expiresAt with every recipient acked: nothing expired',
      { recipients: 2, stored: 2, acked: 2 },
      T + 1,
      { acked: 2, expired: 0 },
    ],
    ['no recipient at all', {}, T + 1, { expired: 0 }],
    [
      'two refused by their daily cap, one capped (deferred to tomorrow), one stored',
      { recipients: 4, stored: 1, deferred: 1, capRefused: 2 },
      T - 1,
      { waiting: { deferred: 1, inbox: 1 }, capRefused: 2 },
    ],
    [
      'the same past expiresAt: the refused stay refused',
      { recipients: 4, stored: 1, deferred: 1, capRefused: 2 },
      T + 1,
      { waiting: { deferred: 0, inbox: 0 }, capRefused: 2, expired: 2 },
    ],
  ])('%s', (_what, counts, now, want) => {
    const s = { ...zero, ...counts };
    const r = recipientStates(s, now);
    expect(r).toMatchObject(want);
    expect(sum(r)).toBe(s.recipients);
  });

  it('the counts add up at every step of a message with every fate, before and after it expires', () => {
    // 10 recipients: 1 dropped, 3 deferred, 6 stored; then, one event at a time, what happens to them.
    const s = { ...zero, recipients: 10, stored: 6, dropped: 1, deferred: 3 };
    const steps: [keyof typeof zero, number][] = [
      ['sent', 4],
      ['delivered', 3], // three devices read it (receipts)
      ['acked', 2], // two of them acked
      ['released', 2],
      ['replaced', 1],
      ['evicted', 1],
      ['readGone', 1], // the evicted one had been read
      ['expired', 1], // the third deferred one, in the queue
      ['delivered', 1], // acked without a receipt first: counted delivered by its ack
      ['acked', 1],
    ];
    for (const [counter, n] of steps) {
      (s[counter] as number) += n;
      for (const now of [T - 1, T + 1]) {
        const r = recipientStates(s, now);
        expect(sum(r), `${counter} at ${now}`).toBe(10);
        expect(r.waiting.delivered).toBeLessThanOrEqual(r.waiting.inbox);
        expect(s.delivered).toBeLessThanOrEqual(s.recipients - s.dropped - s.capRefused);
      }
    }
    expect(recipientStates(s, T - 1)).toEqual({
      waiting: { deferred: 0, inbox: 3, delivered: 0 },
      acked: 3,
      expired: 1,
      replaced: 1,
      evicted: 1,
      dropped: 1,
      capRefused: 0,
    });
    expect(deliveryState(s, T - 1)).toBe('sent');
    expect(deliveryState(s, T + 1)).toBe('expired');
  });

  it.each([
    ['read, not acked', { delivered: 2, acked: 0 }, 2],
    ['read, one acked', { delivered: 2, acked: 1 }, 1],
    ['one read, then replaced before its ack', { delivered: 2, acked: 0, replaced: 1, readGone: 1 }, 1],
    ['one unread replaced: the read one still waits', { delivered: 1, acked: 0, replaced: 1 }, 1],
    ['acked without receipts (a v1 device)', { delivered: 1, acked: 1 }, 0],
  ])('waiting.delivered, two stored: %s', (_what, counts, want) => {
    const s = { ...zero, recipients: 2, stored: 2, ...counts };
    const r = recipientStates(s, T - 1);
    expect(r.waiting.delivered).toBe(want);
    expect(sum(r)).toBe(2);
    expect(recipientStates(s, T + 1).waiting.delivered).toBe(0);
  });

  it.each([
    ['a frame went out', { sent: 1 }, T - 1, 'sent'],
    ['one of two read it', { sent: 2, delivered: 1 }, T - 1, 'sent'],
    ['both read it, one acked', { sent: 2, delivered: 2, acked: 1 }, T - 1, 'delivered'],
    ['both read it, neither acked, past expiresAt', { sent: 2, delivered: 2 }, T + 1, 'delivered'],
    ['both acked', { sent: 2, delivered: 2, acked: 2 }, T - 1, 'acked'],
  ] as const)('delivery, two stored: %s -> %s', (_what, counts, now, want) => {
    const s = { ...zero, recipients: 2, stored: 2, ...counts };
    expect(deliveryState(s, now)).toBe(want);
  });
});
