import * as k8s from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineCommand, untilSignal } from '../../cli/command.js';
import { ConfigError, opt } from '../../common/config.js';
import { desiredSysctls, isTuned, PolicyError, type DesiredLimit } from './policy.js';
import { NodeReporter, NodeTuner } from './tuner.js';

export const nodeTunerCommand = defineCommand({
  name: 'node-tuner',
  summary:
    'Apply sysctls and process limits on a node, verify them, re-apply on drift, and report on the Node.',
  options: {
    sysctls: {
      schema: z.array(z.string()).default([]),
      description:
        'Sysctls to apply besides (or instead of) the defaults, comma-separated: key=value (exact) or key>=value (floor), e.g. "net.core.somaxconn>=65535,net.ipv4.ip_local_port_range=1024 65535".',
    },
    defaults: {
      schema: z.boolean().default(true),
      description:
        'Apply the built-in gateway-node defaults (somaxconn, SYN backlog, port range, file limits...).',
    },
    skip: {
      schema: z.array(z.string()).default([]),
      description: 'Sysctl keys to leave alone, comma-separated.',
    },
    scope: {
      schema: z.enum(['host', 'network-namespace']).default('host'),
      description:
        'host: all sysctls; network-namespace: only net.* (inside one pod network namespace, where fs.* are global and must not be touched).',
    },
    sysctlRoot: {
      schema: z.string().min(1).default('/proc/sys'),
      description: 'Where sysctls are read and written.',
    },
    procRoot: {
      schema: z.string().min(1).default('/proc'),
      description: 'Where processes are found for limits.',
    },
    nofile: {
      schema: z.number().int().nonnegative().default(0),
      description:
        'RLIMIT_NOFILE floor (soft and hard) for the processes in --nofile-targets; 0 = leave limits alone.',
    },
    nofileTargets: {
      schema: z.array(z.string()).default([]),
      description: 'Process names (comm) whose open-file limit is raised, e.g. containerd.',
    },
    intervalSeconds: { schema: opt.duration(60), description: 'Seconds between drift checks.' },
    once: {
      schema: z.boolean().default(false),
      description: 'One pass, then exit: status 1 if anything could not be applied or reported.',
    },
    nodeName: {
      schema: z.string().default(''),
      env: 'NODE_NAME',
      description: 'The Node to report on (downward API spec.nodeName); empty = log only.',
    },
    kubeconfig: {
      schema: z.string().default(''),
      env: 'KUBECONFIG',
      description: 'Kubeconfig file; empty = in-cluster service account.',
    },
    reportRefreshSeconds: {
      schema: opt.duration(600),
      description: 'Re-write an unchanged report after this long so verifiedAt stays fresh.',
    },
  },
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
