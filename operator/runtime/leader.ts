import type { Logger } from '../../common/logger.js';
import { isAlreadyExists, isConflict, isNotFound, type KubeClient, type KubeObject } from './kube.js';
import { microTime } from './events.js';
import { Resources } from './resources.js';

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}
type Lease = KubeObject & { spec?: LeaseSpec };

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  /** How long a lease is honoured after its holder's last renew (as observed locally). */
  leaseDurationMs: number;
  /** The leader gives up (stops acting) if it could not renew for this long; < leaseDurationMs. */
  renewDeadlineMs: number;
  /** Time between tries to acquire or renew. */
  retryPeriodMs: number;
  log: Logger;
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
 * - writes are optimistic (PUT with resourceVersion), so of two candidates only one wins;
 * - expiry is judged on the local clock from when the record changed, never by comparing our
 *   clock with the holder's renewTime, so clock skew cannot make two leaders. A renew seen at
 *   this poll happened after the previous poll, which saw the old record: when that poll is
 *   recent (less than half the margin leaseDuration - renewDeadline ago) its time is the
 *   estimate, else the time of this poll. With a timer at the expiry itself, a standby takes
 *   over within leaseDuration of the holder's last renew, not up to two poll periods later;
 *   the early estimate stays inside the margin by which the holder steps down first;
 * - the leader stops acting when it has not renewed for renewDeadline, which is shorter
 *   than the lease duration others wait for: it steps down before anyone else may step up;
 * - after stepping down it stays a candidate (an API server outage does not need a process
 *   restart to recover), and on shutdown it releases the lease so a standby takes over at once.
 */
export class LeaderElector {
  private leading = false;
  private stopped = false;
  private observed: { key: string; at: number; durationMs: number; byOther: boolean } | undefined;
  /** Local time of the last successful read of the Lease. */
  private lastPollAt: number | undefined;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly client: KubeClient,
    readonly o: LeaderElectionOptions,
  ) {
    if (o.renewDeadlineMs >= o.leaseDurationMs)
      throw new Error('leader election: renewDeadline must be shorter than leaseDuration');
    if (o.retryPeriodMs >= o.renewDeadlineMs)
      throw new Error('leader election: retryPeriod must be shorter than renewDeadline');
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let ok = false;
      // Measured from before the request: the renew deadline then counts from no later than the
      // moment the API server recorded the renew, which is what standbys estimate from.
      const attemptAt = Date.now();
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (err) {
        this.o.log.warn({ err: String(err) }, 'leader election: could not reach the lease');
      }
      const now = Date.now();
      if (ok) {
        this.lastRenew = attemptAt;
        if (!this.leading && !this.stopped) {
          this.leading = true;
          this.o.log.info({ lease: this.o.name, identity: this.o.identity }, 'became leader');
          this.o.onStartedLeading();
        }
      } else if (this.leading && now - this.lastRenew >= this.o.renewDeadlineMs) {
        this.leading = false;
        this.o.log.warn({ lease: this.o.name }, 'lost leadership (renew deadline passed); standing by');
        this.o.onStoppedLeading();
      }
      if (this.stopped) break;
      // While leading, renew on time; while waiting, add jitter so candidates do not collide.
      let delay = this.leading ? this.o.retryPeriodMs : this.o.retryPeriodMs * (1 + Math.random() * 0.2);
      // A standby tries again the moment the holder's lease runs out, not up to a period later.
      const held = this.observed;
      if (!this.leading && held?.byOther) {
        delay = Math.min(delay, Math.max(0, held.at + held.durationMs - Date.now() + 10));
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, delay);
      });
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.o;
    const now = new Date();
    const leaseSeconds = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    let lease: Lease;
    const pollAt = Date.now();
    try {
      lease = await this.client.get<Lease>(Resources.Lease, namespace, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.client.create(Resources.Lease, {
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: leaseSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        });
        return true;
      } catch (e) {
        if (isAlreadyExists(e)) return false;
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const recordKey = `${holder}|${spec.renewTime}|${lease.metadata?.resourceVersion}`;
    const heldByOther = holder !== '' && holder !== identity;
    const observedDuration = (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (this.observed?.key !== recordKey) {
      const margin = (this.o.leaseDurationMs - this.o.renewDeadlineMs) / 2;
      const previous = this.lastPollAt;
      const at = previous !== undefined && this.observed && pollAt - previous < margin ? previous : pollAt;
      this.observed = { key: recordKey, at, durationMs: observedDuration, byOther: heldByOther };
    }
    this.lastPollAt = pollAt;
    if (heldByOther && Date.now() < this.observed.at + observedDuration) return false;
    const next: Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        renewTime: microTime(now),
        ...(holder === identity
          ? {}
          : { acquireTime: microTime(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
      },
    };
    try {
      await this.client.replace(Resources.Lease, next);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Stops the loop; if leading, steps down and releases the lease so a standby can take over at once. */
  async stop({ release = true }: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    if (!this.leading) return;
    this.leading = false;
    this.o.onStoppedLeading();
    if (!release) return;
    try {
      const lease = await this.client.get<Lease>(Resources.Lease, this.o.namespace, this.o.name);
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      await this.client.replace(Resources.Lease, {
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: null,
          acquireTime: null,
          renewTime: microTime(new Date()),
          leaseDurationSeconds: 1,
        },
      });
      this.o.log.info({ lease: this.o.name }, 'released leadership');
    } catch (err) {
      this.o.log.warn({ err: String(err) }, 'could not release the lease');
    }
  }
}
