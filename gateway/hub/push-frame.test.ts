import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { encodePushFrame, storedMessageId } from '../../common/protocol/server-frames.js';
import { PushFrameEncoder } from './push-frame.js';

const Sender = (createRequire(import.meta.url)('ws') as { Sender: unknown }).Sender;

/** What ws writes for `ws.send(text)` from a server without compression (header, then payload). */
function wsFrame(text: string): Buffer {
  const list = (Sender as unknown as { frame(d: Buffer, o: object): Buffer[] }).frame(Buffer.from(text), {
    fin: true,
    opcode: 1,
    mask: false,
    readOnly: false,
    rsv1: false,
  });
  return Buffer.concat(list);
}

const body = (id: string, data: string) =>
  `{"id":"${id}","data":${JSON.stringify(data)},"exp":1700000000000}`;

describe('PushFrameEncoder', () => {
  it.each([
    ['short (7-bit length)', body('m1', 'hi')],
    ['medium (16-bit length)', body('m2', 'x'.repeat(300))],
    ['non-ASCII data', body('m3', 'grüße 🚀 こんにちは')],
    ['long (64-bit length)', body('m4', 'y'.repeat(70_000))],
    ['near the 7-bit edge', body('m5', 'z'.repeat(70))],
  ])('writes the bytes ws.send(encodePushFrame) would: %s', (_name, b) => {
    const enc = new PushFrameEncoder();
    for (const seq of [1, 9, 10, 125, 126, 99_999, 1_234_567_890]) {
      expect(enc.frame(seq, b).equals(wsFrame(encodePushFrame(seq, b)))).toBe(true);
    }
  });

  it('switches bodies: each frame carries its own body and id', () => {
    const enc = new PushFrameEncoder();
    const a = body('a', 'first');
    const b = body('b', 'second');
    expect(enc.frame(1, a).equals(wsFrame(encodePushFrame(1, a)))).toBe(true);
    expect(enc.id(a)).toBe('a');
    expect(enc.frame(2, b).equals(wsFrame(encodePushFrame(2, b)))).toBe(true);
    expect(enc.id(b)).toBe('b');
    expect(enc.frame(3, a).equals(wsFrame(encodePushFrame(3, a)))).toBe(true);
    expect(enc.id(a)).toBe(storedMessageId(a));
  });

  it('finds the id of a body that does not start with it', () => {
    const enc = new PushFrameEncoder();
    const b = '{"data":"x","id":"late","exp":1}';
    expect(enc.id(b)).toBe('late');
    expect(enc.frame(4, b).equals(wsFrame(encodePushFrame(4, b)))).toBe(true);
  });
});
