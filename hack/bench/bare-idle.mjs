/* global process, console */
// bench:gateway's bare ws server as plain JavaScript, for the as-shipped idle RSS row only:
// the gateway runs compiled (node, no tsx) as the image runs it, and its baseline the same way.
// Same server settings as the bench's bare server (hack/bench/gateway.ts, runBareServer).
import http from 'node:http';
import { WebSocketServer } from 'ws';

const server = http.createServer();
const wss = new WebSocketServer({
  server,
  perMessageDeflate: false,
  maxPayload: Number(process.argv[2]),
  clientTracking: true,
});
wss.on('connection', (ws) => ws.on('error', () => {}));
process.on('message', (m) => {
  if (m.type !== 'pushgate:mem') return;
  globalThis.gc?.();
  globalThis.gc?.();
  const u = process.memoryUsage();
  process.send?.({ type: 'pushgate:mem', rss: u.rss, heapUsed: u.heapUsed, external: u.external });
});
server.listen(0, '127.0.0.1', () => console.log(`bare ws listening ${server.address().port}`));
