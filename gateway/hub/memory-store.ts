import { encodeStoredMessage, type StoredMessage } from '../../common/protocol/server-frames.js';
import type {
  AckEntry,
  AckResult,
  ClaimResult,
  DeviceRegistration,
  DeviceStore,
  MessageCounter,
  Presence,
  ReplayPage,
} from './store.js';
import { registrationMark } from '../../common/redis/app-index.js';
import { REPLAY_PAGE } from './store.js';

interface InboxEntry {
  seq: number;
  id: string;
  body: string;
  exp: number;
}

interface DeviceRecord {
  seq: number;
  /** Receipt mark: entries with seq up to it are counted delivered (pgAck's rseq). */
  rseq?: number;
  inbox: InboxEntry[];
  presence?: Presence;
  learnedHeartbeatMs?: number;
  tags?: string[];
  alias?: string;
}

/**
 * A DeviceStore held in this process, with the Redis store's ordering contract: per device, a
 * sequence counter and an inbox in seq order; reads after a seq drop expired messages; acks
 * remove by id in any order; receipts count entries delivered once, by the device's mark. No collapse keys or inbox bound (those are the Lua scripts'
 * business and are tested against real Redis). The hub's unit tests run the delivery orderer
 * and the ack batcher on it.
 */
export class MemoryDeviceStore implements DeviceStore {
  private readonly devices = new Map<string, DeviceRecord>();
  /** Message status counters, by id. */
  readonly status = new Map<string, Partial<Record<MessageCounter, number>>>();
  /** The app indexes: `app NUL device` -> registration. */
  readonly registered = new Map<string, DeviceRegistration>();
  /** Inbox reads so far (a test can tell a resync happened). */
  reads = 0;

  constructor(private readonly now: () => number = Date.now) {}

  private record(app: string, device: string): DeviceRecord {
    const key = `${app}\u0000${device}`;
    let r = this.devices.get(key);
    if (!r) this.devices.set(key, (r = { seq: 0, inbox: [] }));
    return r;
  }

  /** Stores a message for one device, as the push path does; returns its seq and stored body. */
  store(app: string, device: string, message: StoredMessage): { seq: number; body: string } {
    const r = this.record(app, device);
    const body = encodeStoredMessage(message);
    r.inbox.push({ seq: ++r.seq, id: message.id, body, exp: message.exp });
    return { seq: r.seq, body };
  }

  /** The ids still in a device's inbox, in seq order. */
  inboxIds(app: string, device: string): string[] {
    return this.record(app, device).inbox.map((e) => e.id);
  }

  presenceOf(app: string, device: string): Presence | undefined {
    return this.record(app, device).presence;
  }

  async readInbox(app: string, device: string, afterSeq: number, limit: number): Promise<ReplayPage> {
    this.reads++;
    const r = this.record(app, device);
    const now = this.now();
    const before = r.inbox.length;
    r.inbox = r.inbox.filter((e) => e.exp > now);
    const messages = r.inbox
      .filter((e) => e.seq > afterSeq)
      .slice(0, limit)
      .map((e) => ({ seq: e.seq, body: e.body }));
    return { messages, expired: before - r.inbox.length };
  }

  async ack(app: string, acks: AckEntry[]): Promise<AckResult[]> {
    return acks.map(({ device, ids, recv = 0 }) => {
      const r = this.record(app, device);
      const result: AckResult = { removed: [], unknown: [], delivered: [] };
      const mark = r.rseq ?? 0;
      if (recv > mark) {
        for (const e of r.inbox) if (e.seq > mark && e.seq <= recv) result.delivered.push(e.id);
        r.rseq = recv;
      }
      for (const id of ids) {
        const i = r.inbox.findIndex((e) => e.id === id);
        if (i < 0) result.unknown.push(id);
        else {
          if (r.inbox[i]!.seq > (r.rseq ?? 0)) result.delivered.push(id);
          r.inbox.splice(i, 1);
          result.removed.push(id);
        }
      }
      return result;
    });
  }

  async claim(
    app: string,
    device: string,
    presence: Presence,
    announced: { tags?: string[]; alias?: string | null },
  ): Promise<ClaimResult> {
    const r = this.record(app, device);
    const registered = this.registered.get(`${app}\u0000${device}`);
    const result: ClaimResult = {
      previous: r.presence,
      learnedHeartbeatMs: r.learnedHeartbeatMs,
      tags: r.tags,
      alias: r.alias,
      indexed: registered ? registrationMark(registered) : undefined,
      lastSeq: r.seq,
      firstPage: await this.readInbox(app, device, 0, REPLAY_PAGE),
    };
    r.presence = { ...presence };
    if (announced.tags) r.tags = [...announced.tags];
    if (announced.alias !== undefined) r.alias = announced.alias ?? undefined;
    return result;
  }

  async release(app: string, device: string, session: string, learnedHeartbeatMs?: number): Promise<void> {
    const r = this.record(app, device);
    if (r.presence?.session !== session) return;
    r.presence = undefined;
    if (learnedHeartbeatMs) r.learnedHeartbeatMs = learnedHeartbeatMs;
  }

  async register(app: string, device: string, now: DeviceRegistration): Promise<void> {
    const r = this.record(app, device);
    r.tags = [...now.tags];
    r.alias = now.alias ?? undefined;
    this.registered.set(`${app}\u0000${device}`, { tags: [...now.tags], alias: now.alias });
  }

  async touch(): Promise<void> {}

  async forget(app: string, device: string): Promise<void> {
    const r = this.record(app, device);
    r.tags = undefined;
    r.alias = undefined;
    this.registered.delete(`${app}\u0000${device}`);
  }

  async countStatus(id: string, counter: MessageCounter, n: number): Promise<void> {
    let s = this.status.get(id);
    if (!s) this.status.set(id, (s = {}));
    s[counter] = (s[counter] ?? 0) + n;
  }
}
