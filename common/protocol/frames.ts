import { z } from 'zod';
import { alias, deviceId, MESSAGE_ID_MAX, messageId, tag } from './ids.js';

/**
 * The device wire protocol, version 1 (see gateway/PROTOCOL.md for the prose). Every frame is
 * one WebSocket text message holding one JSON object whose `t` field names the frame. These
 * schemas are the single definition: the gateway validates with them, the client library
 * builds frames that satisfy them, and the document quotes them.
 */
export const PROTOCOL_VERSION = 1;
/** Offered in `Sec-WebSocket-Protocol`; a gateway that speaks v1 echoes it back. */
export const SUBPROTOCOL = 'pushgate.v1';
/** The WebSocket path on a gateway. */
export const DEVICE_PATH = '/v1/connect';

/**
 * How long a device waits for `welcome` after sending `hello` before it gives up on the endpoint:
 * the gateway's hello timeout (10 s) plus the token check and the presence write, with margin.
 */
export const WELCOME_TIMEOUT_MS = 15_000;
/** Largest frame a device may send (bytes). Larger frames are closed with 1009. */
export const MAX_CLIENT_FRAME_BYTES = 16 * 1024;
/** Largest `data` of one push (bytes of its JSON). */
export const MAX_PUSH_DATA_BYTES = 4 * 1024;
/**
 * Longest TTL of a message, in seconds (7 days), everywhere: the push API (a gateway may lower it
 * with --max-ttl-seconds, never raise it), the TagCampaign CRD, and the key expiry of the store.
 */
export const MAX_TTL_SECONDS = 7 * 24 * 3600;
/** TTL of a message that sets none (one day). */
export const DEFAULT_TTL_SECONDS = 86_400;
export const MAX_TAGS = 64;
export const MAX_ACK_IDS = 256;

/**
 * Identifiers (device id, alias, tag, app id, message id) have one definition, in ids.ts.
 * `idString` and `tagName` are the names this module used to export them under.
 */
export const idString = deviceId;
export const tagName = tag;

// ---------------------------------------------------------------- device -> gateway

export const helloFrame = z.strictObject({
  t: z.literal('hello'),
  /** Protocol version the device speaks. */
  v: z.literal(PROTOCOL_VERSION),
  /** Device token (HS256 JWT, see token.ts). */
  token: z.string().min(1).max(2048),
  tags: z.array(tag).max(MAX_TAGS).optional(),
  alias: alias.nullable().optional(),
  /**
   * The device sends receipts (`recv` frames, or `recv` on `ping`): the gateway counts a push
   * delivered when the device reports it read, before its ack. Absent or false: only acks count.
   */
  recv: z.boolean().optional(),
});

/** A seq a receipt names: a positive safe integer (what `push.seq` can be). */
const receiptSeq = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** `recv`: every push with seq up to this one on this connection has been read (see recvFrame). */
export const pingFrame = z.strictObject({ t: z.literal('ping'), recv: receiptSeq.optional() });

/**
 * A receipt: the device has read every push with `seq` up to this one on this connection (sent
 * once per read of the socket, before the pushes are handled; acks follow when they are).
 */
export const recvFrame = z.strictObject({ t: z.literal('recv'), seq: receiptSeq });

export const ackFrame = z.strictObject({
  t: z.literal('ack'),
  ids: z.array(messageId).min(1).max(MAX_ACK_IDS),
});

/** Change tags and/or alias after hello. `set` replaces all tags; `add`/`remove` edit them. */
export const updateFrame = z
  .strictObject({
    t: z.literal('update'),
    set: z.array(tag).max(MAX_TAGS).optional(),
    add: z.array(tag).max(MAX_TAGS).optional(),
    remove: z.array(tag).max(MAX_TAGS).optional(),
    /** A string sets the alias, null clears it, absent leaves it. */
    alias: alias.nullable().optional(),
  })
  .refine((f) => !(f.set && (f.add || f.remove)), { message: 'use either set or add/remove, not both' });

/** The device unregisters: it leaves the tag index, alias and app index; the gateway closes 1000. */
export const byeFrame = z.strictObject({ t: z.literal('bye') });

export const clientFrame = z.discriminatedUnion('t', [
  helloFrame,
  pingFrame,
  ackFrame,
  recvFrame,
  updateFrame,
  byeFrame,
]);
export type ClientFrame = z.infer<typeof clientFrame>;
export type HelloFrame = z.infer<typeof helloFrame>;
export type UpdateFrame = z.infer<typeof updateFrame>;
export type RecvFrame = z.infer<typeof recvFrame>;
export const CLIENT_FRAME_TYPES = ['hello', 'ping', 'ack', 'recv', 'update', 'bye'] as const;

// ---------------------------------------------------------------- gateway -> device

export const welcomeFrame = z.object({
  t: z.literal('welcome'),
  v: z.literal(PROTOCOL_VERSION),
  gateway: z.string(),
  session: z.string(),
  /** Advised heartbeat interval (ms): send a ping at least this often. */
  hb: z.number().int().positive(),
  tags: z.array(z.string()),
  alias: z.string().nullable(),
  /** Server clock (ms since epoch), so a device can judge push expiry. */
  now: z.number().int(),
});

