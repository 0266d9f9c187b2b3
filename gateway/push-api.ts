import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { DEFAULT_TTL_SECONDS, MAX_PUSH_DATA_BYTES, pushPriority } from '../common/protocol/frames.js';
import { alias, collapseKey, deviceId } from '../common/protocol/ids.js';
import {
  IdempotencyConflictError,
  IdempotencyInProgressError,
  TooManyRecipientsError,
  parseTarget,
  type PushAcceptor,
  type PushTarget,
} from '../common/push/index.js';
import type { StorageHealth } from '../common/redis/availability.js';
import type { PgRedis } from '../common/redis/connection.js';
import type { RedisKeys } from '../common/redis/keys.js';
import { getMessageStatus } from '../common/redis/messages.js';
import { DeferredQueueFullError } from '../common/ratelimit/app-limit.js';
import { DeviceCapFullError } from '../common/ratelimit/device-cap.js';
import { isStorageUnavailable } from '../common/redis/availability.js';
import { TagExpressionError } from '../common/redis/tag-expression.js';
import type { GatewayMetrics } from './metrics.js';

const target = z.union([
  z.strictObject({ device: deviceId }),
  z.strictObject({ alias }),
  z.strictObject({ tag: z.string().min(1).max(1024) }),
  z.strictObject({ all: z.literal(true) }),
]);

/** Deepest nesting of objects and arrays in `data` (PROTOCOL.md section 9). */
export const MAX_PUSH_DATA_DEPTH = 32;

/**
 * Whether `value` nests at most `max` objects/arrays deep. Iterative on purpose: the body
 * parser accepts any depth that fits in 64 KB, and every recursive walk after it (zod's JSON
 * check, JSON.stringify, a device's parser, Redis' cjson with its limit of 1000) would overflow
 * its stack on a few thousand levels. This check runs first, so they only ever see bounded data.
 */
export function jsonDepthAtMost(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth + 1 > max) return false;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return true;
}

const pushData = z.unknown().superRefine((d, ctx) => {
  if (d === undefined) return void ctx.addIssue({ code: 'custom', message: 'required' });
  if (!jsonDepthAtMost(d, MAX_PUSH_DATA_DEPTH))
    return void ctx.addIssue({ code: 'custom', message: `nested deeper than ${MAX_PUSH_DATA_DEPTH} levels` });
  if (Buffer.byteLength(JSON.stringify(d)) > MAX_PUSH_DATA_BYTES)
    ctx.addIssue({ code: 'custom', message: `larger than ${MAX_PUSH_DATA_BYTES} bytes of JSON` });
});

export function pushBodySchema(maxTtlSeconds: number) {
  return z.strictObject({
    /** Exactly one of {device}, {alias}, {tag: expression}, {all: true}. */
    to: target,
    /** Any JSON value (the body parser only produces JSON), bounded in depth and size. */
    data: pushData,
    ttl: z.number().int().min(0).max(maxTtlSeconds).default(DEFAULT_TTL_SECONDS),
    priority: pushPriority.default('normal'),
    collapseKey: collapseKey.optional(),
  });
}

const idempotencyKey = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');

/** `application/json`, with or without parameters (`; charset=utf-8`). */
export const isJsonContentType = (header: string | undefined) =>
  header !== undefined && /^application\/json\s*(;|$)/i.test(header.trim());

function problem(reply: FastifyReply, status: number, error: string, message: string) {
  return reply.code(status).send({ error, message });
}

/**
 * The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers): the policy (rate per
 * 1 s window, and the burst), the messages that could go at once now, and the seconds until the
 * budget is whole again.
 */
function setRateLimitHeaders(
  reply: FastifyReply,
  r: { limit: number; remaining: number; resetSeconds: number; burst: number; policy?: string },
) {
  reply.header(
    'ratelimit-policy',
    `${r.limit};w=1;burst=${r.burst}${r.policy ? `;policy="${r.policy}"` : ''}`,
  );
  reply.header('ratelimit-limit', String(r.limit));
  reply.header('ratelimit-remaining', String(r.remaining));
  reply.header('ratelimit-reset', String(r.resetSeconds));
}

function secretsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The push API, authenticated per app with HTTP Basic `app:secret` (as JPush does with
 * appKey:masterSecret):
 *   POST /v1/apps/:app/push            body {to, data, ttl?, priority?, collapseKey?}
 *                                      header Idempotency-Key (optional)
 *                                      -> 202 {id, recipients, state} (200 {..., duplicate: true} on a repeat)
 *                                      state 'deferred' (with deferred, estimatedSendAt) when the
 *                                      app's RateLimitPolicy holds recipients back (its rate, or
 *                                      deviceCapped: their device's daily cap until the next UTC
 *                                      day); deviceCapRefused: recipients whose device already
 *                                      holds a day's allowance; RateLimit-* headers whenever a
 *                                      policy applies
 *                                      429 + Retry-After when the app's deferred queue is full
 *                                      (deferred_queue_full) or every recipient's daily cap
 *                                      refused it (device_cap_full, retry after 00:00 UTC)
 *   GET  /v1/apps/:app/messages/:id    -> 200 status
 * Errors: {error, message} with 400 (body; the message names the field), 401, 403, 404, 413,
 * 415, 422 (audience too large for one call).
 */
