/**
 * `mimic reshard` end to end on the demo pool (real emoji images, src/demo): scored with tiny bundles, filtered
 * ("mimic_visual >= p50"), then resharded from every kind of selection the filter writes — DataComp .npy, uid
 * text, key text, Arrow table, Parquet table. Each output is checked with `mimic inspect` and sample by sample
 * against the source shards: exactly the kept samples, in source order, every member's bytes equal.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemoDataset } from '../../src/demo/index.js';
import { tinyBundle } from '../helpers/bundles.js';
import { tempDir } from '../helpers/shards.js';
import { folderHashes, mimic, outputShards, readSamples, type ReadSample } from './helpers.js';

describe('mimic reshard of the filtered demo pool', () => {
  const t = tempDir('mimic-reshard-demo-');
  const run = t.path('scores');
  const sel = (f: string) => t.path('sel', f);
  let source: ReadSample[];
  let keptUids: string[];

  beforeAll(async () => {
    const reference = await tinyBundle({ seed: 1 });
    const proxy = await tinyBundle({ from: reference, perturb: 0.05, seed: 2 });
    const demo = await buildDemoDataset({ out: t.path('demo'), limit: 40, samplesPerShard: 7, seed: 6 });
    const shards = [...demo.poolShards].sort();
    const num = (p: string) => /pool-(\d+)\.tar$/.exec(p)![1]!;
    const spec = join(demo.poolDir, `pool-{${num(shards[0]!)}..${num(shards.at(-1)!)}}.tar`);
    const scored = await mimic(['score', spec, '--proxy', `p=${proxy}`, '--reference', reference, '--out', run, '--batch-size', '4', '--device', 'cpu', '--threads', '1']);
    expect(scored.code, scored.stderr).toBe(0);
    const rule = ['--keep', 'mimic_visual >= p50'];
    for (const outputs of [
      ['--npy', sel('kept.npy'), '--uids', sel('kept.txt'), '--keys', sel('keys.txt'), '--table', sel('kept.arrow')],
      ['--table', sel('kept.parquet')],
    ]) {
      const f = await mimic(['filter', run, ...rule, ...outputs]);
      expect(f.code, f.stderr).toBe(0);
    }
    source = await readSamples(shards);
    keptUids = readFileSync(sel('kept.txt'), 'utf8').split('\n').filter(Boolean);
    // A real selection: some rows kept, some not.
    expect(keptUids.length).toBeGreaterThan(5);
    expect(keptUids.length).toBeLessThan(source.length);
  });
  afterAll(() => t.cleanup());

  const selections = [
    ['kept.npy', ['--run', run]],
    ['kept.txt', ['--run', run]],
    ['keys.txt', ['--run', run, '--id-kind', 'key']],
    ['kept.arrow', ['--run', run]],
    ['kept.parquet', ['--run', run]],
  ] as const;

  it.each(selections)('%s: exactly the kept samples, byte for byte, in source order', async (file, args) => {
    const out = t.path(`out-${file}`);
    const r = await mimic(['reshard', sel(file), ...args, '--out', out, '--shard-size', '4']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`wrote ${keptUids.length} sample(s) in ${Math.ceil(keptUids.length / 4)} shard(s)`);

    const shards = outputShards(out);
    expect(shards.map((s) => s.slice(s.lastIndexOf('/') + 1))).toEqual(shards.map((_, i) => `${String(i).padStart(8, '0')}.tar`));
    const inspect = await mimic(['inspect', '--json', ...shards]);
    expect(inspect.code, inspect.stdout).toBe(0);
    const report = JSON.parse(inspect.stdout) as { total: { samples: number; problems: Record<string, number> }; shards: { samples: number; status: string }[] };
    expect(report.total.samples).toBe(keptUids.length);
    expect(report.shards.map((s) => s.samples)).toEqual(shards.map((_, i) => Math.min(4, keptUids.length - 4 * i)));
    expect(report.shards.every((s) => s.status === 'ok')).toBe(true);

    const written = await readSamples(shards);
    const kept = new Set(keptUids);
    const expected = source.filter((s) => s.uid !== null && kept.has(s.uid));
    expect(written.map((w) => w.key)).toEqual(expected.map((s) => `${s.uid}-0`));
    written.forEach((w, i) => {
      expect(w.members.map((m) => m.ext)).toEqual(expected[i]!.members.map((m) => m.ext));
      w.members.forEach((m, k) => expect(m.bytes.equals(expected[i]!.members[k]!.bytes), `${w.key}.${m.ext}`).toBe(true));
    });

    const sizes = JSON.parse(readFileSync(join(out, 'sizes.json'), 'utf8')) as Record<string, number>;
    expect(Object.values(sizes).reduce((a, b) => a + b, 0)).toBe(keptUids.length);
    const stats = JSON.parse(readFileSync(join(out, '00000000_stats.json'), 'utf8')) as { successes: number; sources: { shard: string }[] };
    expect(stats.successes).toBe(4);
    expect(stats.sources[0]!.shard).toMatch(/^pool-\d+\.tar$/);
  });

  it('every kind of selection gives the same shards, byte for byte', () => {
    const tars = selections.map(([file]) => folderHashes(t.path(`out-${file}`), (f) => f.endsWith('.tar') || f === 'sizes.json'));
    for (const h of tars.slice(1)) expect(h).toEqual(tars[0]);
  });

  it('--key-format source keeps the source keys: the members are the source members, names and bytes', async () => {
    const out = t.path('out-source-keys');
    const r = await mimic(['reshard', sel('kept.npy'), '--run', run, '--out', out, '--key-format', 'source']);
    expect(r.code, r.stderr).toBe(0);
    const written = await readSamples(outputShards(out));
    const kept = new Set(keptUids);
    const expected = source.filter((s) => s.uid !== null && kept.has(s.uid));
    expect(written.map((w) => [w.key, w.members])).toEqual(expected.map((s) => [s.key, s.members]));
  });
});
