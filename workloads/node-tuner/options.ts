import { z } from 'zod';
import { kubeconfigOption, opt } from '../../common/config.js';

/** Every node-tuner setting (flags and PUSHGATE_* env); the operator sets them in its DaemonSet. */
export const nodeTunerOptions = {
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
  kubeconfig: kubeconfigOption,
  reportRefreshSeconds: {
    schema: opt.duration(600),
    description: 'Re-write an unchanged report after this long so verifiedAt stays fresh.',
  },
} as const;
