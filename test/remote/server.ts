/**
 * A real HTTP file server for the end-to-end tests, whose misbehaviour is chosen per request: `mimic score` asks
 * for each shard once to learn its size and ETag and again to read it, so a test that wants the read (not the
 * look-up) cut off names the request by its number.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServedShard {
  body: Buffer;
  etag: string;
  /** Answer `Range: bytes=N-` with 206 (guarded by If-Range); otherwise always the whole body with 200. */
  ranges: boolean;
  /** Cut the connection after this many body bytes on the requests (1-based, per path) for which `cutOn` is true. */
  cutAfter?: number;
  cutOn?: (requestNumber: number) => boolean;
}

export interface ShardServer {
  url: string;
  requests: { path: string; range?: string; ifRange?: string }[];
  close(): Promise<void>;
}

export async function serveShards(files: Record<string, ServedShard>): Promise<ShardServer> {
  const requests: ShardServer['requests'] = [];
  const counts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const range = req.headers.range;
    const ifRange = req.headers['if-range'] as string | undefined;
    requests.push({ path, range, ifRange });
    const f = files[path];
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    const n = (counts.get(path) ?? 0) + 1;
    counts.set(path, n);
    const headers: Record<string, string> = { etag: f.etag };
    let start = 0;
    let status = 200;
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    if (f.ranges) headers['accept-ranges'] = 'bytes';
    if (f.ranges && m && (!ifRange || ifRange === f.etag)) {
      start = Number(m[1]);
      status = 206;
      headers['content-range'] = `bytes ${start}-${f.body.length - 1}/${f.body.length}`;
    }
    const body = f.body.subarray(start);
    headers['content-length'] = String(body.length);
    res.writeHead(status, headers);
    if (f.cutAfter !== undefined && f.cutOn?.(n) && f.cutAfter < body.length) {
      // The bytes reach the client, then the connection is reset, as a dropped connection looks.
      res.write(body.subarray(0, f.cutAfter), () => setTimeout(() => req.socket.destroy(), 20));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
