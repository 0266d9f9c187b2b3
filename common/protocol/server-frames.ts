import {
  PROTOCOL_VERSION,
  type DrainFrame,
  type ErrorFrame,
  type PushFrame,
  type UpdatedFrame,
  type WelcomeFrame,
} from './frames.js';

/**
 * Encoding of every gateway -> device frame (the schemas are in frames.ts). The gateway writes
 * frames only through these functions, so the wire format is spelled in one place; each takes
 * the frame's typed fields and fixes `t` (and `v`).
 */
export function encodeWelcome(f: Omit<WelcomeFrame, 't' | 'v'>): string {
  return JSON.stringify({
    t: 'welcome',
    v: PROTOCOL_VERSION,
    gateway: f.gateway,
    session: f.session,
    hb: f.hb,
    tags: f.tags,
    alias: f.alias,
    now: f.now,
  } satisfies WelcomeFrame);
}

/** The answer to every ping (hot: one per device per heartbeat), hence a template. */
export function encodePong(hb: number): string {
  return `{"t":"pong","hb":${Math.trunc(hb)}}`;
}

export function encodeUpdated(f: Omit<UpdatedFrame, 't'>): string {
  return JSON.stringify({ t: 'updated', tags: f.tags, alias: f.alias } satisfies UpdatedFrame);
}

export function encodeError(f: Omit<ErrorFrame, 't'>): string {
  return JSON.stringify({ t: 'error', ...f } satisfies ErrorFrame);
}

export function encodeDrain(f: Omit<DrainFrame, 't'>): string {
  return JSON.stringify({ t: 'drain', reconnect: f.reconnect, within: f.within } satisfies DrainFrame);
}

// ---------------------------------------------------------------- push frames

/**
 * A message as stored in a device's inbox: the push frame without `t` and `seq` (which differ
 * per device and delivery). Its JSON has `id` first, so a gateway builds the push frame by
 * splicing `"t":"push","seq":N,` in front of the stored text, without parsing it.
 */
export type StoredMessage = Omit<PushFrame, 't' | 'seq'>;

const ID_PREFIX = '{"id":"';

export function encodeStoredMessage(m: StoredMessage): string {
  const { id, exp, ttl, priority, collapse, sent, data } = m;
  return JSON.stringify(
    collapse === undefined
      ? { id, exp, ttl, priority, sent, data }
      : { id, exp, ttl, priority, collapse, sent, data },
  );
}

/**
 * An inbox entry that refers to a body stored once (common/redis/bodies.ts) instead of holding
 * a copy. Stored as `{"ref":1,"exp":..,"collapse":..}` under its message id (the hash field):
 * what the inbox scripts read per device (expiry, collapse key; the seq is the inbox score), so
 * TTL, collapse and the bound work on it unchanged. Reading it, the scripts put the id in front
 * (`{"id":..,"ref":1,...}`, see bodyRefId) and the reader resolves it to the body.
 */
export function encodeBodyRef(m: Pick<StoredMessage, 'exp' | 'collapse'>): string {
  return JSON.stringify(
    m.collapse === undefined ? { ref: 1, exp: m.exp } : { ref: 1, exp: m.exp, collapse: m.collapse },
  );
}

const REF_MARK = '","ref":1,';

/** A reference with its id in front, as inbox reads return it and deferred queues keep it. */
export function encodeBodyRefWithId(m: Pick<StoredMessage, 'id' | 'exp'>): string {
  return `{"id":${JSON.stringify(m.id)},"ref":1,"exp":${Math.trunc(m.exp)}}`;
}

/** The message id of an inbox entry as read (a reference with its id in front), else undefined. */
export function bodyRefId(entry: string): string | undefined {
  if (!entry.startsWith(ID_PREFIX)) return undefined;
  const end = entry.indexOf('"', ID_PREFIX.length);
  if (end < 0 || !entry.startsWith(REF_MARK, end)) return undefined;
  return entry.slice(ID_PREFIX.length, end);
}

/** The push frame text for a stored body (see StoredMessage). */
export function encodePushFrame(seq: number, body: string): string {
  return `{"t":"push","seq":${Math.trunc(seq)},${body.slice(1)}`;
}

/**
 * The message id of a stored body. Bodies written by encodeStoredMessage start with the id
 * (ids never need escaping), read without parsing; anything else is parsed.
 */
export function storedMessageId(body: string): string {
  if (body.startsWith(ID_PREFIX)) {
    const end = body.indexOf('"', ID_PREFIX.length);
    if (end > 0) return body.slice(ID_PREFIX.length, end);
  }
  const parsed = JSON.parse(body) as { id?: unknown };
  if (typeof parsed.id !== 'string') throw new Error('stored message has no string id');
  return parsed.id;
}
