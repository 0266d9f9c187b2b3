import { randomBytes } from 'node:crypto';
import type { Logger } from '../../common/logger.js';
import { apiVersionOf, type KubeClient, type KubeObject, type ResourceType } from './kube.js';
import { Resources } from './resources.js';

export type EventType = 'Normal' | 'Warning';

/** events.k8s.io/v1 wants MicroTime: RFC 3339 with microseconds. */
export const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

interface Recent {
  name: string;
  namespace: string;
  count: number;
  at: number;
}

/**
 * Records Kubernetes Events (events.k8s.io/v1; `kubectl describe` shows them) for important
 * transitions. The same (object, reason, note) within `dedupeWindowMs` becomes one Event
 * whose series count goes up, not a new Event each time, so a flapping object cannot flood
 * etcd. Recording never fails the caller: an Event lost is logged, not thrown.
 */
export class EventRecorder {
  private recent = new Map<string, Recent>();

  constructor(
    private readonly client: KubeClient,
    private readonly controller: string,
    private readonly instance: string,
    private readonly log: Logger,
    private readonly dedupeWindowMs = 10 * 60_000,
    private readonly maxRemembered = 4096,
  ) {}

  async record(
    resource: ResourceType,
    obj: KubeObject,
    type: EventType,
    reason: string,
    action: string,
    note: string,
  ): Promise<void> {
    const namespace = obj.metadata?.namespace ?? 'default';
    const key = `${obj.metadata?.uid}|${reason}|${note}`;
    const now = new Date();
    try {
      const prev = this.recent.get(key);
      if (prev && now.getTime() - prev.at < this.dedupeWindowMs) {
        prev.count++;
        prev.at = now.getTime();
        await this.client.mergePatch(Resources.Event, prev.namespace, prev.name, {
          series: { count: prev.count, lastObservedTime: microTime(now) },
        });
        return;
      }
      const name = `${obj.metadata?.name}.${randomBytes(6).toString('hex')}`;
      await this.client.create(Resources.Event, {
        metadata: { name, namespace },
        eventTime: microTime(now),
        reportingController: this.controller,
        reportingInstance: this.instance,
        action,
        reason,
        note: note.slice(0, 1024),
        type,
        regarding: {
          apiVersion: apiVersionOf(resource),
          kind: resource.kind,
          name: obj.metadata?.name,
          namespace: obj.metadata?.namespace,
          uid: obj.metadata?.uid,
          resourceVersion: obj.metadata?.resourceVersion,
        },
      });
      if (this.recent.size >= this.maxRemembered) this.recent.delete(this.recent.keys().next().value!);
      this.recent.set(key, { name, namespace, count: 1, at: now.getTime() });
    } catch (err) {
      this.log.warn({ err: String(err), reason }, 'could not record event');
    }
  }
}
