import {
  ApiValidationError,
  parsePushGateway,
  type PushGateway,
  type PushGatewayStatus,
} from '../../api/index.js';
import { FIELD_MANAGER, LABEL_COMPONENT, MANAGED_SELECTOR } from '../../identity.js';
import { findCondition } from '../../runtime/conditions.js';
import type { Controller, SyncOutcome, SyncResult } from '../../runtime/controller.js';
import { TerminalError, terminalCause } from '../../runtime/errors.js';
import type { EventRecorder } from '../../runtime/events.js';
import type { Transform } from '../../runtime/informer.js';
import { objectKey, type KubeClient, type KubeObject } from '../../runtime/kube.js';
import type { Manager } from '../../runtime/manager.js';
import { Resources } from '../../runtime/resources.js';
import { writeStatus } from '../../runtime/status.js';
import { runSteps, type Step } from '../../runtime/steps.js';
import { buildAll, type BuildOptions } from './builders.js';
import { LABEL_REGION, OWNER_LABELS, PushGatewayResource, names, ownerKeyOf } from './names.js';
import { OWNED_KINDS } from './owned.js';
import { computeStatus, podWaitingTransform, type PodLike, type SyncFailure } from './status.js';
import { applyIdentitiesAndConfig, applyWorkloads } from './steps/apply.js';
import type { SyncContext, SyncEnv } from './steps/context.js';
import { checkBuildable, dryRun } from './steps/preflight.js';
import { ensureProbeSecret } from './steps/probe-secret.js';
import { prune } from './steps/prune.js';

export { PushGatewayResource };

export interface PushGatewayControllerOptions {
  client: KubeClient;
  manager: Manager;
  recorder: EventRecorder;
  build: BuildOptions;
  workers?: number;
}

/**
 * The sync path, in order: check the built objects, have the API server dry-run them all
 * (nothing is written unless everything would be accepted), keep the probe secret, apply
 * identities and config, apply the regions' workloads and the node tuner, prune what the
 * spec no longer asks for. Every sync applies the whole desired state (server-side apply
 * is a no-op when nothing changed), so a child edited or deleted by hand is restored by the
 * event that reports it.
 */
const SYNC_STEPS: Step<SyncContext>[] = [
  checkBuildable,
  dryRun,
  ensureProbeSecret,
  applyIdentitiesAndConfig,
  applyWorkloads,
  prune,
];

/** A Secret as the status path caches it: its key names only, never the values. */
const secretKeysTransform: Transform = {
  name: 'keys',
  fn: (obj) => ({
    metadata: {
      name: obj.metadata?.name,
      namespace: obj.metadata?.namespace,
      resourceVersion: obj.metadata?.resourceVersion,
    },
    keys: Object.keys((obj as { data?: Record<string, string> }).data ?? {}),
  }),
};
const podTransform: Transform = { name: 'waiting', fn: podWaitingTransform };
const GATEWAY_PODS = `${MANAGED_SELECTOR},${LABEL_COMPONENT}=gateway`;

/** The Secrets a PushGateway's pods read, by name (from the raw object: it need not parse). */
function referencedSecrets(raw: KubeObject): string[] {
  type Ref = { secretName?: unknown };
  const spec = (raw as { spec?: { redis?: Ref; apps?: Ref; tls?: Ref } }).spec;
  return [spec?.redis?.secretName, spec?.apps?.secretName, spec?.tls?.secretName].filter(
    (n): n is string => typeof n === 'string',
  );
}

/**
 * The PushGateway controller: for PushGateways, owning their children. The runtime brings
 * keys back: to the sync path when a spec or a child's spec changed, to the status path when
 * only a status moved, a gateway pod's containers changed state, or a Secret the pods read
 * appeared or went.
 */
export class PushGatewayController {
  readonly controller: Controller;
  private readonly env: SyncEnv;

  constructor(private readonly o: PushGatewayControllerOptions) {
    this.controller = o.manager.controller({
      name: 'pushgateway',
      for: PushGatewayResource,
      owns: OWNED_KINDS,
      ownerLabels: OWNER_LABELS,
      watches: [
        {
          kind: Resources.Pod,
          labelSelector: GATEWAY_PODS,
          transform: podTransform,
          map: (pod) => [ownerKeyOf(pod)].filter((k): k is string => k !== undefined),
          path: 'status',
        },
        {
          kind: Resources.Secret,
          transform: secretKeysTransform,
          map: (secret) =>
            this.gateways()
              .list(secret.metadata?.namespace)
              .filter((gw) => referencedSecrets(gw).includes(secret.metadata?.name ?? ''))
              .map(objectKey),
          path: 'status',
        },
      ],
      reconciler: {
        sync: (key) => this.sync(key),
        updateStatus: (key, last) => this.updateStatus(key, last),
      },
      workers: o.workers ?? 4,
    });
    this.env = {
      client: o.client,
      recorder: o.recorder,
      controller: this.controller,
      preflighted: new Map(),
    };
  }

  private gateways() {
    return this.controller.informer(PushGatewayResource);
  }

  async sync(key: string): Promise<SyncResult> {
    const raw = this.controller.get(key);
    if (!raw || raw.metadata?.deletionTimestamp) {
      this.env.preflighted.delete(key);
      // Namespaced children go with the owner (garbage collector); cluster-scoped ones are ours to delete.
      for (const crb of this.controller
        .informer(Resources.ClusterRoleBinding, { labelSelector: MANAGED_SELECTOR })
        .list()) {
        if (ownerKeyOf(crb) === key)
          await this.o.client.deleteIfExists(Resources.ClusterRoleBinding, undefined, crb.metadata!.name!);
      }
      return;
    }
    const gw = parse(raw);
    const ctx: SyncContext = { key, raw, gw, desired: buildAll(gw, this.o.build), env: this.env };
    const outcome = await runSteps(SYNC_STEPS, ctx);
    return outcome.requeue ? { requeueAfterMs: outcome.requeue.afterMs } : undefined;
  }

