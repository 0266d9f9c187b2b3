import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { summarizeProbes } from '../../common/redis/index.js';
import type { ProbeResult } from './probe.js';

export const SKIP_REASONS = ['unregistered', 'not_ready', 'draining', 'registry_unreadable'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/**
 * The sidecar's own /metrics: probe latency, connect time, results by outcome, and the
 * success ratio over the same window the locator reads from Redis (the last `window` probes,
 * summarized by the registry's own summarizeProbes so both agree).
 */
export class ProbeMetrics {
  readonly registry = new Registry();
  private readonly recent: string[] = [];
  private readonly latency: Histogram;
  private readonly connect: Histogram;
  private readonly results: Counter<'result'>;
  private readonly successRatio: Gauge;
  private readonly skippedRounds: Counter<'reason'>;

  constructor(
    labels: { gateway: string },
    private readonly window = 50,
  ) {
    this.registry.setDefaultLabels(labels);
    const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
    this.latency = new Histogram({
      name: 'pushgate_sidecar_probe_latency_seconds',
      help: 'Push API send to delivery on the probe device, through the gateway beside this sidecar.',
      buckets,
      registers: [this.registry],
    });
    this.connect = new Histogram({
      name: 'pushgate_sidecar_probe_connect_seconds',
      help: 'WebSocket connect plus hello until welcome, for the probe device.',
      buckets,
      registers: [this.registry],
    });
    this.results = new Counter({
      name: 'pushgate_sidecar_probes_total',
      help: 'Probes by result: ok, or the step that failed (connect, push, receive).',
      labelNames: ['result'],
      registers: [this.registry],
    });
    for (const result of ['ok', 'connect', 'push', 'receive']) this.results.inc({ result }, 0);
    this.skippedRounds = new Counter({
      name: 'pushgate_sidecar_probes_skipped_total',
      help: 'Rounds without a probe because the locator does not hand the gateway out (not registered yet, not ready, draining) or the registry could not be read.',
      labelNames: ['reason'],
      registers: [this.registry],
    });
    for (const reason of SKIP_REASONS) this.skippedRounds.inc({ reason }, 0);
    this.successRatio = new Gauge({
      name: 'pushgate_sidecar_probe_success_ratio',
      help: 'Fraction of successful probes among the most recent ones (the window the locator reads).',
      registers: [this.registry],
    });
  }

  observe(result: ProbeResult): void {
    if (result.connectMs !== undefined) this.connect.observe(result.connectMs / 1000);
    if (result.ok) this.latency.observe(result.latencyMs / 1000);
    this.results.inc({ result: result.ok ? 'ok' : result.step });
    // The registry's encoding of one probe ("1:<ms>" / "0:<ms>"), newest first.
    this.recent.unshift(`${result.ok ? 1 : 0}:${result.ok ? Math.round(result.latencyMs) : 0}`);
    this.recent.length = Math.min(this.recent.length, this.window);
    this.successRatio.set(summarizeProbes(this.recent).successRate ?? 0);
  }

  skipped(reason: SkipReason): void {
    this.skippedRounds.inc({ reason });
  }

  summary() {
    return summarizeProbes(this.recent);
  }
}
