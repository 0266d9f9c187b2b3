import { randomBytes } from 'node:crypto';
import {
  ApiValidationError,
  GROUP,
  PUSH_GATEWAY,
  VERSION,
  parsePushGateway,
  type PushGateway,
  type PushGatewayStatus,
} from '../../api/index.js';
import type { Logger } from '../../../common/logger.js';
import { findCondition, setCondition, type Condition } from '../../runtime/conditions.js';
import { onlyStatusChanged } from '../../runtime/changes.js';
import { Controller, type ReconcileResult } from '../../runtime/controller.js';
import type { EventRecorder } from '../../runtime/events.js';
import { Informer, apiListerWatcher } from '../../runtime/informer.js';
import {
  isAlreadyExists,
  splitKey,
  type KubeClient,
  type KubeObject,
  type ResourceType,
} from '../../runtime/kube.js';
import type { Manager } from '../../runtime/manager.js';
import type { OperatorMetrics } from '../../runtime/metrics.js';
import { Resources, resourceOf } from '../../runtime/resources.js';
import { writeStatus } from '../../runtime/status.js';
import { done, requeue, runSteps, type Step, type StepsOutcome } from '../../runtime/steps.js';
import { PROBE_SECRET_KEY, buildAll, buildProbeSecret, type BuildOptions } from './builders.js';
import { FIELD_MANAGER, LABEL_REGION, MANAGED_SELECTOR, names, ownerKeyOf } from './names.js';
import { computeStatus } from './status.js';

export const PushGatewayResource: ResourceType = {
  group: GROUP,
  version: VERSION,
  kind: PUSH_GATEWAY.kind,
  plural: PUSH_GATEWAY.plural,
  namespaced: true,
};

/** The namespaced kinds a PushGateway owns; each is watched (label-selected) so drift is seen. */
const OWNED_KINDS: ResourceType[] = [
  Resources.Secret,
  Resources.ServiceAccount,
  Resources.Role,
  Resources.RoleBinding,
  Resources.ConfigMap,
  Resources.Deployment,
  Resources.Service,
  Resources.HorizontalPodAutoscaler,
  Resources.PodDisruptionBudget,
  Resources.DaemonSet,
];

export interface PushGatewayControllerOptions {
  client: KubeClient;
  manager: Manager;
  metrics: OperatorMetrics;
  recorder: EventRecorder;
  log: Logger;
  build: BuildOptions;
  /** Watch one namespace only; undefined = all. */
  namespace?: string;
  workers?: number;
  resyncMs?: number;
  watchdogMs?: number;
}

interface ReconcileContext {
  key: string;
  raw: KubeObject;
  gw: PushGateway;
  desired: KubeObject[];
}

