import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceClient } from '../../client/device-client.js';
import { encodeWelcome } from '../../common/protocol/server-frames.js';
import { until } from '../support/gateway.js';

/**
 * The client library's receipts (gateway/PROTOCOL.md, `recv`), against a WebSocket server that
 * plays the gateway frame by frame: hello announces them; one `recv` per read of the socket
 * names the highest seq of that read and leaves before the pushes are handled; with autoAck the
 * acks say it instead; a gateway that predates receipts (refusing the hello field) still gets
 * the device connected.
 */
describe('device client receipts', () => {
  let server: WebSocketServer;
  let url: string;
  /** Per connection: the frames the device sent, and the server side of the socket. */
  const conns: { ws: WebSocket; frames: Record<string, unknown>[] }[] = [];
  let onHello: (c: (typeof conns)[number], hello: Record<string, unknown>) => void = () => {};

  beforeAll(async () => {
    server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((r) => server.once('listening', r));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/connect`;
    server.on('connection', (ws) => {
      const c = { ws, frames: [] as Record<string, unknown>[] };
      conns.push(c);
      ws.on('message', (d) => {
        const f = JSON.parse(d.toString()) as Record<string, unknown>;
        c.frames.push(f);
        if (f.t === 'hello') onHello(c, f);
      });
    });
  });
  afterAll(() => new Promise((r) => server.close(r)));

  const welcome = (ws: WebSocket) =>
    ws.send(
      encodeWelcome({ gateway: 'gw-fake', session: 's', hb: 60_000, tags: [], alias: null, now: Date.now() }),
    );
  const push = (seq: number) =>
    JSON.stringify({
      t: 'push',
      id: `m${seq}`,
      seq,
      exp: Date.now() + 60_000,
      ttl: 60,
      priority: 'normal',
      sent: 1,
      data: seq,
    });
  /** Writes frames in one TCP write: the device reads them in one read. */
  const inOneRead = (ws: WebSocket, frames: string[]) => {
    const raw = (ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
    raw.cork();
    for (const f of frames) ws.send(f);
    raw.uncork();
  };
  const client = (opts: { autoAck?: boolean; receipts?: boolean } = {}) =>
    new DeviceClient({ app: 'app1', device: 'd1', token: 'x', endpoints: [url], heartbeat: false, ...opts });

  it('hello says recv; one receipt per read, with the highest seq, sent before the pushes are handled', async () => {
    conns.length = 0;
    onHello = (c) => {
      welcome(c.ws);
      inOneRead(c.ws, [push(1), push(2), push(3)]);
    };
    const d = client({ autoAck: false });
    const handled: number[] = [];
    // The first handler stops the client: a receipt sent after the handlers would never leave.
    d.on('push', (p) => {
      handled.push(p.seq);
      if (handled.length === 1) d.stop();
    });
    await d.start();
    await until(() => conns[0]!.ws.readyState === conns[0]!.ws.CLOSED, 5000, 'the close');
    expect(conns[0]!.frames[0]).toMatchObject({ t: 'hello', recv: true });
    expect(conns[0]!.frames.slice(1)).toEqual([{ t: 'recv', seq: 3 }]);
    expect(handled).toEqual([1, 2, 3]);
  });

  it('a push in a read of its own gets a receipt of its own; duplicates are receipted too', async () => {
    conns.length = 0;
    onHello = (c) => welcome(c.ws);
    const d = client({ autoAck: false });
    await d.start();
    const c = conns[0]!;
    inOneRead(c.ws, [push(4)]);
    await until(() => c.frames.length === 2, 5000, 'the first receipt');
    inOneRead(c.ws, [push(4), push(5)]); // 4 again: a resend
    await until(() => c.frames.length === 3, 5000, 'the second receipt');
    expect(c.frames.slice(1)).toEqual([
      { t: 'recv', seq: 4 },
      { t: 'recv', seq: 5 },
    ]);
    d.stop();
  });

  it('with autoAck the ack of the read is the receipt: no recv frame', async () => {
    conns.length = 0;
    onHello = (c) => {
      welcome(c.ws);
      inOneRead(c.ws, [push(1), push(2)]);
    };
    const d = client();
    await d.start();
    const c = conns[0]!;
    await until(() => c.frames.some((f) => f.t === 'ack'), 5000, 'the ack');
    expect(c.frames.slice(1)).toEqual([{ t: 'ack', ids: ['m1', 'm2'] }]);
    d.stop();
  });

  it('receipts: false says nothing of them', async () => {
    conns.length = 0;
    onHello = (c) => {
      welcome(c.ws);
      inOneRead(c.ws, [push(1)]);
    };
    const d = client({ autoAck: false, receipts: false });
    const got: number[] = [];
    d.on('push', (p) => got.push(p.seq));
    await d.start();
    await until(() => got.length === 1, 5000, 'the push');
    d.ack(['m1']); // after any receipt the read would have sent
    await until(() => conns[0]!.frames.length === 2, 5000, 'the ack');
    expect(conns[0]!.frames[0]).not.toHaveProperty('recv');
    expect(conns[0]!.frames[1]).toEqual({ t: 'ack', ids: ['m1'] });
    d.stop();
  });

  it('a gateway that predates receipts refuses the hello field: the device says hello again without it', async () => {
    conns.length = 0;
    onHello = (c, hello) => {
      if (hello.recv !== undefined) c.ws.close(1008, 'hello: frame: Unrecognized key: "recv"');
      else welcome(c.ws);
    };
    const d = new DeviceClient({
      app: 'app1',
      device: 'd1',
      token: 'x',
      endpoints: [url],
      heartbeat: false,
      autoAck: false,
      backoffMinMs: 10,
      backoffMaxMs: 50,
    });
    await d.start();
    expect(conns.map((c) => c.frames[0]!.recv)).toEqual([true, undefined]);
    d.stop();
  });
});
