/**
 * Shard-building helpers for tests: real tar bytes (tar-stream), real files in temporary folders, a real local
 * HTTP server. `buildTar` writes any entry, including the ones a careful writer refuses (links, traversal names,
 * repeated extensions), so that readers can be tested on what is found in the wild; `writeShard` goes through the
 * project's own ShardWriter.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { ShardWriter, type SampleFiles } from '../../src/wds/shard-writer.js';
import { openShard } from '../../src/wds/shard-reader.js';
import type { Sample, ShardReadOptions, ShardReadStats, ShardInfo } from '../../src/wds/types.js';

export interface RawEntry {
  name: string;
  data?: Buffer | string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  linkname?: string;
}

/** Tar bytes for `entries`, with fixed headers so that the bytes (and so every offset) are reproducible. */
export async function buildTar(entries: RawEntry[], opts: { gzip?: boolean } = {}): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    await new Promise<void>((resolve, reject) => {
      pack.entry(
        {
          name: e.name,
          type,
          linkname: e.linkname ?? '',
          size: type === 'file' ? data.length : 0,
          mode: type === 'directory' ? 0o755 : 0o644,
          mtime: new Date(0),
          uid: 0,
          gid: 0,
          uname: '',
          gname: '',
        },
        type === 'file' ? data : undefined,
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
  pack.finalize();
  await done;
  const tar = Buffer.concat(chunks);
  return opts.gzip ? gzipSync(tar) : tar;
}

/** Member entries for samples given as key → files, in order. */
export function sampleEntries(samples: Array<{ key: string; files: Record<string, Buffer | string> }>): RawEntry[] {
  return samples.flatMap((s) => Object.entries(s.files).map(([ext, data]) => ({ name: `${s.key}.${ext}`, data })));
}

export interface GeneratedSample {
  key: string;
  files: { jpg: Buffer; txt: string; json: string };
}

/**
 * Image–caption samples shaped like img2dataset's: a `jpg` of random bytes (10–30 KB unless set), a `txt`
 * caption and a `json` with a 32-hex uid. Deterministic for a given seed.
 */
export function makeSamples(n: number, opts: { seed?: number; imageBytes?: [number, number]; keyPrefix?: string } = {}): GeneratedSample[] {
  const [lo, hi] = opts.imageBytes ?? [10_000, 30_000];
  const seed = opts.seed ?? 1;
  const out: GeneratedSample[] = [];
  for (let i = 0; i < n; i++) {
    const key = `${opts.keyPrefix ?? ''}${String(i).padStart(9, '0')}`;
    const h = createHash('sha256').update(`${seed}:${i}`).digest();
    const size = lo + (h.readUInt32LE(0) % Math.max(1, hi - lo + 1));
    out.push({
      key,
      files: {
        jpg: pseudoRandomBytes(size, h),
        txt: `a photo of thing number ${i} (seed ${seed})`,
        json: JSON.stringify({ uid: createHash('md5').update(`${seed}:${i}`).digest('hex'), key, caption: `thing ${i}` }),
      },
    });
  }
  return out;
}

/** Cheap reproducible filler bytes (a hash chain would be too slow for a gigabyte). */
export function pseudoRandomBytes(n: number, seed: Buffer): Buffer {
  const out = Buffer.allocUnsafe(n);
  const block = createHash('sha512').update(seed).digest();
  let x = block.readUInt32LE(0) | 1;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeInt32LE(x | 0, i);
  }
  for (; i < n; i++) out[i] = block[i % block.length];
  return out;
}

/** Write samples through the project's ShardWriter. */
export async function writeShard(path: string, samples: Array<{ key: string; files: SampleFiles }>, opts: { gzip?: boolean } = {}): Promise<string> {
  const w = new ShardWriter(path, opts);
  for (const s of samples) await w.add(s.key, s.files);
  await w.close();
  return path;
}

/** A temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = 'mimic-wds-'): { dir: string; path: (...p: string[]) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (...p) => join(dir, ...p), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Write bytes to a file, creating its folder. */
export function writeBytes(path: string, data: Buffer): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
  return path;
}

