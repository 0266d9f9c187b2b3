import * as k8s from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineCommand, untilSignal } from '../../cli/command.js';
import { ConfigError } from '../../common/config.js';
import { desiredSysctls, isTuned, PolicyError, type DesiredLimit } from './policy.js';
import { nodeTunerOptions } from './options.js';
import { NodeReporter, NodeTuner } from './tuner.js';

export const nodeTunerCommand = defineCommand({
  name: 'node-tuner',
  summary:
    'Apply sysctls and process limits on a node, verify them, re-apply on drift, and report on the Node.',
  options: nodeTunerOptions,
  async run(config, log) {
    let sysctls;
    try {
      sysctls = desiredSysctls({
        useDefaults: config.defaults,
        overrides: config.sysctls,
        skip: config.skip,
        scope: config.scope,
      });
    } catch (err) {
      if (err instanceof PolicyError) throw new ConfigError(`--sysctls: ${err.message}`);
      throw err;
    }
    if (config.nofile > 0 && config.nofileTargets.length === 0) {
      throw new ConfigError('--nofile needs --nofile-targets (which processes to raise)');
    }
    const limits: DesiredLimit[] =
      config.nofile > 0
        ? [{ resource: 'nofile', value: config.nofile, processNames: config.nofileTargets }]
        : [];

    let reporter: NodeReporter | undefined;
    if (config.nodeName) {
      const kc = new k8s.KubeConfig();
      if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
      else kc.loadFromCluster();
      reporter = new NodeReporter(kc, config.nodeName);
    } else {
      log.warn('no NODE_NAME: results go to the log only');
    }

    const tuner = new NodeTuner({
      scope: config.scope,
      sysctlRoot: config.sysctlRoot,
      procRoot: config.procRoot,
      sysctls,
      limits,
      reporter,
      reportRefreshMs: config.reportRefreshSeconds * 1000,
      log,
    });
    log.info({ sysctls, limits, scope: config.scope }, 'node tuner starting');

    if (config.once) {
      const report = await tuner.pass();
      if (tuner.lastReportError) throw tuner.lastReportError;
      if (!isTuned(report)) throw new Error(`not applied: ${Object.keys(report.failed).join(', ')}`);
      return;
    }

    // Until SIGTERM/SIGINT: one pass, then sleep the interval (cut short by the signal).
    const stop = new AbortController();
    void untilSignal().then(() => stop.abort());
    while (!stop.signal.aborted) {
      await tuner.pass();
      await sleep(config.intervalSeconds * 1000, undefined, { signal: stop.signal }).catch(() => undefined);
    }
    log.info('node tuner stopped');
  },
});