  async updateStatus(key: string, last: SyncOutcome | undefined): Promise<void> {
    const raw = this.controller.get(key);
    if (!raw || raw.metadata?.deletionTimestamp) return;
    const previous = (raw as { status?: PushGatewayStatus }).status;
    let gw: PushGateway | undefined;
    let failure: SyncFailure | undefined = last && !last.ok ? describeFailure(last.error) : undefined;
    try {
      gw = parse(raw);
    } catch (err) {
      failure = describeFailure(err);
    }
    const status = computeStatus({
      generation: raw.metadata?.generation ?? 0,
      previous,
      gw,
      children: gw ? this.observe(gw) : { deployments: new Map(), hpas: new Map() },
      ...(failure ? { failure } : {}),
      now: new Date(),
    });
    const wrote = await writeStatus(
      this.o.client,
      PushGatewayResource,
      raw,
      status as Record<string, unknown>,
      FIELD_MANAGER,
    );
    if (wrote) this.recordTransitions(raw, previous, status);
  }

  private observe(gw: PushGateway) {
    const ns = gw.metadata.namespace;
    const cache = (kind: typeof Resources.Deployment) =>
      this.controller.informer(kind, { labelSelector: MANAGED_SELECTOR });
    const deployments = new Map<string, KubeObject | undefined>();
    const hpas = new Map<string, KubeObject | undefined>();
    const pods = new Map<string, PodLike[]>();
    for (const r of gw.spec.regions) {
      deployments.set(r.name, cache(Resources.Deployment).get(`${ns}/${names.region(gw, r.name)}`));
      hpas.set(r.name, cache(Resources.HorizontalPodAutoscaler).get(`${ns}/${names.region(gw, r.name)}`));
      pods.set(r.name, []);
    }
    const podCache = this.controller.informer(Resources.Pod, {
      labelSelector: GATEWAY_PODS,
      transform: podTransform,
    });
    for (const p of podCache.list(ns)) {
      const region = p.metadata?.labels?.[LABEL_REGION];
      if (ownerKeyOf(p) === `${ns}/${gw.metadata.name}` && region && !p.metadata?.deletionTimestamp)
        pods.get(region)?.push(p as PodLike);
    }
    const secretCache = this.controller.informer(Resources.Secret, { transform: secretKeysTransform });
    const secrets = new Map<string, string[] | undefined>();
    for (const name of [gw.spec.redis.secretName, gw.spec.apps?.secretName, gw.spec.tls?.secretName]) {
      if (name)
        secrets.set(name, (secretCache.get(`${ns}/${name}`) as { keys?: string[] } | undefined)?.keys);
    }
    const nodeTuner = gw.spec.nodeTuning.enabled
      ? cache(Resources.DaemonSet).get(`${ns}/${names.nodeTuner(gw)}`)
      : undefined;
    return { deployments, hpas, pods, secrets, ...(nodeTuner ? { nodeTuner } : {}) };
  }

  /**
   * Events for what a person should know: Ready reached or lost, and every new reason to be
   * Degraded (an invalid spec, a refused apply, a missing Secret, pods that cannot start, a
   * failed rollout) as a Warning with the same message as the condition.
   */
  private recordTransitions(
    raw: KubeObject,
    before: PushGatewayStatus | undefined,
    after: PushGatewayStatus,
  ): void {
    const { recorder } = this.o;
    const wasReady = findCondition(before?.conditions, 'Ready');
    const ready = findCondition(after.conditions, 'Ready');
    if (ready && wasReady?.status !== ready.status) {
      if (ready.status === 'True')
        void recorder.record(PushGatewayResource, raw, 'Normal', 'Ready', 'Reconcile', ready.message);
      else if (wasReady?.status === 'True')
        void recorder.record(PushGatewayResource, raw, 'Warning', 'NotReady', 'Reconcile', ready.message);
    }
    const wasDegraded = findCondition(before?.conditions, 'Degraded');
    const degraded = findCondition(after.conditions, 'Degraded');
    if (
      degraded?.status === 'True' &&
      (wasDegraded?.status !== 'True' ||
        wasDegraded.reason !== degraded.reason ||
        wasDegraded.message !== degraded.message)
    )
      void recorder.record(
        PushGatewayResource,
        raw,
        'Warning',
        degraded.reason,
        'Reconcile',
        degraded.message,
      );
  }
}

/** Parses the stored object; a spec the schema refuses is terminal (InvalidSpec). */
function parse(raw: KubeObject): PushGateway {
  try {
    return parsePushGateway(raw);
  } catch (err) {
    if (err instanceof ApiValidationError) throw new TerminalError('InvalidSpec', err.message);
    throw err;
  }
}

/** A sync's error as a condition's reason and message: typed errors keep theirs. */
function describeFailure(err: unknown): SyncFailure {
  const terminal = terminalCause(err);
  if (terminal) return { reason: terminal.reason, message: terminal.message, terminal: true };
  return {
    reason: 'ApplyFailed',
    message: err instanceof Error ? err.message : String(err),
    terminal: false,
  };
}
