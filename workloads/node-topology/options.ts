import { z } from 'zod';
import { kubeconfigOption } from '../../common/config.js';

/** Every node-topology setting (flags and PUSHGATE_* env); the operator sets them in the gateway pod. */
export const nodeTopologyOptions = {
  nodeName: {
    schema: z.string().min(1),
    env: 'NODE_NAME',
    description: 'The Node this pod runs on (downward API spec.nodeName).',
  },
  outDir: {
    schema: z.string().min(1).default('/run/pushgate-topology'),
    description: 'Where to write the files `zone` and `region` (an emptyDir the gateway mounts).',
  },
  kubeconfig: kubeconfigOption,
};
