import { parsePushGateway } from '../../api/index.js';
import type { Logger } from '../../../common/logger.js';
import { createRedis, type PgRedis } from '../../../common/redis/connection.js';
import { redisKeys, type RedisKeys } from '../../../common/redis/keys.js';
import type { Informer } from '../../runtime/informer.js';
import { isNotFound, type KubeClient, type KubeObject } from '../../runtime/kube.js';
import { Resources } from '../../runtime/resources.js';

/** Why a PushGateway's Redis cannot be reached from its spec (a condition's reason). */
export type GatewayRedisReason = 'GatewayNotFound' | 'InvalidGateway' | 'RedisSecretMissing';

/**
 * The Redis of a PushGateway could not be looked up. Transient on purpose: the gateway or its
 * Secret may appear later, and their callers retry with backoff and say why in status.
 */
export class GatewayRedisError extends Error {
  override name = 'GatewayRedisError';
  constructor(
    readonly reason: GatewayRedisReason,
    message: string,
  ) {
    super(message);
  }
}

/** A PushGateway's Redis as its own programs see it: the connection and its key schema. */
export interface GatewayRedisHandle {
  redis: PgRedis;
  /** Keys under the gateway's spec.redis.keyPrefix (what its gateways and dispatchers use). */
  keys: RedisKeys;
}

/**
 * The one place the operator finds a PushGateway's Redis: the gateway from the cache, the
 * URL from the Secret its spec.redis names (same namespace), cluster mode and key prefix from
 * spec.redis (the same values the builders pass its gateways and dispatcher), one connection
 * per URL and mode shared by every controller that publishes into it (RateLimitPolicy limits,
 * TagCampaign plans). Commands fail fast (3 s) rather than queue while Redis is away, so a
 * reconcile never hangs on it.
 */
export class GatewayRedis {
  private readonly byUrl = new Map<string, PgRedis>();
  private closed = false;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  private connection(url: string, cluster: boolean): PgRedis {
    // A late caller (a sweep or reconcile still running at shutdown) must not open a connection
    // nobody will close: it would keep the process from exiting.
    if (this.closed) throw new Error('the operator is shutting down');
    const id = `${cluster ? 'cluster' : 'single'} ${url}`;
    let r = this.byUrl.get(id);
    if (!r) {
      r = createRedis(url, {
        name: 'operator',
        cluster,
        options: { maxRetriesPerRequest: 1, connectTimeout: 3000, commandTimeout: 3000 },
      });
      r.on('error', (err: Error) => this.log.debug({ err: err.message }, 'gateway redis error'));
      this.byUrl.set(id, r);
    }
    return r;
  }

  /** The Redis of the PushGateway `namespace/name` (from `gateways`, the shared PushGateway cache). */
  async of(gateways: Informer, gatewayKey: string): Promise<GatewayRedisHandle> {
    const raw = gateways.get(gatewayKey);
    if (!raw) throw new GatewayRedisError('GatewayNotFound', `PushGateway ${gatewayKey} does not exist`);
    let gw;
    try {
      gw = parsePushGateway(raw);
    } catch (err) {
      throw new GatewayRedisError(
        'InvalidGateway',
        `PushGateway ${gatewayKey} is invalid: ${(err as Error).message}`,
      );
    }
    const { secretName, key } = gw.spec.redis;
    let secret: KubeObject & { data?: Record<string, string> };
    try {
      secret = await this.client.get(Resources.Secret, gw.metadata.namespace, secretName);
    } catch (err) {
      if (isNotFound(err))
        throw new GatewayRedisError(
          'RedisSecretMissing',
          `Secret ${secretName} (spec.redis of PushGateway ${gatewayKey}) does not exist`,
        );
      throw err;
    }
    const b64 = secret.data?.[key];
    if (!b64)
      throw new GatewayRedisError(
        'RedisSecretMissing',
        `Secret ${secretName} (spec.redis of PushGateway ${gatewayKey}) has no key ${key}`,
      );
    const { cluster, keyPrefix } = gw.spec.redis;
    return {
      redis: this.connection(Buffer.from(b64, 'base64').toString('utf8').trim(), cluster),
      keys: redisKeys(keyPrefix),
    };
  }

  close(): void {
    this.closed = true;
    for (const r of this.byUrl.values()) r.disconnect();
    this.byUrl.clear();
  }
}