export function registerPushApi(
  app: FastifyInstance,
  deps: {
    redis: PgRedis;
    keys: RedisKeys;
    push: PushAcceptor;
    secretOf(app: string): string | undefined;
    metrics: GatewayMetrics;
    maxTtlSeconds: number;
    /** Storage health: the push is refused at once (503) while unhealthy and cut short if it turns so. */
    storage?: StorageHealth;
  },
) {
  const bodySchema = pushBodySchema(deps.maxTtlSeconds);

  const authenticate = (req: FastifyRequest<{ Params: { app: string } }>, reply: FastifyReply): boolean => {
    const header = req.headers.authorization ?? '';
    const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header);
    if (!m) {
      reply.header('www-authenticate', 'Basic realm="pushgate"');
      problem(reply, 401, 'unauthorized', 'Authorization: Basic base64(app:secret) required');
      return false;
    }
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    const user = i > 0 ? decoded.slice(0, i) : '';
    const secret = deps.secretOf(user);
    if (!secret || !secretsEqual(secret, decoded.slice(i + 1))) {
      problem(reply, 401, 'unauthorized', 'unknown app or wrong secret');
      return false;
    }
    if (user !== req.params.app) {
      problem(reply, 403, 'forbidden', `credentials of app '${user}' cannot act on app '${req.params.app}'`);
      return false;
    }
    return true;
  };

  app.addHook('onResponse', async (req, reply) => {
    if (req.url.startsWith('/v1/apps/')) deps.metrics.pushRequests.inc({ status: String(reply.statusCode) });
  });

  app.post<{ Params: { app: string } }>('/v1/apps/:app/push', async (req, reply) => {
    if (!authenticate(req, reply)) return reply;
    // fastify parses text/plain into a string by itself; the body must be JSON (PROTOCOL.md 9).
    if (!isJsonContentType(req.headers['content-type']))
      return problem(reply, 415, 'unsupported_media_type', 'Content-Type must be application/json');
    const key = req.headers['idempotency-key'];
    let idem: string | undefined;
    if (key !== undefined) {
      const k = idempotencyKey.safeParse(key);
      if (!k.success)
        return problem(reply, 400, 'bad_request', `Idempotency-Key: ${k.error.issues[0]?.message}`);
      idem = k.data;
    }
    const parsed = bodySchema.safeParse(req.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? issue.path.join('.') : 'body';
      return problem(reply, 400, 'bad_request', `${where}: ${issue?.message ?? 'invalid'}`);
    }
    const body = parsed.data;
    let to: PushTarget;
    try {
      to = parseTarget(body.to); // once, here: the tag expression travels as an AST from now on
    } catch (err) {
      if (err instanceof TagExpressionError)
        return problem(reply, 400, 'bad_request', `to.tag: ${err.message}`);
      throw err;
    }
    try {
      const accept = () =>
        deps.push.accept(
          req.params.app,
          {
            to,
            data: body.data,
            ttl: body.ttl,
            priority: body.priority,
            collapseKey: body.collapseKey,
          },
          idem,
        );
      const accepted = await (deps.storage ? deps.storage.guard(accept) : accept());
      const { rateLimit, ...answer } = accepted;
      if (rateLimit) setRateLimitHeaders(reply, rateLimit);
      return reply.code(accepted.duplicate ? 200 : 202).send(answer);
    } catch (err) {
      if (err instanceof DeferredQueueFullError) {
        reply.header('retry-after', String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))));
        return problem(reply, 429, 'deferred_queue_full', err.message);
      }
      if (err instanceof DeviceCapFullError) {
        reply.header('retry-after', String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))));
        return problem(reply, 429, 'device_cap_full', err.message);
      }
      if (err instanceof TooManyRecipientsError)
        return problem(reply, 422, 'too_many_recipients', err.message);
      if (err instanceof IdempotencyConflictError)
        return problem(reply, 422, 'idempotency_key_reused', err.message);
      if (err instanceof IdempotencyInProgressError) {
        reply.header('retry-after', '1');
        return problem(reply, 409, 'idempotency_in_progress', err.message);
      }
      // Storage unavailable (503): a downstream error for the app's adaptive throttling.
      if (isStorageUnavailable(err)) deps.push.downstreamFailed(req.params.app);
      throw err;
    }
  });

  app.get<{ Params: { app: string; id: string } }>('/v1/apps/:app/messages/:id', async (req, reply) => {
    if (!authenticate(req, reply)) return reply;
    const status =
      req.params.id.length <= 64 ? await getMessageStatus(deps.redis, deps.keys, req.params.id) : undefined;
    if (!status || status.app !== req.params.app)
      return problem(reply, 404, 'not_found', `no message '${req.params.id.slice(0, 64)}'`);
    return { ...status, target: JSON.parse(status.target) as unknown };
  });
}
