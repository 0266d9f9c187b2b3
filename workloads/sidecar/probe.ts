import { randomUUID } from 'node:crypto';
import { DeviceClient } from '../../client/device-client.js';
import { DEVICE_PATH, type PushFrame } from '../../common/protocol/frames.js';
import { signDeviceToken } from '../../common/protocol/token.js';

export interface ProbeTarget {
  /** Base HTTP URL of the gateway beside the sidecar, e.g. http://127.0.0.1:8080. */
  gatewayUrl: string;
  /** The probe app: its own app id and secret, so probe pushes never reach real devices. */
  app: string;
  secret: string;
  /** The probe's device id (one per sidecar, so each probe replaces the last session). */
  device: string;
  timeoutMs: number;
}

/** What one probe found. Failures say at which step, for the log and the result label. */
export type ProbeResult =
  | { ok: true; connectMs: number; latencyMs: number }
  | { ok: false; step: 'connect' | 'push' | 'receive'; error: string; connectMs?: number };

export type ProbeStep = Extract<ProbeResult, { ok: false }>['step'];

const wsUrlOf = (gatewayUrl: string) => {
  const u = new URL(DEVICE_PATH, gatewayUrl);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
};

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * One probe over the path devices use (vivo's probe that sends and receives on one device):
 * connect to the gateway's WebSocket with a signed device token and say hello, then push to
 * this very device through the gateway's push API and time send → receive. TTL 0 (now or
 * never), so a probe that is not delivered at once is never stored or delivered late.
 */
export async function probeOnce(target: ProbeTarget): Promise<ProbeResult> {
  const started = performance.now();
  const token = await signDeviceToken(target.secret, {
    app: target.app,
    device: target.device,
    ttlSeconds: 600,
  });
  const client = new DeviceClient({
    app: target.app,
    device: target.device,
    token,
    endpoints: [wsUrlOf(target.gatewayUrl)],
    reconnect: false,
    heartbeat: false,
  });
  // A refused hello (4xxx close) surfaces as 'stopped' and rejects start(); an unreachable
  // gateway just never welcomes, which the timeout catches.
  client.on('serverError', () => undefined);
  try {
    try {
      await withTimeout(client.start(), target.timeoutMs, 'connect and hello');
    } catch (err) {
      return { ok: false, step: 'connect', error: (err as Error).message };
    }
    const connectMs = performance.now() - started;

    const nonce = randomUUID();
    const received = new Promise<number>((resolve) => {
      const onPush = (frame: PushFrame) => {
        if ((frame.data as { probe?: string } | null)?.probe !== nonce) return;
        client.off('push', onPush);
        resolve(performance.now());
      };
      client.on('push', onPush);
    });
    const sentAt = performance.now();
    try {
      const res = await fetch(new URL(`/v1/apps/${encodeURIComponent(target.app)}/push`, target.gatewayUrl), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Basic ${Buffer.from(`${target.app}:${target.secret}`).toString('base64')}`,
        },
        body: JSON.stringify({
          to: { device: target.device },
          data: { probe: nonce },
          ttl: 0,
          priority: 'high',
        }),
        signal: AbortSignal.timeout(target.timeoutMs),
      });
      if (res.status !== 202 && res.status !== 200) {
        return {
          ok: false,
          step: 'push',
          error: `push API answered ${res.status}: ${await res.text()}`,
          connectMs,
        };
      }
    } catch (err) {
      return { ok: false, step: 'push', error: (err as Error).message, connectMs };
    }
    try {
      const at = await withTimeout(received, Math.max(1, target.timeoutMs - (sentAt - started)), 'delivery');
      return { ok: true, connectMs, latencyMs: at - sentAt };
    } catch (err) {
      return { ok: false, step: 'receive', error: (err as Error).message, connectMs };
    }
  } finally {
    client.stop();
  }
}
