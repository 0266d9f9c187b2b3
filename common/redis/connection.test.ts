import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedis, createSubscriber } from './connection.js';

const url = 'rediss://pg-user:s%3Acret@redis-0.example:7000/0';
const lazy = { options: { lazyConnect: true } };

describe('the Redis connection factory', () => {
  it.each([
    ['createRedis', createRedis],
    ['createSubscriber', createSubscriber],
  ])('%s on a cluster passes the seed URL credentials and TLS to every node', async (_name, create) => {
    const c = create(url, { cluster: true, name: 'n', ...lazy });
    expect(c).toBeInstanceOf(Cluster);
    const o = (c as Cluster).options;
    expect(o.redisOptions).toMatchObject({ username: 'pg-user', password: 's:cret', connectionName: 'n' });
    expect(o.redisOptions?.tls).toBeDefined();
    expect((c as unknown as { startupNodes: unknown }).startupNodes).toEqual([
      { host: 'redis-0.example', port: 7000 },
    ]);
    c.disconnect();
  });

  it.each([
    ['createRedis', createRedis],
    ['createSubscriber', createSubscriber],
  ])('%s on one server reads everything from the URL', async (_name, create) => {
    const c = create(url, lazy);
    expect(c).toBeInstanceOf(Redis);
    expect((c as Redis).options).toMatchObject({
      host: 'redis-0.example',
      port: 7000,
      username: 'pg-user',
      password: 's:cret',
    });
    c.disconnect();
  });
});
