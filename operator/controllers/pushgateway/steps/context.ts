import type { PushGateway } from '../../../api/index.js';
import { MANAGED_SELECTOR } from '../../../identity.js';
import type { Controller } from '../../../runtime/controller.js';
import type { EventRecorder } from '../../../runtime/events.js';
import type { Informer } from '../../../runtime/informer.js';
import type { KubeClient, KubeObject, ResourceType } from '../../../runtime/kube.js';
import { PushGatewayResource } from '../names.js';

/** What the sync steps of one PushGateway share. */
export interface SyncContext {
  key: string;
  /** The PushGateway as the API server has it (for events). */
  raw: KubeObject;
  gw: PushGateway;
  /** Every object the spec asks for; the probe-secret step adds the probe Secret. */
  desired: KubeObject[];
  env: SyncEnv;
}

export interface SyncEnv {
  client: KubeClient;
  recorder: EventRecorder;
  controller: Controller;
  /**
   * Per key, the digest of the last desired set the API server accepted in a dry run: a memo
   * of a pure answer, so an unchanged spec is not dry-run again on every resync.
   */
  preflighted: Map<string, string>;
}

/** The cache of a kind the PushGateway controller owns (label-selected, as the runtime watches it). */
export const owned = (ctx: SyncContext, kind: ResourceType): Informer =>
  ctx.env.controller.informer(kind, { labelSelector: MANAGED_SELECTOR });

/** A Normal event on the PushGateway for a region that came or went. */
export function recordRegionEvent(ctx: SyncContext, reason: string, action: string, note: string): void {
  void ctx.env.recorder.record(PushGatewayResource, ctx.raw, 'Normal', reason, action, note);
}

export const idOf = (o: KubeObject) =>
  `${o.apiVersion}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
