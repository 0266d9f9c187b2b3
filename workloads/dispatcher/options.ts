import { opt } from '../../common/config.js';
import { redisOptions } from '../../common/redis/options.js';
import { gatewayOptions } from '../../gateway/options.js';
import { DEFAULT_DISPATCHER_OPTIONS } from './dispatcher.js';

/**
 * Every dispatcher setting (flags and PUSHGATE_* env). The operator runs it with the
 * PushGateway's Redis Secret and the same inbox bounds as its gateways.
 */
export const dispatcherOptions = {
  port: { schema: opt.port(9092), description: 'Port of /metrics, /healthz and /readyz.' },
  host: { schema: opt.host(), description: 'Address to listen on.' },
  ...redisOptions,
  // The gateway's own specs (same flags and variables): inbox bound and the longest TTL, which
  // sets how long a device's keys live after a store.
  maxInbox: gatewayOptions.maxInbox,
  maxTtlSeconds: gatewayOptions.maxTtlSeconds,
  leaseMs: {
    schema: opt.positiveInt(DEFAULT_DISPATCHER_OPTIONS.leaseMs),
    env: 'PUSHGATE_DISPATCHER_LEASE_MS',
    description:
      "A work unit's lease: a replica that dies holds its units this long at most before another continues from their cursors.",
  },
  pollMs: {
    schema: opt.positiveInt(DEFAULT_DISPATCHER_OPTIONS.pollMs),
    env: 'PUSHGATE_DISPATCHER_POLL_MS',
    description: 'How often plans are read (suspend and cancel take effect within this plus one batch).',
  },
  concurrency: {
    schema: opt.positiveInt(DEFAULT_DISPATCHER_OPTIONS.concurrency),
    env: 'PUSHGATE_DISPATCHER_CONCURRENCY',
    description: 'Work units this replica works at once, over all campaigns.',
  },
  batchMs: {
    schema: opt.positiveInt(DEFAULT_DISPATCHER_OPTIONS.batchMs),
    env: 'PUSHGATE_DISPATCHER_BATCH_MS',
    description: "A batch is this many ms of a campaign's rate (at least one message; at most its burst).",
  },
  gcIntervalMs: {
    schema: opt.positiveInt(DEFAULT_DISPATCHER_OPTIONS.gcIntervalMs),
    env: 'PUSHGATE_DISPATCHER_GC_INTERVAL_MS',
    description: 'How often the keys of campaigns gone from the index are removed.',
  },
} as const;
