import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` (pure, no servers) and `integration` (a real control plane and Redis,
 * started once per run by test/global-setup.ts). `npm test` runs both.
 */
export default defineConfig({
  test: {
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{cli,common,operator,gateway,workloads,hack,client}/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Two cores: integration files share one control plane; running them one after
          // another keeps timing-sensitive checks (leases, drains) honest.
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
        },
      },
    ],
  },
});
