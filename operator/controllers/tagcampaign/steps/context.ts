import type { TagCampaign } from '../../../api/index.js';
import type { Logger } from '../../../../common/logger.js';
import type { CampaignProgress } from '../../../../common/campaign/plan.js';
import type { Controller } from '../../../runtime/controller.js';
import type { EventRecorder } from '../../../runtime/events.js';
import type { KubeClient, KubeObject } from '../../../runtime/kube.js';
import type { GatewayRedis, GatewayRedisHandle } from '../../shared/gateway-redis.js';
import type { CampaignRateDecision } from '../rate.js';

/** What the controller keeps per campaign between a sync and the status path. */
export interface Observed {
  uid: string;
  generation: number;
  /** ms: when progress was read (the status's notion of now). */
  observedAt: number;
  progress?: CampaignProgress;
  rate?: CampaignRateDecision;
  /** Set when the PushGateway runs no dispatcher (spec.dispatcher.enabled: false). */
  noDispatcher?: string;
}

export interface CampaignEnv {
  client: KubeClient;
  recorder: EventRecorder;
  controller: Controller;
  log: Logger;
  gatewayRedis: GatewayRedis;
  /** Per key: the last observation (progress, rate), read by the status path. */
  observed: Map<string, Observed>;
  /** Per key: the plan JSON last published (republished when it differs). */
  published: Map<string, string>;
}

/** What the sync steps of one campaign share. */
export interface CampaignContext {
  key: string;
  raw: KubeObject;
  tc: TagCampaign;
  gatewayKey: string;
  now: number;
  env: CampaignEnv;
  /** The gateway's Redis and its keys (its spec.redis prefix), set by resolve. */
  redis?: GatewayRedisHandle;
  rate?: CampaignRateDecision;
  noDispatcher?: string;
}
