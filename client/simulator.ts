import { signDeviceToken } from '../common/protocol/token.js';
import { DeviceClient } from './device-client.js';

/**
 * Many simulated devices on the client library, for load tests and demos. Connections are
 * spread over many 127.x source addresses so one machine can open more connections to one
 * gateway than the ephemeral port range allows from a single address.
 */
export interface SimulatorOptions {
  count: number;
  app: string;
  /** The app secret, to mint device tokens (as the app's backend would). */
  secret: string;
  endpoints?: string[];
  locatorUrl?: string;
  region?: string;
  devicePrefix?: string;
  /** Tags for device i. */
  tagsOf?: (i: number) => string[];
  /** New connections per second while ramping up. */
  rampPerSecond?: number;
  /** How many 127.x source addresses to spread connections over (0: let the OS choose). */
  sourceAddresses?: number;
  tokenTtlSeconds?: number;
  heartbeat?: boolean;
}

export interface SimulatorStats {
  devices: number;
  connected: number;
  connects: number;
  pushes: number;
  duplicates: number;
  closes: Record<string, number>;
}

/**
 * The i-th of `spread` loopback source addresses (127.1.0.1 ... 127.1.0.254, 127.1.1.1, ...).
 * Linux routes all of 127/8 to lo. The last octet stays in 1..254: with 256 per /24, every 256th
 * address was 127.1.x.256, which cannot be bound (bench:scale lost 3 in 1,000 of its devices).
 */
export function loopbackSource(i: number, spread: number): string | undefined {
  if (spread <= 0) return undefined;
  const k = i % spread;
  return `127.1.${Math.floor(k / 254) & 0xff}.${(k % 254) + 1}`;
}

export class DeviceSimulator {
  readonly clients: DeviceClient[] = [];
  private readonly stats = { pushes: 0, duplicates: 0, closes: {} as Record<string, number> };
  private stopped = false;

  constructor(private readonly opts: SimulatorOptions) {}

  /** Opens all connections at the ramp rate; resolves when every device has been started. */
  async start(onProgress?: (started: number) => void): Promise<void> {
    const o = this.opts;
    const ramp = o.rampPerSecond ?? 1000;
    const t0 = Date.now();
    for (let i = 0; i < o.count && !this.stopped; i++) {
      const device = `${o.devicePrefix ?? 'sim'}-${i}`;
      const token = await signDeviceToken(o.secret, {
        app: o.app,
        device,
        ttlSeconds: o.tokenTtlSeconds ?? 24 * 3600,
      });
      const client = new DeviceClient({
        app: o.app,
        device,
        token,
        endpoints: o.endpoints,
        locatorUrl: o.locatorUrl,
        region: o.region,
        tags: o.tagsOf?.(i) ?? [],
        localAddress: loopbackSource(i, o.sourceAddresses ?? 64),
        heartbeat: o.heartbeat,
      });
      client.on('push', () => this.stats.pushes++);
      client.on('duplicate', () => this.stats.duplicates++);
      client.on('close', (code) => (this.stats.closes[code] = (this.stats.closes[code] ?? 0) + 1));
      client.start().catch(() => {});
      this.clients.push(client);
      const due = t0 + ((i + 1) * 1000) / ramp;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (i % 1000 === 999) onProgress?.(i + 1);
    }
  }

  snapshot(): SimulatorStats {
    let connected = 0;
    let connects = 0;
    for (const c of this.clients) {
      if (c.connected) connected++;
      connects += c.connects;
    }
    return {
      devices: this.clients.length,
      connected,
      connects,
      ...this.stats,
      closes: { ...this.stats.closes },
    };
  }

  stop(): void {
    this.stopped = true;
    for (const c of this.clients) c.stop();
  }
}
