import { writeFileSync } from 'node:fs';
import type { Session } from 'node:inspector/promises';
import { defineCommand, untilSignal } from '../cli/command.js';
import { gatewayOptions } from './options.js';
import { createGateway } from './server.js';

/**
 * `pushgate gateway`: device WebSockets, the push API and the locator route on --port; /metrics,
 * /healthz and /readyz on --metrics-port (or on --port when it is 0). SIGTERM drains (readiness off, refuse new devices, close existing ones at
 * --drain-rate with code 1012 and a reconnect hint), then exits.
 */
export const gatewayCommand = defineCommand({
  name: 'gateway',
  summary: 'Device gateway: WebSocket connections, delivery with acks, push API, locator, drain.',
  options: gatewayOptions,
  async run(config, log) {
    const gateway = createGateway(config, log);
    await gateway.listen();
    reportMemoryOverIpc(() => gateway.hub.connectionCount);
    profileOverIpc();
    const signal = await untilSignal();
    log.info({ signal }, 'shutting down');
    await gateway.drain();
    await gateway.close();
  },
});

/**
 * When started by a parent with an IPC channel (the gateway benchmark), answer
 * `{type:'pushgate:mem'}` with this process's memory after a GC, so the parent can measure
 * bytes per connection without scraping.
 */
export function reportMemoryOverIpc(connections: () => number) {
  if (!process.send) return;
  process.on('message', (msg: { type?: string }) => {
    if (msg?.type !== 'pushgate:mem') return;
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    const m = process.memoryUsage();
    process.send?.({
      type: 'pushgate:mem',
      rss: m.rss,
      heapUsed: m.heapUsed,
      external: m.external,
      connections: connections(),
    });
  });
  process.channel?.unref();
}

/**
 * When started with an IPC channel (the gateway benchmark), `{type:'pushgate:profile', action:
 * 'start'}` starts the V8 CPU profiler and `{..., action:'stop', file}` writes a .cpuprofile,
 * so one phase of a benchmark can be profiled alone; with `kind:'heap'`, the sampling heap
 * profiler instead (where the allocations come from), written as a .heapprofile. Each answers
 * `{rid}`. `{type:'pushgate:cpu'}` answers `{rid, user, system}` (process.cpuUsage(), µs), for
 * CPU per delivery. Requests are handled one after another (a stop waits for its start).
 */
export function profileOverIpc() {
  if (!process.send) return;
  let session: Session | undefined;
  let heap = false;
  // One request at a time: a start still loading the inspector is not started twice.
  let queue: Promise<void> = Promise.resolve();
  process.on(
    'message',
    (msg: { type?: string; action?: string; kind?: string; file?: string; rid?: number }) => {
      if (msg?.type === 'pushgate:cpu') return void process.send?.({ rid: msg.rid, ...process.cpuUsage() });
      if (msg?.type !== 'pushgate:profile') return;
      queue = queue
        .then(async () => {
          if (msg.action === 'start' && !session) {
            // Loaded only when asked for: no profiler module in a gateway nobody profiles.
            const { Session: InspectorSession } = await import('node:inspector/promises');
            session = new InspectorSession();
            session.connect();
            heap = msg.kind === 'heap';
            if (heap) {
              await session.post('HeapProfiler.enable');
              await session.post('HeapProfiler.startSampling', {
                samplingInterval: 4096,
                // Every allocation, not only what is still live when sampling stops (GC pressure).
                includeObjectsCollectedByMajorGC: true,
                includeObjectsCollectedByMinorGC: true,
              });
            } else {
              await session.post('Profiler.enable');
              await session.post('Profiler.setSamplingInterval', { interval: 200 });
              await session.post('Profiler.start');
            }
          } else if (msg.action === 'stop' && session && msg.file) {
            const { profile } = heap
              ? await session.post('HeapProfiler.stopSampling')
              : await session.post('Profiler.stop');
            writeFileSync(msg.file, JSON.stringify(profile));
            session.disconnect();
            session = undefined;
          }
          process.send?.({ rid: msg.rid });
        })
        // A failed request is answered all the same (the bench does not hang) and ends no later one.
        .catch((err: unknown) => void process.send?.({ rid: msg.rid, error: String(err) }));
    },
  );
}