export interface ReadResult {
  info?: ShardInfo;
  samples: Sample[];
  stats?: ShardReadStats;
  /** The error that ended reading (at open or during iteration), if any. */
  error?: Error & { code?: string; file?: string; hint?: string };
}

/** Read a whole shard, keeping the samples and the error that ended it instead of throwing. */
export async function readAll(url: string, opts: ShardReadOptions = {}): Promise<ReadResult> {
  const result: ReadResult = { samples: [] };
  try {
    const shard = await openShard(url, opts);
    result.info = shard.info;
    result.stats = shard.stats;
    for await (const s of shard.samples) result.samples.push(s);
  } catch (e) {
    result.error = e as ReadResult['error'];
  }
  return result;
}

/** What a local HTTP server does for one path. */
export interface ServedFile {
  body: Buffer;
  /** Sent as ETag; a function lets a test change the object between requests. */
  etag?: string | (() => string);
  lastModified?: string;
  /** Honour Range requests (206); otherwise always answer 200 with the whole body. */
  ranges?: boolean;
  /** Cut the connection after this many body bytes, on the first `dropTimes` answers (default 1)... */
  dropAfter?: number;
  dropTimes?: number;
  /** ...or on the answers (1-based, per path, HEAD included) for which this is true. */
  dropOn?: (answer: number) => boolean;
  /** Answer these statuses first, one per request, before serving normally (e.g. [503, 503]). */
  failFirst?: number[];
  /** Redirect to another path. */
  redirectTo?: string;
  /** Send no Content-Length (chunked). */
  chunked?: boolean;
  /** Answer HEAD requests with 405 (as some object stores and CDNs do). */
  noHead?: boolean;
}

export interface TestServer {
  url: string;
  /** Every request: method, path and Range header. */
  requests: Array<{ method: string; path: string; range?: string; ifRange?: string }>;
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1 with the behaviours above. */
export async function serve(files: Record<string, ServedFile>): Promise<TestServer> {
  const requests: TestServer['requests'] = [];
  const served = new Map<string, number>();
  const failed = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const range = req.headers.range;
    const ifRange = req.headers['if-range'] as string | undefined;
    requests.push({ method: req.method ?? 'GET', path, range, ifRange });
    const f = files[path];
    if (!f) {
      res.writeHead(404).end('not found');
      return;
    }
    if (f.noHead && req.method === 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    const fails = failed.get(path) ?? 0;
    if (f.failFirst && fails < f.failFirst.length) {
      failed.set(path, fails + 1);
      res.writeHead(f.failFirst[fails]).end('try again');
      return;
    }
    if (f.redirectTo) {
      res.writeHead(302, { location: f.redirectTo }).end();
      return;
    }
    const etag = typeof f.etag === 'function' ? f.etag() : f.etag;
    const headers: Record<string, string> = {};
    if (etag) headers.etag = etag;
    if (f.lastModified) headers['last-modified'] = f.lastModified;
    if (f.ranges) headers['accept-ranges'] = 'bytes';
    let start = 0;
    let status = 200;
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    if (f.ranges && m && (!ifRange || ifRange === etag || ifRange === f.lastModified)) {
      start = Number(m[1]);
      status = 206;
      headers['content-range'] = `bytes ${start}-${f.body.length - 1}/${f.body.length}`;
    }
    const body = f.body.subarray(start);
    if (!f.chunked) headers['content-length'] = String(body.length);
    res.writeHead(status, headers);
    const n = served.get(path) ?? 0;
    served.set(path, n + 1);
    const drop = f.dropOn ? f.dropOn(n + 1) : n < (f.dropTimes ?? 1);
    if (f.dropAfter !== undefined && drop && f.dropAfter < body.length) {
      res.write(body.subarray(0, f.dropAfter), () => {
        // Let the bytes reach the client before the reset, as a real dropped connection would.
        setTimeout(() => req.socket.destroy(), 20);
      });
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

export function randomName(): string {
  return randomBytes(4).toString('hex');
}
