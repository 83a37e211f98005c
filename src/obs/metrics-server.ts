/**
 * The HTTP endpoint Prometheus scrapes: GET /metrics returns the text exposition of a registry
 * (a prom-client Registry or a TrainingMetrics, which merges the workers' snapshots); everything
 * else is 404 (405 for other methods on /metrics). Only the coordinator (rank 0) serves one.
 *
 * Port 0 here asks the OS for a free port (tests read it back from the result); the command-line
 * convention `--metrics-port 0` = disabled is the caller's: it simply does not call this.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Default of `--metrics-port` (documented in docs/metrics.md). */
export const DEFAULT_METRICS_PORT = 9464;

/** What the server exposes: prom-client's Registry and TrainingMetrics both fit. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string> | string;
}

export interface MetricsServerOptions {
  /** Address to bind (default 0.0.0.0, every interface; '127.0.0.1' keeps it local). */
  host?: string;
}

export interface MetricsServer {
  /** The bound port (the OS's choice when 0 was asked for). */
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

/**
 * Serves `registryProvider` (a source, or a function returning the current one, called per scrape)
 * on http://host:port/metrics. Resolves once listening; rejects when the port cannot be bound.
 */
export async function startMetricsServer(
  port: number,
  registryProvider: MetricsSource | (() => MetricsSource),
  opts: MetricsServerOptions = {},
): Promise<MetricsServer> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`metrics port must be an integer in 0..65535, got ${port}`);
  const host = opts.host ?? '0.0.0.0';
  const source = typeof registryProvider === 'function' ? registryProvider : () => registryProvider;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: metrics are on /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    try {
      const src = source();
      const body = await src.metrics();
      res.writeHead(200, { 'Content-Type': src.contentType, 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (e) {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`metrics error: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  };

  const server = createServer((req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // A scrape must never take the training process down.
  server.on('error', () => {});
  const bound = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    port: bound,
    host,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
