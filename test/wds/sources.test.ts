/**
 * Shards from every kind of source, against real servers and processes: a local node HTTP server (dropping
 * connections, failing, redirecting), s3rver for S3, /bin/sh for pipe:. What a source delivers must be the
 * shard's exact bytes or a clear error; never a silently shortened shard.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { Sample } from '../../src/wds/types.js';
import { openShard } from '../../src/wds/shard-reader.js';
import { statShard } from '../../src/wds/source.js';
import { buildTar, makeSamples, readAll, sampleEntries, serve, tempDir, writeBytes, type ServedFile, type TestServer } from '../helpers/shards.js';
import { gzipSync } from 'node:zlib';

const t = tempDir();
afterAll(t.cleanup);

const N = 40;
let tar: Buffer;
let tarPath: string;
let clean: Sample[];
const fast = { http: { retries: 3, retryDelayMs: 5, timeoutMs: 5000 } };

beforeAll(async () => {
  tar = await buildTar(sampleEntries(makeSamples(N, { imageBytes: [2000, 6000] })));
  tarPath = writeBytes(t.path('clean.tar'), tar);
  clean = (await readAll(tarPath)).samples;
  expect(clean).toHaveLength(N);
});

function sameSamples(a: Sample[], b: Sample[]) {
  expect(a.map((s) => [s.key, s.row, s.offset, s.problem])).toEqual(b.map((s) => [s.key, s.row, s.offset, s.problem]));
  expect(a.map((s) => s.files)).toEqual(b.map((s) => s.files));
}

describe('http(s)', () => {
  let server: TestServer;
  const files: Record<string, ServedFile> = {};
  beforeAll(async () => {
    server = await serve(files);
  });
  afterAll(() => server.close());
  const at = (path: string, f: ServedFile) => {
    files[path] = f;
    return server.url + path;
  };

  it('streams a shard, with its size and ETag', async () => {
    const r = await readAll(at('/ok.tar', { body: tar, etag: '"v1"', ranges: true }), fast);
    expect(r.error).toBeUndefined();
    sameSamples(r.samples, clean);
    expect(r.info).toMatchObject({ size: tar.length, etag: '"v1"' });
  });

  it('resumes a dropped connection with a Range request pinned to the ETag', async () => {
    const drop = Math.floor(tar.length / 3) + 7; // mid-member, not on a block boundary
    const url = at('/drop.tar', { body: tar, etag: '"v1"', ranges: true, dropAfter: drop });
    const r = await readAll(url, fast);
    expect(r.error).toBeUndefined();
    sameSamples(r.samples, clean);
    const reqs = server.requests.filter((q) => q.path === '/drop.tar');
    expect(reqs).toHaveLength(2);
    expect(reqs[1]).toMatchObject({ range: `bytes=${drop}-`, ifRange: '"v1"' });
  });

  it('resumes again and again as long as bytes keep coming', async () => {
    const url = at('/flaky.tar', { body: tar, lastModified: 'Wed, 01 Jan 2025 00:00:00 GMT', ranges: true, dropAfter: 20_000, dropTimes: 4 });
    const r = await readAll(url, fast);
    expect(r.error).toBeUndefined();
    sameSamples(r.samples, clean);
    expect(server.requests.filter((q) => q.path === '/flaky.tar').length).toBe(5);
  });

  it('resumes a gzipped shard and a chunked (no Content-Length) answer', async () => {
    const gz = gzipSync(tar);
    const a = await readAll(at('/drop.tgz', { body: gz, etag: '"g"', ranges: true, dropAfter: Math.floor(gz.length / 2) }), fast);
    expect(a.error).toBeUndefined();
    sameSamples(a.samples, clean);
    const b = await readAll(at('/chunked.tar', { body: tar, etag: '"c"', ranges: true, chunked: true, dropAfter: 50_000 }), fast);
    expect(b.error).toBeUndefined();
    sameSamples(b.samples, clean);
  });

  it('without Range support: the samples before the drop, then E_SOURCE naming the byte', async () => {
    const drop = Math.floor(tar.length / 2) + 3;
    const url = at('/norange.tar', { body: tar, etag: '"v1"', ranges: false, dropAfter: drop });
    const r = await readAll(url, fast);
    expect(r.error).toMatchObject({ code: 'E_SOURCE', file: url });
    expect(r.error!.message).toContain(`dropped at byte ${drop} of ${tar.length}`);
    expect(r.error!.message).toContain('does not support Range');
    expect(r.samples.length).toBeGreaterThan(0);
    expect(r.samples.length).toBeLessThan(N);
    sameSamples(r.samples.slice(0, -1), clean.slice(0, r.samples.length - 1));
  });

  it('refuses to splice two versions of an object', async () => {
    let version = 1;
    const url = at('/changing.tar', { body: tar, etag: () => `"v${version++}"`, ranges: true, dropAfter: 30_000 });
    const r = await readAll(url, fast);
    expect(r.error).toMatchObject({ code: 'E_SOURCE' });
    expect(r.error!.message).toMatch(/changed while it was being read|does not support Range/);
  });

  it('does not resume without an ETag or Last-Modified to check', async () => {
    const url = at('/novalidator.tar', { body: tar, ranges: true, dropAfter: 30_000 });
    const r = await readAll(url, fast);
    expect(r.error).toMatchObject({ code: 'E_SOURCE', message: expect.stringContaining('no ETag or Last-Modified') });
  });

  it('retries 5xx answers, follows redirects', async () => {
    const a = await readAll(at('/busy.tar', { body: tar, failFirst: [503, 502] }), fast);
    expect(a.error).toBeUndefined();
    expect(a.samples).toHaveLength(N);
    at('/target.tar', { body: tar });
    const b = await readAll(at('/moved.tar', { body: tar, redirectTo: '/target.tar' }), fast);
    expect(b.error).toBeUndefined();
    expect(b.samples).toHaveLength(N);
  });

  it('a 404 fails at open, without retries', async () => {
    const before = server.requests.length;
    const err = await openShard(server.url + '/missing.tar', fast).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_SOURCE', file: server.url + '/missing.tar' });
    expect(err.message).toContain('HTTP 404');
    expect(err.hint).toContain('no shard at this URL');
    expect(server.requests.length - before).toBe(1);
  });

  it('gives up on 5xx after the retries', async () => {
    const url = at('/down.tar', { body: tar, failFirst: [500, 500, 500, 500, 500, 500] });
    const err = await openShard(url, fast).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_SOURCE', message: expect.stringContaining('HTTP 500') });
    expect(server.requests.filter((q) => q.path === '/down.tar')).toHaveLength(4);
  });

  it('stats a shard with one HEAD request (redirects followed, retried), the same facts a read records; GET where HEAD is refused', async () => {
    const url = at('/stat.tar', { body: tar, etag: '"s1"', lastModified: 'Tue, 03 Nov 2026 10:00:00 GMT', ranges: true });
    const read = await readAll(url, fast);
    const info = await statShard(url, fast);
    expect(info).toEqual(read.info);
    expect(info).toMatchObject({ size: tar.length, etag: '"s1"', mtimeMs: Date.parse('Tue, 03 Nov 2026 10:00:00 GMT') });
    expect(server.requests.filter((q) => q.path === '/stat.tar').map((q) => q.method)).toEqual(['GET', 'HEAD']);

    at('/moved.tar', { body: tar, redirectTo: '/stat.tar' });
    at('/flaky-stat.tar', { body: tar, etag: '"f"', failFirst: [503] });
    expect(await statShard(server.url + '/moved.tar', fast)).toMatchObject({ size: tar.length, etag: '"s1"' });
    expect(await statShard(server.url + '/flaky-stat.tar', fast)).toMatchObject({ size: tar.length, etag: '"f"' });
    expect(server.requests.filter((q) => q.path === '/flaky-stat.tar').map((q) => q.method)).toEqual(['HEAD', 'HEAD']);

    const noHead = at('/nohead.tar', { body: tar, etag: '"n"', noHead: true });
    expect(await statShard(noHead, fast)).toMatchObject({ size: tar.length, etag: '"n"' });
    expect(server.requests.filter((q) => q.path === '/nohead.tar').map((q) => q.method)).toEqual(['HEAD', 'GET']);

    const err = await statShard(server.url + '/missing.tar', fast).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_SOURCE', message: expect.stringContaining('HTTP 404') });
  });

  it('an unreachable host fails at open with E_SOURCE', async () => {
    const closed = await serve({});
    const url = closed.url + '/x.tar';
    await closed.close();
    const err = await openShard(url, { http: { retries: 1, retryDelayMs: 5 } }).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_SOURCE', file: url });
    expect(err.message).toMatch(/ECONNREFUSED/);
  });
});

describe('pipe:', () => {
  it('reads a command’s output when allowed', async () => {
    const r = await readAll(`pipe:cat '${tarPath}'`, { allowPipe: true });
    expect(r.error).toBeUndefined();
    sameSamples(r.samples, clean);
  });

  it('is refused without allowPipe', async () => {
    const err = await openShard(`pipe:cat '${tarPath}'`).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_USAGE' });
    expect(err.hint).toContain('--allow-pipe');
  });

  it('fails the shard when the command exits non-zero, quoting its stderr', async () => {
    const r = await readAll(`pipe:cat '${tarPath}'; echo "disk on fire" >&2; exit 3`, { allowPipe: true });
    expect(r.samples).toHaveLength(N);
    expect(r.error).toMatchObject({ code: 'E_SOURCE' });
    expect(r.error!.message).toContain('exited with status 3');
    expect(r.error!.message).toContain('disk on fire');
  });

  it('a command that does not exist: E_SOURCE, no samples', async () => {
    const r = await readAll('pipe:/no/such/command-xyz', { allowPipe: true });
    expect(r.samples).toHaveLength(0);
    expect(r.error).toMatchObject({ code: 'E_SOURCE', message: expect.stringContaining('exited with status 127') });
  });

  it('fails the shard when the command is killed, a termination signal after a grace moment (the job may be stopping)', async () => {
    const killed = await readAll(`pipe:cat '${tarPath}'; kill -KILL $$`, { allowPipe: true });
    expect(killed.samples).toHaveLength(N);
    expect(killed.error!.message).toContain('the command was killed by SIGKILL');
    const t0 = Date.now();
    const termed = await readAll(`pipe:cat '${tarPath}'; kill -TERM $$`, { allowPipe: true });
    expect(termed.samples).toHaveLength(N);
    expect(termed.error!.message).toContain('the command was killed by SIGTERM');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
  });

  it('stops the command when the reader stops early', async () => {
    const shard = await openShard(`pipe:cat '${tarPath}'; sleep 30`, { allowPipe: true });
    const started = Date.now();
    for await (const s of shard.samples) {
      if (s.row === 2) break;
    }
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('s3://', () => {
  let stop: () => Promise<void>;
  let s3: { endpoint: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  beforeAll(async () => {
    const { default: S3rver } = await import('s3rver');
    const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: t.path('s3'), configureBuckets: [{ name: 'pool', configs: [] }] });
    const addr = (await server.run()) as { port: number };
    stop = () => server.close();
    s3 = { endpoint: `http://127.0.0.1:${addr.port}`, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } };
    const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
    const client = new S3Client({ ...s3, region: 'us-east-1', forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' });
    await client.send(new PutObjectCommand({ Bucket: 'pool', Key: 'shards/000.tar', Body: tar }));
    await client.send(new PutObjectCommand({ Bucket: 'pool', Key: 'shards/sample.tgz', Body: readFileSync(new URL('../../../shared/fixtures/wds/sample.tgz', import.meta.url)) }));
  });
  afterAll(() => stop?.());

  it('reads an object with its size and ETag', async () => {
    const r = await readAll('s3://pool/shards/000.tar', { s3 });
    expect(r.error).toBeUndefined();
    sameSamples(r.samples, clean);
    expect(r.info).toMatchObject({ size: tar.length, etag: expect.stringMatching(/^"[0-9a-f]{32}"$/) });
    const gz = await readAll('s3://pool/shards/sample.tgz', { s3 });
    expect(gz.samples).toHaveLength(90);
    expect(gz.stats!.gzip).toBe(true);
  });

  it('stats an object with HeadObject: the facts a read records', async () => {
    const r = await readAll('s3://pool/shards/000.tar', { s3 });
    expect(await statShard('s3://pool/shards/000.tar', { s3 })).toEqual(r.info);
    const err = await statShard('s3://pool/shards/nope.tar', { s3, http: { retries: 0 } }).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_SOURCE', file: 's3://pool/shards/nope.tar' });
  });

  it('a missing key fails at open with E_SOURCE and a hint', async () => {
    const err = await openShard('s3://pool/shards/nope.tar', { s3 }).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_SOURCE', file: 's3://pool/shards/nope.tar' });
    expect(err.message).toContain('NoSuchKey');
    expect(err.hint).toContain('bucket and key');
  });
});
