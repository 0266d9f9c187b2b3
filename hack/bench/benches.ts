/**
 * Every benchmark, and its quick mode: the flags that shrink it to a few seconds of work
 * (small sizes, short windows). `npm run bench:<name> -- --quick` runs it so, and `npm test`
 * runs every quick mode (test/integration/bench-quick.test.ts) and checks that it printed its
 * table and wrote its JSON: a benchmark that no longer runs fails the tests, so it cannot rot.
 * A new benchmark gets a line here, or the test that compares this table with package.json fails.
 */
export const BENCHES = {
  gateway: {
    quick: [
      ...['--sizes', '200', '--fanout-devices', '200', '--fanout-pushes', '2', '--lone-pushes', '2'],
      ...['--latency-rate', '50', '--latency-seconds', '2', '--workers', '1', '--source-addresses', '4'],
      '--no-shipped',
    ],
  },
  operator: {
    quick: [
      '--counts',
      '2',
      '--idle-seconds',
      '3',
      '--settle-seconds',
      '1',
      '--ready-timeout-seconds',
      '120',
      '--no-compile',
    ],
  },
  ratelimit: {
    quick: ['--seconds', '2', '--rates', '1000,5000', '--concurrency', '16'],
  },
  campaign: {
    quick: ['--targets', '3000', '--rates', '1000', '--rate-seconds', '2'],
  },
  scale: {
    quick: [
      '--connections',
      '400',
      '--gateways',
      '2',
      '--workers',
      '2',
      '--idle-seconds',
      '2',
      '--heartbeat-ms',
      '10000',
    ],
  },
  storage: {
    quick: ['--targets', '500', '--body-sizes', '1024'],
  },
} satisfies Record<string, { quick: string[] }>;

export type BenchName = keyof typeof BENCHES;

/** The argv a bench runs with: `--quick` replaced by its quick flags (later flags still win). */
export function benchArgs(name: BenchName, argv: string[]): string[] {
  return argv.flatMap((a) => (a === '--quick' ? BENCHES[name].quick : [a]));
}
