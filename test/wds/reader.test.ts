import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { log, setLogger } from '../../src/log.js';
import { openShard } from '../../src/wds/shard-reader.js';
import { buildTar, makeSamples, readAll, sampleEntries, tempDir, writeBytes } from '../helpers/shards.js';

const t = tempDir();
afterAll(t.cleanup);
let path: string;
const N = 200;

beforeAll(async () => {
  path = writeBytes(t.path('s.tar'), await buildTar(sampleEntries(makeSamples(N, { imageBytes: [15_000, 25_000] }))));
});

describe('openShard', () => {
  it('reads ahead of a slow consumer by a bounded amount', async () => {
    const shard = await openShard(path, { queueSamples: 4, readChunkBytes: 64 * 1024 });
    const it = shard.samples[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value.row).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    // 4 queued samples (~25 KB each), the sample being built, and a few 64 KB chunks in flight: far from 4 MB.
    expect(shard.stats.tarBytes).toBeLessThan(600 * 1024);
    let n = 1;
    for (let r = await it.next(); !r.done; r = await it.next()) n++;
    expect(n).toBe(N);
    expect(shard.stats.tarBytes).toBeGreaterThan(4_000_000);
  });

  it('stops with the AbortSignal', async () => {
    const ac = new AbortController();
    const shard = await openShard(path, { signal: ac.signal, queueSamples: 2, readChunkBytes: 16 * 1024 });
    let n = 0;
    const err = await (async () => {
      for await (const s of shard.samples) {
        n++;
        if (s.row === 5) ac.abort();
      }
    })().catch((e) => e);
    expect(err?.name).toBe('AbortError');
    expect(n).toBeLessThan(N);
  });

  it('can be left early, and closed without being read', async () => {
    const shard = await openShard(path);
    for await (const s of shard.samples) if (s.row === 3) break;
    const unread = await openShard(path);
    unread.close();
    // A fresh read still sees everything.
    expect((await readAll(path)).samples).toHaveLength(N);
  });

  it('keeps only the wanted bytes but lists every member', async () => {
    const r = await readAll(path, { wantExtensions: () => false });
    expect(r.samples).toHaveLength(N);
    for (const s of r.samples) {
      expect(s.files.size).toBe(0);
      expect(s.members.map((m) => m.ext)).toEqual(['jpg', 'txt', 'json']);
    }
  });

  it('reads concatenated tars on past the first end-of-archive blocks, and says so', async () => {
    const lines: string[] = [];
    const previous = log();
    setLogger(pino({ level: 'warn' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) })));
    let r;
    try {
      const a = await buildTar([{ name: 'a.txt', data: 'a' }]);
      const b = await buildTar([{ name: 'b.txt', data: 'b' }]);
      r = await readAll(writeBytes(t.path('cat.tar'), Buffer.concat([a, b])));
    } finally {
      setLogger(previous);
    }
    expect(r.error).toBeUndefined();
    expect(r.samples.map((s) => s.key)).toEqual(['a', 'b']);
    expect(r.samples[1].offset).toBe(2048); // a: header + data block, then tar-stream's two end blocks
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ offset: 1024, next: 2048, msg: expect.stringContaining('end-of-archive') });
  });

  it('warns through the logger when a key comes back later in the shard', async () => {
    const lines: string[] = [];
    const previous = log();
    setLogger(pino({ level: 'warn' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) })));
    try {
      const p = writeBytes(
        t.path('again.tar'),
        await buildTar([
          { name: 'k1.txt', data: 'a' },
          { name: 'k2.txt', data: 'b' },
          { name: 'k1.txt', data: 'c' },
        ]),
      );
      const r = await readAll(p);
      expect(r.samples.map((s) => [s.row, s.key])).toEqual([
        [0, 'k1'],
        [1, 'k2'],
        [2, 'k1'],
      ]);
    } finally {
      setLogger(previous);
    }
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ level: 40, key: 'k1', row: 2, firstRow: 0, msg: expect.stringContaining('reappears') });
  });
});
