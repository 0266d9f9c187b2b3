import type { Command } from './command.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCommand = Command<any>;

/**
 * Every program of the `pushgate` binary, by name. Each subsystem exports its command from its
 * own folder (gateway/, operator/, workloads/...) and is listed here once. A command's module
 * is imported only when it runs: a gateway does not load the operator's Kubernetes client, the
 * metrics adapter or the dispatcher (they cost a process tens of MiB it would never use).
 */
export const commands: ReadonlyMap<string, () => Promise<AnyCommand>> = new Map<
  string,
  () => Promise<AnyCommand>
>([
  ['version', async () => (await import('./version.js')).versionCommand],
  ['gateway', async () => (await import('../gateway/command.js')).gatewayCommand],
  ['locator', async () => (await import('../workloads/locator/command.js')).locatorCommand],
  ['node-tuner', async () => (await import('../workloads/node-tuner/command.js')).nodeTunerCommand],
  ['node-topology', async () => (await import('../workloads/node-topology/command.js')).nodeTopologyCommand],
  [
    'metrics-adapter',
    async () => (await import('../workloads/metrics-adapter/command.js')).metricsAdapterCommand,
  ],
  ['sidecar', async () => (await import('../workloads/sidecar/command.js')).sidecarCommand],
  ['operator', async () => (await import('../operator/command.js')).operatorCommand],
  ['dispatcher', async () => (await import('../workloads/dispatcher/command.js')).dispatcherCommand],
  ['migrate-tags', async () => (await import('./migrate-tags.js')).migrateTagsCommand],
]);

/** Every command, loaded (for the usage text and tests). */
export function loadAllCommands(): Promise<AnyCommand[]> {
  return Promise.all([...commands.values()].map((load) => load()));
}
