import net from 'node:net';

/**
 * A loopback port nothing listens on right now (for programs that take --port). `below`
 * keeps it under a bound, for servers that also listen on port + N (a Redis Cluster node's
 * bus listens on port + 10000).
 */
export async function freePort({ below = 65536 }: { below?: number } = {}): Promise<number> {
  for (;;) {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    if (port < below) return port;
  }
}
