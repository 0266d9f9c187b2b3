import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface ProbeServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** Liveness: false only when the process is wedged and a restart would help. */
  healthy(): boolean;
  /** Readiness: caches synced (a standby replica is ready too: it is warm and waiting). */
  ready(): boolean;
}

/**
 * /healthz, /readyz and /metrics on one small HTTP server (node:http: three routes need no
 * framework), for the programs without a fastify server of their own: the operator and the
 * campaign dispatcher.
 */
export class ProbeServer {
  private server: http.Server | undefined;

  constructor(private readonly o: ProbeServerOptions) {}

  async listen(): Promise<number> {
    const server = http.createServer((req, res) => {
      const url = (req.url ?? '/').split('?')[0];
      if (url === '/healthz' || url === '/livez') return this.probe(res, this.o.healthy());
      if (url === '/readyz') return this.probe(res, this.o.ready());
      if (url === '/metrics') {
        this.o.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.o.registry.contentType });
            res.end(text);
          },
          (err: unknown) => {
            res.writeHead(500).end(String(err));
          },
        );
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    });
    server.keepAliveTimeout = 5_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.host, () => resolve());
    });
    return (server.address() as AddressInfo).port;
  }

  private probe(res: http.ServerResponse, ok: boolean): void {
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ok\n');
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}
