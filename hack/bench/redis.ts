import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { PgRedis } from '../../common/redis/connection.js';

const run = promisify(execFile);
const localRedis = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../local-redis');

/**
 * The Redis a benchmark measures: the one given (--redis-url), or its own, started by
 * `hack/local-redis up --name <name>-<pid>` (the one way every benchmark and test starts a Redis).
 */
export async function benchRedis(
  name: string,
  url?: string,
): Promise<{ url: string; own: boolean; down: () => Promise<void> }> {
  if (url) return { url, own: false, down: async () => {} };
  // One per run (the pid in the name): two runs of one benchmark at once (a CI run beside a
  // developer's) shared one name, and the first to finish stopped the other's Redis.
  name = `${name}-${process.pid}`;
  const { stdout } = await run(localRedis, ['up', '--name', name]);
  return {
    url: stdout.trim().split('\n').pop()!,
    own: true,
    down: async () => {
      await run(localRedis, ['down', '--name', name]).catch(() => {});
    },
  };
}

/** Bytes Redis uses now (INFO memory used_memory). */
export async function usedMemory(redis: PgRedis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 0);
}