export const pushPriority = z.enum(['high', 'normal']);
export const pushFrame = z.object({
  t: z.literal('push'),
  /** Message id, the same for every device of one API call; the dedupe key. */
  id: messageId,
  /** Per-device sequence number: strictly increasing in the order messages were accepted. */
  seq: z.number().int().positive(),
  /** Expiry (ms since epoch); a device may drop a push received after it. */
  exp: z.number().int(),
  /** TTL in seconds as given to the API. */
  ttl: z.number().int().nonnegative(),
  priority: pushPriority,
  collapse: z.string().optional(),
  /** When the API accepted the message (ms since epoch). */
  sent: z.number().int(),
  data: z.unknown(),
});

export const pongFrame = z.object({
  t: z.literal('pong'),
  /** The (possibly changed) advised heartbeat interval in ms. */
  hb: z.number().int().positive(),
});

export const updatedFrame = z.object({
  t: z.literal('updated'),
  tags: z.array(z.string()),
  alias: z.string().nullable(),
});

/** A non-fatal complaint about one frame; the connection stays open. */
export const errorFrame = z.object({
  t: z.literal('error'),
  /** Only unknown_id today; a device ignores codes it does not know. */
  code: z.string(),
  message: z.string(),
  /** For unknown_id: the ids the gateway did not hold. */
  ids: z.array(z.string()).optional(),
});

/** Sent just before a 1012 (drain) close: where to reconnect, and after how long at most. */
export const drainFrame = z.object({
  t: z.literal('drain'),
  reconnect: z.array(z.string()),
  /** Spread reconnects: wait a random time in [0, within) ms before reconnecting. */
  within: z.number().int().nonnegative(),
});

export const serverFrame = z.discriminatedUnion('t', [
  welcomeFrame,
  pushFrame,
  pongFrame,
  updatedFrame,
  errorFrame,
  drainFrame,
]);
export type ServerFrame = z.infer<typeof serverFrame>;
export type WelcomeFrame = z.infer<typeof welcomeFrame>;
export type PushFrame = z.infer<typeof pushFrame>;
export type DrainFrame = z.infer<typeof drainFrame>;
export type ErrorFrame = z.infer<typeof errorFrame>;
export type PongFrame = z.infer<typeof pongFrame>;
export type UpdatedFrame = z.infer<typeof updatedFrame>;

/** A receipt's seq passes receiptSeq (a positive safe integer). */
function isReceiptSeq(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
}

/**
 * An ack, recv or ping frame that passes its schema exactly (same rules as ackFrame, recvFrame,
 * pingFrame), else undefined.
 */
function hotFrame(t: string, raw: Record<string, unknown>): ClientFrame | undefined {
  let n = 0;
  for (const k in raw) {
    if (k !== 't' && !(t === 'ack' ? k === 'ids' : t === 'recv' ? k === 'seq' : k === 'recv'))
      return undefined;
    n++;
  }
  if (t === 'ping') {
    if (n === 1) return { t: 'ping' };
    return isReceiptSeq(raw.recv) ? { t: 'ping', recv: raw.recv } : undefined;
  }
  if (n !== 2) return undefined;
  if (t === 'recv') return isReceiptSeq(raw.seq) ? { t: 'recv', seq: raw.seq } : undefined;
  if (t !== 'ack') return undefined;
  const ids = raw.ids;
  if (!Array.isArray(ids) || ids.length < 1 || ids.length > MAX_ACK_IDS) return undefined;
  for (const id of ids)
    if (typeof id !== 'string' || id.length < 1 || id.length > MESSAGE_ID_MAX) return undefined;
  return { t: 'ack', ids: ids as string[] };
}

/**
 * Parses one text frame from a device. Returns the frame or a one-line reason naming the
 * problem (bad JSON, unknown type, or the field that failed), which the gateway puts in the
 * close reason.
 */
export function parseClientFrame(
  text: string,
): { ok: true; frame: ClientFrame } | { ok: false; reason: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'bad JSON' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return { ok: false, reason: 'frame is not an object' };
  const t = (raw as { t?: unknown }).t;
  if (typeof t !== 'string' || !(CLIENT_FRAME_TYPES as readonly string[]).includes(t)) {
    return { ok: false, reason: `unknown frame type ${JSON.stringify(t)?.slice(0, 32)}` };
  }
  // The frames every connection sends all the time (acks, receipts, pings) are checked here without the
  // schema machinery; anything they do not pass goes to the schema, which names the problem.
  const fast = hotFrame(t, raw as Record<string, unknown>);
  if (fast) return { ok: true, frame: fast };
  const result = clientFrame.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'frame';
    return { ok: false, reason: `${t}: ${where}: ${issue?.message ?? 'invalid'}`.slice(0, 120) };
  }
  return { ok: true, frame: result.data };
}
