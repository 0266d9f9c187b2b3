import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { PushObserver } from '../../common/push/observer.js';
import type { AppLimitObserver } from '../../common/ratelimit/app-limiter.js';

/** The dispatcher's own /metrics (not the gateway's): what it sent, how its units went, bad plans. */
export class DispatcherMetrics {
  readonly registry = new Registry();
  readonly sent: Counter<'outcome'>;
  readonly batches: Counter<'result'>;
  readonly invalidPlans: Counter;
  readonly stateLost: Counter;
  readonly claims: Counter;
  readonly activeUnits: Gauge;
  readonly snapshots: Counter<'result'>;
  readonly routeFailures: Counter;
  readonly rateLimited: Counter<'outcome'>;
  readonly gcCampaigns: Counter;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'pushgate_dispatcher_' });
    const r = [this.registry];
    this.sent = new Counter({
      name: 'pushgate_dispatcher_messages_total',
      help: 'Campaign recipients handled by this replica, by outcome (stored, duplicate, deferred, expired, failed, cap_refused).',
      labelNames: ['outcome'],
      registers: r,
    });
    this.batches = new Counter({
      name: 'pushgate_dispatcher_batches_total',
      help: 'Batches by result: ok, fenced (the lease was lost meanwhile: not counted, another replica redoes it), error.',
      labelNames: ['result'],
      registers: r,
    });
    this.invalidPlans = new Counter({
      name: 'pushgate_dispatcher_invalid_plans_total',
      help: 'Campaign plans in Redis that failed validation (logged with the field, skipped).',
      registers: r,
    });
    this.stateLost = new Counter({
      name: 'pushgate_dispatcher_state_lost_total',
      help: 'Campaigns stopped because Redis lost their cursors or progress after sending began.',
      registers: r,
    });
    this.claims = new Counter({
      name: 'pushgate_dispatcher_unit_claims_total',
      help: 'Work units claimed (a unit whose holder died is claimed again after its lease).',
      registers: r,
    });
    this.activeUnits = new Gauge({
      name: 'pushgate_dispatcher_active_units',
      help: 'Work units this replica is working now.',
      registers: r,
    });
    this.snapshots = new Counter({
      name: 'pushgate_dispatcher_snapshots_total',
      help: 'Audience snapshots taken, by result.',
      labelNames: ['result'],
      registers: r,
    });
    this.routeFailures = new Counter({
      name: 'pushgate_dispatcher_route_failures_total',
      help: 'Notifications to gateways that could not be published (swept: the devices reread their inboxes).',
      registers: r,
    });
    this.rateLimited = new Counter({
      name: 'pushgate_dispatcher_app_limited_total',
      help: "Recipients by what the app's RateLimitPolicy limit did (deferred, released, expired, refused).",
      labelNames: ['outcome'],
      registers: r,
    });
    this.gcCampaigns = new Counter({
      name: 'pushgate_dispatcher_gc_campaigns_total',
      help: 'Campaigns whose dispatcher keys were removed after the campaign left the index.',
      registers: r,
    });
  }

  pushObserver(): PushObserver {
    return {
      stored: () => {},
      routeFailed: (_g, n) => this.routeFailures.inc(n),
      routeSwept: () => {},
      routeAbandoned: () => {},
    };
  }

  appLimitObserver(): AppLimitObserver {
    return {
      deferred: (_a, n) => this.rateLimited.inc({ outcome: 'deferred' }, n),
      released: (_a, n) => this.rateLimited.inc({ outcome: 'released' }, n),
      expired: (_a, n) => this.rateLimited.inc({ outcome: 'expired' }, n),
      refused: () => this.rateLimited.inc({ outcome: 'refused' }),
    };
  }
}