const idOf = (o: KubeObject) =>
  `${o.apiVersion}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

/**
 * The thin part: watches PushGateways and everything they own, and reconciles one
 * PushGateway as ordered steps: apply identities and config, apply the regions' objects and
 * the node tuner, prune what the spec no longer asks for, then compute and write status.
 * Every reconcile applies the whole desired state (server-side apply is a no-op when nothing
 * changed), so a child edited or deleted by hand is restored by the event that reports it.
 */
export class PushGatewayController {
  readonly controller: Controller;
  readonly gateways: Informer;
  readonly children = new Map<string, Informer>();
  readonly clusterRoleBindings: Informer;

  constructor(private readonly o: PushGatewayControllerOptions) {
    const { client, manager, metrics, log, namespace } = o;
    const informerOpts = (name: string) => ({
      name,
      log,
      metrics,
      ...(o.resyncMs !== undefined ? { resyncMs: o.resyncMs } : {}),
      ...(o.watchdogMs !== undefined ? { watchdogMs: o.watchdogMs } : {}),
    });
    this.controller = manager.addController(
      new Controller({
        name: 'pushgateway',
        reconcile: (key) => this.reconcile(key),
        workers: o.workers ?? 4,
        log,
        metrics,
      }),
    );
    this.gateways = manager.addInformer(
      new Informer(
        apiListerWatcher(client, PushGatewayResource, { namespace }),
        informerOpts(PUSH_GATEWAY.plural),
      ),
    );
    // Our own status writes come back as updates of the PushGateway: those (status moved,
    // generation did not) only need the status recomputed, or each write would re-apply everything.
    this.gateways.on((event, obj, old) => {
      const key = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
      if (event === 'update' && onlyStatusChanged(old, obj)) this.enqueueStatus(key, PUSH_GATEWAY.plural);
      else this.enqueueFull(key, PUSH_GATEWAY.plural);
    });
    for (const kind of OWNED_KINDS) {
      const inf = manager.addInformer(
        new Informer(
          apiListerWatcher(client, kind, { namespace, labelSelector: MANAGED_SELECTOR }),
          informerOpts(kind.plural),
        ),
      );
      inf.on((event, obj, old) =>
        this.enqueueOwner(obj, kind.plural, event === 'update' && onlyStatusChanged(old, obj)),
      );
      this.children.set(kind.kind, inf);
    }
    this.clusterRoleBindings = manager.addInformer(
      new Informer(
        apiListerWatcher(client, Resources.ClusterRoleBinding, { labelSelector: MANAGED_SELECTOR }),
        informerOpts(Resources.ClusterRoleBinding.plural),
      ),
    );
    this.clusterRoleBindings.on((_event, obj) => this.enqueueOwner(obj, Resources.ClusterRoleBinding.plural));
  }

  /**
   * A child's event brings its owner back. When only the child's status moved (a rollout
   * progressing, the HPA reporting) the owner's status is recomputed without re-applying
   * anything; any other change (an edit, a delete, a resync) re-applies the desired state.
   */
  private enqueueOwner(child: KubeObject, trigger: string, statusOnly = false): void {
    const key = ownerKeyOf(child);
    if (!key) return;
    if (this.o.namespace && splitKey(key).namespace !== this.o.namespace) return;
    if (statusOnly) this.enqueueStatus(key, trigger);
    else this.enqueueFull(key, trigger);
  }

  private enqueueStatus(key: string, trigger: string): void {
    this.o.metrics.enqueues.inc({ controller: 'pushgateway', trigger, mode: 'status' });
    this.controller.enqueue(key);
  }

  /** Keys whose next reconcile must apply desired state (not only recompute status). */
  private needsApply = new Set<string>();

  private enqueueFull(key: string, trigger: string): void {
    this.o.metrics.enqueues.inc({ controller: 'pushgateway', trigger, mode: 'apply' });
    this.needsApply.add(key);
    this.controller.enqueue(key);
  }

  /** Enqueue every PushGateway (a new leader catches up on whatever happened meanwhile). */
  enqueueAll(): void {
    for (const gw of this.gateways.list())
      this.enqueueFull(`${gw.metadata?.namespace}/${gw.metadata?.name}`, 'leader-elected');
    // Leftover cluster-scoped children whose PushGateway is gone are cleaned up by their key.
    for (const crb of this.clusterRoleBindings.list()) this.enqueueOwner(crb, 'leader-elected');
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const apply = this.needsApply.delete(key);
    try {
      return await this.reconcileOnce(key, apply);
    } catch (err) {
      if (apply) this.needsApply.add(key); // the retry must apply too
      throw err;
    }
  }

  private async reconcileOnce(key: string, apply: boolean): Promise<ReconcileResult> {
    const raw = this.gateways.get(key);
    if (!raw || raw.metadata?.deletionTimestamp) {
      // Namespaced children go with the owner (garbage collector); cluster-scoped ones are ours to delete.
      await this.deleteClusterScopedChildren(key);
      return;
    }
    let gw: PushGateway;
    try {
      gw = parsePushGateway(raw);
    } catch (err) {
      if (err instanceof ApiValidationError) return this.reportInvalidSpec(raw, err);
      throw err;
    }
    const ctx: ReconcileContext = { key, raw, gw, desired: buildAll(gw, this.o.build) };
    if (!apply) {
      await this.updateStatus(ctx, undefined);
      return;
    }
    const steps: Step<ReconcileContext>[] = [
      { name: 'ensure-probe-secret', run: (c) => this.ensureProbeSecret(c) },
      { name: 'apply-identities-and-config', run: (c) => this.applyPhase(c, (o) => !isWorkload(o)) },
      { name: 'apply-workloads', run: (c) => this.applyPhase(c, isWorkload) },
      { name: 'prune', run: (c) => this.prune(c) },
    ];
    let applyError: string | undefined;
    let outcome: StepsOutcome | undefined;
    try {
      outcome = await runSteps(steps, ctx);
    } catch (err) {
      applyError = err instanceof Error ? err.message : String(err);
    }
    await this.updateStatus(ctx, applyError);
    if (applyError) throw new Error(applyError);
    if (outcome?.requeue) {
      this.needsApply.add(key);
      return { requeueAfterMs: outcome.requeue.afterMs };
    }
    return undefined;
  }

  private async applyPhase(ctx: ReconcileContext, which: (o: KubeObject) => boolean) {
    const objs = ctx.desired.filter(which);
    await Promise.all(
      objs.map(async (obj) => {
        const isNewRegion = obj.kind === 'Deployment' && !this.cached(obj);
        await this.o.client.apply(resourceOf(obj), obj, { fieldManager: FIELD_MANAGER });
        if (isNewRegion) {
          const region = obj.metadata?.labels?.[LABEL_REGION];
          void this.o.recorder.record(
            PushGatewayResource,
            ctx.raw,
            'Normal',
            'RegionProvisioned',
            'Apply',
            `created the gateways of region ${region}`,
          );
        }
      }),
    );
    return done();
  }

  /**
   * The probe secret is generated once and then kept: created (never applied over) when
   * missing, and from then on part of the desired set with the value it already has.
   */
  private async ensureProbeSecret(ctx: ReconcileContext) {
    const name = names.probeSecret(ctx.gw);
    const cached = this.children.get('Secret')!.get(`${ctx.gw.metadata.namespace}/${name}`) as
      (KubeObject & { data?: Record<string, string> }) | undefined;
    const existing = cached?.data?.[PROBE_SECRET_KEY];
    if (existing) {
      ctx.desired.unshift(buildProbeSecret(ctx.gw, Buffer.from(existing, 'base64').toString()));
      return done();
    }
    const value = randomBytes(24).toString('base64url');
    try {
      await this.o.client.create(Resources.Secret, buildProbeSecret(ctx.gw, value));
      ctx.desired.unshift(buildProbeSecret(ctx.gw, value));
    } catch (err) {
      // Created meanwhile (our cache lags): its informer event brings us back with its value.
      if (!isAlreadyExists(err)) throw err;
      return requeue(1000, 'probe secret exists but is not in the cache yet');
    }
    return done();
  }

  private cached(obj: KubeObject): KubeObject | undefined {
    const inf = obj.kind ? this.children.get(obj.kind) : undefined;
    return inf?.get(`${obj.metadata?.namespace}/${obj.metadata?.name}`);
  }

  /** Deletes children this PushGateway owns that the spec no longer asks for (a region removed, node tuning off). */
  private async prune(ctx: ReconcileContext) {
    const want = new Set(ctx.desired.map(idOf));
    const { namespace } = splitKey(ctx.key);
    const stale: { kind: ResourceType; obj: KubeObject }[] = [];
    for (const kind of OWNED_KINDS) {
      for (const obj of this.children.get(kind.kind)!.list(namespace)) {
        if (ownerKeyOf(obj) !== ctx.key) continue;
        const uid = obj.metadata?.ownerReferences?.find((r) => r.controller)?.uid;
        if (uid && uid !== ctx.gw.metadata.uid) continue; // an older PushGateway of the same name: GC's job
        if (
          !want.has(
            idOf({
              ...obj,
              apiVersion: kind.group ? `${kind.group}/${kind.version}` : kind.version,
              kind: kind.kind,
            }),
          )
        ) {
          stale.push({ kind, obj });
        }
      }
    }
    if (!ctx.gw.spec.nodeTuning.enabled) {
      for (const crb of this.clusterRoleBindings.list()) {
        if (ownerKeyOf(crb) === ctx.key) stale.push({ kind: Resources.ClusterRoleBinding, obj: crb });
      }
    }
    const removedRegions = new Set<string>();
    await Promise.all(
      stale.map(async ({ kind, obj }) => {
        await this.o.client.deleteIfExists(kind, obj.metadata?.namespace, obj.metadata!.name!);
        const region = obj.metadata?.labels?.[LABEL_REGION];
        if (kind === Resources.Deployment && region) removedRegions.add(region);
      }),
    );
    for (const region of removedRegions) {
      void this.o.recorder.record(
        PushGatewayResource,
        ctx.raw,
        'Normal',
        'RegionRemoved',
        'Prune',
        `removed the gateways of region ${region}`,
      );
    }
    return done();
  }

  private async deleteClusterScopedChildren(key: string): Promise<void> {
    for (const crb of this.clusterRoleBindings.list()) {
      if (ownerKeyOf(crb) !== key) continue;
      await this.o.client.deleteIfExists(Resources.ClusterRoleBinding, undefined, crb.metadata!.name!);
    }
  }

  private async updateStatus(ctx: ReconcileContext, applyError: string | undefined): Promise<void> {
    const { gw, raw } = ctx;
    const ns = gw.metadata.namespace;
    const deployments = new Map<string, KubeObject | undefined>();
    const hpas = new Map<string, KubeObject | undefined>();
    for (const r of gw.spec.regions) {
      deployments.set(r.name, this.children.get('Deployment')!.get(`${ns}/${names.region(gw, r.name)}`));
      hpas.set(
        r.name,
        this.children.get('HorizontalPodAutoscaler')!.get(`${ns}/${names.region(gw, r.name)}`),
      );
    }
    const nodeTuner = gw.spec.nodeTuning.enabled
      ? this.children.get('DaemonSet')!.get(`${ns}/${names.nodeTuner(gw)}`)
      : undefined;
    const status = computeStatus({
      gw,
      children: { deployments, hpas, ...(nodeTuner ? { nodeTuner } : {}) },
      ...(applyError ? { applyError } : {}),
      now: new Date(),
    });
    const wrote = await writeStatus(
      this.o.client,
      PushGatewayResource,
      raw,
      status as Record<string, unknown>,
      FIELD_MANAGER,
    );
    if (wrote) this.recordTransitions(raw, gw.status, status, applyError);
  }

  private recordTransitions(
    raw: KubeObject,
    before: PushGatewayStatus | undefined,
    after: PushGatewayStatus,
    applyError?: string,
  ): void {
    const was = findCondition(before?.conditions as Condition[] | undefined, 'Ready');
    const now = findCondition(after.conditions as Condition[] | undefined, 'Ready');
    const { recorder } = this.o;
    if (applyError)
      void recorder.record(PushGatewayResource, raw, 'Warning', 'ApplyFailed', 'Apply', applyError);
    if (now && was?.status !== now.status) {
      if (now.status === 'True')
        void recorder.record(PushGatewayResource, raw, 'Normal', 'Ready', 'Reconcile', now.message);
      else if (was?.status === 'True')
        void recorder.record(PushGatewayResource, raw, 'Warning', 'NotReady', 'Reconcile', now.message);
    }
  }

  private async reportInvalidSpec(raw: KubeObject, err: ApiValidationError): Promise<void> {
    const generation = raw.metadata?.generation ?? 0;
    const prev = ((raw as { status?: PushGatewayStatus }).status ?? {}) as PushGatewayStatus;
    const now = new Date();
    let conditions = setCondition(
      prev.conditions as Condition[] | undefined,
      {
        type: 'Ready',
        status: 'False',
        reason: 'InvalidSpec',
        message: err.message,
        observedGeneration: generation,
      },
      now,
    );
    conditions = setCondition(
      conditions,
      {
        type: 'Degraded',
        status: 'True',
        reason: 'InvalidSpec',
        message: err.message,
        observedGeneration: generation,
      },
      now,
    );
    const wrote = await writeStatus(
      this.o.client,
      PushGatewayResource,
      raw,
      { ...prev, observedGeneration: generation, conditions },
      FIELD_MANAGER,
    );
    if (wrote)
      void this.o.recorder.record(
        PushGatewayResource,
        raw,
        'Warning',
        'InvalidSpec',
        'Validate',
        err.message,
      );
  }
}

const WORKLOAD_KINDS = new Set([
  'Deployment',
  'Service',
  'HorizontalPodAutoscaler',
  'PodDisruptionBudget',
  'DaemonSet',
]);
const isWorkload = (o: KubeObject) => WORKLOAD_KINDS.has(o.kind ?? '');
