import type { Command } from './command.js';
import { versionCommand } from './version.js';
import { gatewayCommand } from '../gateway/command.js';
import { locatorCommand } from '../workloads/locator/command.js';
import { nodeTunerCommand } from '../workloads/node-tuner/command.js';
import { metricsAdapterCommand } from '../workloads/metrics-adapter/command.js';
import { sidecarCommand } from '../workloads/sidecar/command.js';
import { operatorCommand } from '../operator/command.js';
import { dispatcherCommand } from '../workloads/dispatcher/command.js';

/**
 * Every program of the `pushgate` binary. Each subsystem exports its command from its own
 * folder (gateway/, operator/, workloads/...) and is listed here once.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: Command<any>[] = [
  versionCommand,
  gatewayCommand,
  locatorCommand,
  nodeTunerCommand,
  metricsAdapterCommand,
  sidecarCommand,
  operatorCommand,
  dispatcherCommand,
];
