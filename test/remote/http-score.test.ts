/**
 * `mimic score` over HTTP, end to end, against a real HTTP server started here (node's http module serving the
 * demo pool's shards): a connection dropped in the middle of a shard is resumed by a Range request and the
 * scores equal those of the local files; a server that drops the connection and cannot resume (no Range support)
 * gets the shard reported failed — in the summary, the exit status, the score file's metadata and `mimic
 * status` — never written as if it were complete, and a rerun once the server behaves redoes that shard alone.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemoDataset } from '../../src/demo/index.js';
import { META } from '../../src/scores/schema.js';
import { REPO, tinyBundle } from '../helpers/bundles.js';
import { serve, tempDir, type ServedFile, type TestServer } from '../helpers/shards.js';

const exec = promisify(execFile);
const MIMIC = join(REPO, 'bin', 'mimic');

async function mimic(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(MIMIC, args, { env: { ...process.env, MIMIC_LOG_LEVEL: 'warn' }, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

function rows(path: string): { metadata: Record<string, string>; rows: unknown[] } {
  const table = tableFromIPC(readFileSync(path));
  return { metadata: Object.fromEntries(table.schema.metadata), rows: table.toArray().map((r) => (r as { toJSON(): unknown }).toJSON()) };
}

describe('mimic score on http:// shards', () => {
  const t = tempDir('mimic-http-');
  let shards: string[];
  let args: string[];
  let local: string;
  const servers: TestServer[] = [];

  beforeAll(async () => {
    const reference = await tinyBundle({ seed: 1 });
    const proxy = await tinyBundle({ from: reference, perturb: 0.05, seed: 2 });
    const demo = await buildDemoDataset({ out: t.path('demo'), limit: 24, samplesPerShard: 8, seed: 5 });
    shards = demo.poolShards.map((s) => s.slice(s.lastIndexOf('/') + 1)).sort();
    expect(shards.length).toBeGreaterThanOrEqual(3);
    args = ['--proxy', `p=${proxy}`, '--reference', reference, '--batch-size', '4', '--device', 'cpu', '--threads', '1'];
    local = t.path('local');
    const r = await mimic(['score', join(demo.poolDir, `pool-{${num(shards[0]!)}..${num(shards.at(-1)!)}}.tar`), ...args, '--out', local]);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    t.cleanup();
  });

  const num = (f: string) => /^pool-(\d+)\.tar$/.exec(f)![1]!;
  const files = (opts: (name: string) => Omit<ServedFile, 'body' | 'etag'>): Record<string, ServedFile> =>
    Object.fromEntries(shards.map((name, i) => [`/pool/${name}`, { body: readFileSync(t.path('demo', 'pool', name)), etag: `"v1-${i}"`, ...opts(name) }]));
  const spec = (server: TestServer) => `${server.url}/pool/pool-{${num(shards[0]!)}..${num(shards.at(-1)!)}}.tar`;

  it('resumes a shard whose connection dropped half way, and scores it as from the local file', async () => {
    const cut = shards[1]!;
    const size = statSync(t.path('demo', 'pool', cut)).size;
    // Request 1 of each shard is the look-up of its size and ETag (a HEAD); request 2 is the read, cut half way.
    const server = await serve(files((name) => ({ ranges: true, ...(name === cut ? { dropAfter: Math.floor(size / 2), dropOn: (n) => n === 2 } : {}) })));
    servers.push(server);
    const out = t.path('http-resumed');
    const r = await mimic(['score', spec(server), ...args, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`scored ${shards.length} shard(s)`);
    // After the cut, the shard was asked for the rest only, guarded by the ETag.
    const asked = server.requests.filter((q) => q.path === `/pool/${cut}`);
    expect(asked.map((q) => q.range)).toEqual([undefined, undefined, `bytes=${Math.floor(size / 2)}-`]);
    expect(asked[2]!.ifRange).toBe('"v1-1"');
    for (const [i, name] of shards.entries()) {
      const remote = rows(join(out, 'p', `${name}.arrow`));
      const mine = rows(join(local, 'p', `${name}.arrow`));
      expect(remote.rows).toEqual(mine.rows);
      expect(remote.rows.length).toBeGreaterThan(0);
      expect(remote.metadata[META.shardStatus]).toBe('ok');
      expect(remote.metadata[META.inputEtag]).toBe(`"v1-${i}"`);
      expect(remote.metadata[META.inputSize]).toBe(mine.metadata[META.inputSize]);
    }
    expect((await mimic(['status', out])).code).toBe(0);
  });

  it('reports a shard that cannot be resumed as failed, and a rerun redoes only that shard', async () => {
    const cut = shards[2]!;
    const size = statSync(t.path('demo', 'pool', cut)).size;
    // No Range support: after a drop the only way on would be to start over, which the reader refuses to splice.
    const served = files((name) => (name === cut ? { ranges: false, dropAfter: Math.floor(size * 0.6), dropOn: (n) => n >= 2 } : { ranges: false }));
    const server = await serve(served);
    servers.push(server);
    const out = t.path('http-failed');
    const r = await mimic(['score', spec(server), ...args, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${shards.length - 1 + 1} shard(s) of ${shards.length}`);
    expect(r.stdout).toMatch(new RegExp(`failed: ${server.url}/pool/${cut.replace('.', '\\.')}: .*dropped at byte \\d+ of ${size} and could not be resumed: the server does not support Range requests`));

    // The shard's file holds the rows read before the cut, and says it is incomplete.
    const partial = rows(join(out, 'p', `${cut}.arrow`));
    const full = rows(join(local, 'p', `${cut}.arrow`));
    expect(partial.metadata[META.shardStatus]).toBe('failed');
    expect(partial.metadata[META.shardError]).toContain('could not be resumed');
    expect(partial.rows.length).toBeLessThan(full.rows.length);
    const status = await mimic(['status', out]);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(new RegExp(`failed\\s+${cut.replace('.', '\\.')} \\(worker 0\\): .*could not be resumed`));

    // The server is fixed: only the failed shard is fetched and scored again.
    served[`/pool/${cut}`]!.dropAfter = undefined;
    const before = server.requests.length;
    const again = await mimic(['score', spec(server), ...args, '--out', out]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`scored 1 shard(s) of ${shards.length} (worker 0 of 1; ${shards.length - 1} already done)`);
    // Every shard is looked up (is its input unchanged?), only the failed one is read again.
    const asked = server.requests.slice(before).map((q) => q.path);
    expect(asked.filter((p) => p === `/pool/${cut}`)).toHaveLength(2);
    for (const name of shards.filter((s) => s !== cut)) expect(asked.filter((p) => p === `/pool/${name}`), name).toHaveLength(1);
    expect(rows(join(out, 'p', `${cut}.arrow`)).rows).toEqual(full.rows);
    expect((await mimic(['status', out])).code).toBe(0);
    expect(readdirSync(join(out, 'p')).sort()).toEqual(shards.map((s) => `${s}.arrow`).sort());
  });
});
