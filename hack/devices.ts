/**
 * `npm run devices -- --count 1000 --url ws://127.0.0.1:8080/v1/connect --app app1 --secret ...`
 * Opens N simulated devices (client/simulator.ts) from many 127.x source addresses, prints
 * progress every few seconds, and stops after --duration-s or on Ctrl-C.
 * More than ~20k connections: raise the open-file limit first (`ulimit -n 200000`).
 */
import { z } from 'zod';
import { ConfigError, helpText, parseConfig } from '../common/config.js';
import { DeviceSimulator } from '../client/simulator.js';

const options = {
  count: {
    schema: z.number().int().positive().max(1_000_000).default(100),
    description: 'Devices to simulate.',
  },
  url: {
    schema: z.array(z.string().regex(/^wss?:\/\//)).default([]),
    description: 'Gateway WebSocket URL(s), comma-separated.',
  },
  locator: {
    schema: z.string().optional(),
    description: 'Locator base URL (http://host:port); used before --url.',
  },
  region: { schema: z.string().optional(), description: 'Region the devices ask the locator for.' },
  app: { schema: z.string().default('app1'), description: 'App id.' },
  secret: {
    schema: z.string().min(16),
    secret: true,
    env: 'PUSHGATE_DEVICES_SECRET',
    description: 'App secret (to mint device tokens).',
  },
  prefix: { schema: z.string().default('sim'), description: 'Device id prefix (ids are <prefix>-<n>).' },
  tags: {
    schema: z.array(z.string()).default([]),
    description: 'Tags every device sets, comma-separated; "%10" adds tag m<i mod 10>.',
  },
  ramp: { schema: z.number().positive().default(500), description: 'New connections per second.' },
  sourceAddresses: {
    schema: z.number().int().min(0).max(65_000).default(64),
    description:
      '127.x source addresses to spread over (only for gateways on 127.x; others get the OS choice).',
  },
  durationS: { schema: z.number().positive().default(60), description: 'Stop after this many seconds.' },
};

export async function main(argv: string[]) {
  if (argv.includes('--help')) {
    console.log(
      helpText('devices', 'Simulated devices on the pushgate client library.', options, 'npm run devices --'),
    );
    return;
  }
  let cfg;
  try {
    cfg = parseConfig(options, argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`devices: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  if (!cfg.locator && cfg.url.length === 0) {
    console.error('devices: give --url or --locator');
    process.exit(2);
  }
  if (cfg.locator && !cfg.region) {
    console.error('devices: --locator needs --region (the locator ranks gateways nearest to it)');
    process.exit(2);
  }
  const mod = cfg.tags.find((t) => t.startsWith('%'));
  const fixed = cfg.tags.filter((t) => !t.startsWith('%'));
  const sim = new DeviceSimulator({
    count: cfg.count,
    app: cfg.app,
    secret: cfg.secret,
    endpoints: cfg.url,
    locatorUrl: cfg.locator,
    region: cfg.region,
    devicePrefix: cfg.prefix,
    tagsOf: (i) => (mod ? [...fixed, `m${i % Number(mod.slice(1))}`] : fixed),
    rampPerSecond: cfg.ramp,
    sourceAddresses: cfg.sourceAddresses,
  });
  const print = () => console.log(JSON.stringify({ at: new Date().toISOString(), ...sim.snapshot() }));
  const ticker = setInterval(print, 5000);
  const stop = () => {
    clearInterval(ticker);
    print();
    sim.stop();
    setTimeout(() => process.exit(0), 500);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  setTimeout(stop, cfg.durationS * 1000);
  await sim.start();
}

await main(process.argv.slice(2));
