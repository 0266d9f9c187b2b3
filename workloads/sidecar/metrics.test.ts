import { describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../../test/support/prometheus.js';
import { ProbeMetrics } from './metrics.js';

/** The value of the one series `name` whose labels include `labels`; undefined when there is none. */
const value = async (m: ProbeMetrics, name: string, labels: Record<string, string> = {}) =>
  parsePrometheusText(await m.registry.metrics()).find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;

describe('ProbeMetrics', () => {
  it('counts results by the step that failed and keeps the success ratio of the window', async () => {
    const m = new ProbeMetrics({ gateway: 'ns.gw-0' }, 4);
    m.observe({ ok: true, connectMs: 3, latencyMs: 12 });
    m.observe({ ok: false, step: 'connect', error: 'refused' });
    m.observe({ ok: false, step: 'receive', error: 'timeout', connectMs: 2 });
    m.observe({ ok: true, connectMs: 4, latencyMs: 8 });
    expect(m.summary()).toEqual({ samples: 4, successRate: 0.5, meanLatencyMs: 10 });
    expect(await value(m, 'pushgate_sidecar_probes_total', { result: 'connect' })).toBe(1);
    expect(await value(m, 'pushgate_sidecar_probes_total', { result: 'receive' })).toBe(1);
    expect(await value(m, 'pushgate_sidecar_probes_total', { result: 'ok' })).toBe(2);
    expect(await value(m, 'pushgate_sidecar_probes_total', { result: 'push' })).toBe(0);
    expect(await value(m, 'pushgate_sidecar_probe_success_ratio')).toBe(0.5);
    expect(await value(m, 'pushgate_sidecar_probe_latency_seconds_count')).toBe(2);
    // Connect time is observed whenever the probe got that far, failed or not.
    expect(await value(m, 'pushgate_sidecar_probe_connect_seconds_count')).toBe(3);
  });

  it('forgets probes older than the window', () => {
    const m = new ProbeMetrics({ gateway: 'g' }, 2);
    m.observe({ ok: false, step: 'push', error: '503' });
    m.observe({ ok: true, connectMs: 1, latencyMs: 5 });
    m.observe({ ok: true, connectMs: 1, latencyMs: 7 });
    expect(m.summary()).toEqual({ samples: 2, successRate: 1, meanLatencyMs: 6 });
  });

  it('labels every series with the gateway it probes', async () => {
    const m = new ProbeMetrics({ gateway: 'ns.gw-9' });
    expect(await m.registry.metrics()).toContain(
      'pushgate_sidecar_probes_total{result="ok",gateway="ns.gw-9"} 0',
    );
  });
});
