import path from 'node:path';
import { PUSH_GATEWAY, RATE_LIMIT_POLICY, TAG_CAMPAIGN, crdName } from '../../operator/api/index.js';
import { eventually } from './k8s.js';
import { kubectl, repoRoot } from './stack.js';

/**
 * Installs the generated CRDs (idempotent: many test files call it against one control plane)
 * and resolves when every kind is served: Established is set before every API server handler
 * serves the new resource, so it also waits until a list of each kind works.
 */
const KINDS = [PUSH_GATEWAY, TAG_CAMPAIGN, RATE_LIMIT_POLICY];

export async function installCRDs(kubeconfig: string): Promise<void> {
  await kubectl(kubeconfig, [
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=pushgate-crds',
    '-f',
    path.join(repoRoot, 'crds'),
  ]);
  await kubectl(kubeconfig, [
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    ...KINDS.map((k) => `crd/${crdName(k)}`),
  ]);
  for (const k of KINDS) {
    await eventually(() => kubectl(kubeconfig, ['get', crdName(k), '-A', '-o', 'name']).then(() => true), {
      what: `${k.plural} served`,
      timeoutMs: 30_000,
    });
  }
}
