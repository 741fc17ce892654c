/**
 * Real shards written by other projects (webdataset's and NeMo-Curator's test data), and `--uids` subsets as a
 * text file and as a DataComp .npy (written here by numpy): listed samples are scored, the others recorded as
 * `skipped`, and the run's identity depends on the set of uids, not on the file's format or order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scorePool, readUidFile, UidSet } from '../../src/pipeline/index.js';
import { PYTHON } from '../helpers/bundles.js';
import { buildTar, tempDir, writeBytes } from '../helpers/shards.js';
import { bundles, entriesOf, FIXTURES, goodSamples, readScores, uidOf } from './helpers.js';

const t = tempDir('mimic-score-inputs-');
afterAll(t.cleanup);
let refs: Awaited<ReturnType<typeof bundles>>;

beforeAll(async () => {
  refs = await bundles();
}, 300_000);

describe('real shards from other projects', () => {
  it('nemo-00000.tar (a photo, caption and json), sample.tgz (png + cls, no captions), compressed.tar (no images)', async () => {
    const out = t.path('fixtures');
    const s = await scorePool({
      shards: [join(FIXTURES, '{nemo-00000.tar,sample.tgz,compressed.tar}')],
      proxies: [`p=${refs.proxy}`],
      reference: refs.reference,
      out,
      batchSize: 8,
      device: 'cpu',
      referenceClipScore: true,
    });
    expect(s.shards).toMatchObject({ run: 3, scored: 3, failed: 0 });
    expect(s.statuses).toEqual({ ok: 1, no_caption: 90, no_image: 3 });

    const nemo = readScores(join(out, 'p/nemo-00000.tar.arrow'));
    expect(nemo.length).toBe(1);
    expect(nemo.col('key')).toEqual(['0']);
    expect(nemo.col('status')).toEqual(['ok']);
    expect(nemo.col('uid')).toEqual([null]); // its json has an id, not a uid
    expect(nemo.num('batch')).toEqual([0]);
    expect(nemo.num('batch_size')).toEqual([1]); // a batch of one: its loss is 0, its gradient too
    expect(nemo.num('loss')[0]).toBeCloseTo(0, 6);
    expect(Math.abs(nemo.num('ref_clip_sim')[0]!)).toBeLessThanOrEqual(1);

    const sample = readScores(join(out, 'p/sample.tgz.arrow'));
    expect(sample.length).toBe(90);
    expect(new Set(sample.col('status'))).toEqual(new Set(['no_caption']));
    expect(sample.col('row')).toEqual(Array.from({ length: 90 }, (_, i) => i));
    expect(sample.num('loss').every((v) => v === null)).toBe(true);

    const compressed = readScores(join(out, 'p/compressed.tar.arrow'));
    expect(compressed.col('key')).toEqual(['compressed/0001', 'compressed/0002', 'compressed/0003']);
    expect(new Set(compressed.col('status'))).toEqual(new Set(['no_image']));
  });
});

describe('--uids', () => {
  let shard: string;
  let uids: string[];

  beforeAll(async () => {
    const samples = await goodSamples(14, { seed: 5, prefix: 'u' });
    uids = samples.map((s) => JSON.parse(s.files.json).uid as string);
    shard = writeBytes(t.path('uids/shard.tar'), await buildTar(entriesOf(samples)));
  });

  const listed = [0, 2, 3, 5, 8, 9, 13];
  const run = (out: string, uidsFile: string) =>
    scorePool({ shards: [shard], proxies: [`p=${refs.proxy}`], reference: refs.reference, out, batchSize: 4, device: 'cpu', uidsFile });

  it('scores the listed samples and records the others as skipped (text file, any case, comments, blank lines)', async () => {
    const file = t.path('uids/list.txt');
    writeFileSync(file, ['# chosen by a cheap filter', ...listed.map((i) => (i % 2 ? uids[i]!.toUpperCase() : uids[i]!)), '', ''].join('\n'));
    const s = await run(t.path('uids/out-txt'), file);
    expect(s.statuses).toEqual({ ok: listed.length, skipped: 14 - listed.length });
    const f = readScores(t.path('uids/out-txt/p/shard.tar.arrow'));
    const status = f.col('status');
    status.forEach((st, i) => expect(st, `row ${i}`).toBe(listed.includes(i) ? 'ok' : 'skipped'));
    f.num('mimic_proj_both').forEach((v, i) => (listed.includes(i) ? expect(v).toEqual(expect.any(Number)) : expect(v).toBeNull()));
    expect(f.col('error').filter((e) => e !== null)).toEqual(Array(14 - listed.length).fill('not in --uids'));
    // 7 scored rows in batches of 4: 4, then 3 + 1 filler.
    expect(f.num('batch').filter((v) => v !== null)).toEqual([0, 0, 0, 0, 1, 1, 1]);
    expect(f.num('batch_size').filter((v) => v !== null)).toEqual([4, 4, 4, 4, 4, 4, 4]);
  });

  it('reads a DataComp .npy subset; the same set resumes the text file\'s run', async () => {
    const npy = t.path('uids/subset.npy');
    // Reversed order: the identity is the set, not the file.
    const chosen = listed.map((i) => uids[i]!).reverse();
    execFileSync(PYTHON, ['-c', `
import sys, numpy as np
u = sys.argv[2:]
np.save(sys.argv[1], np.array([(int(x[:16], 16), int(x[16:], 16)) for x in u], np.dtype('u8,u8')))
`, npy, ...chosen]);
    const set = await readUidFile(npy);
    expect(set.size).toBe(listed.length);
    for (const i of listed) expect(set.has(uids[i])).toBe(true);
    expect(set.has(uids[1])).toBe(false);

    const again = await run(t.path('uids/out-txt'), npy);
    expect(again.shards).toMatchObject({ alreadyDone: 1, scored: 0 });
    const fresh = await run(t.path('uids/out-npy'), npy);
    expect(fresh.statuses).toEqual({ ok: listed.length, skipped: 14 - listed.length });
  });

  it('another uid set against the same folder is refused, naming uids', async () => {
    const file = t.path('uids/other.txt');
    writeFileSync(file, uids.slice(0, 3).join('\n'));
    await expect(run(t.path('uids/out-txt'), file)).rejects.toThrow(/uids: was "[0-9a-f]+", now "[0-9a-f]+"/);
  });

  it('finds every member of a large set and no other uid, whatever the input order; duplicates count once', () => {
    const members = Array.from({ length: 3000 }, (_, i) => uidOf(`m${i}`));
    const others = Array.from({ length: 3000 }, (_, i) => uidOf(`o${i}`));
    const set = UidSet.fromHex([...members, ...members.slice(0, 100)]);
    expect(set.size).toBe(3000);
    expect(members.filter((u) => !set.has(u))).toEqual([]);
    expect(others.filter((u) => set.has(u))).toEqual([]);
    expect(UidSet.fromHex([...members].reverse()).hash).toBe(set.hash);
    expect(set.has(null)).toBe(false);
    expect(set.has('xyz')).toBe(false);
  });

  it('a malformed uid file is a usage error naming the line', async () => {
    const file = t.path('uids/bad.txt');
    writeFileSync(file, `${uids[0]}\nnot-a-uid\n`);
    await expect(run(t.path('uids/out-bad'), file)).rejects.toMatchObject({ code: 'E_USAGE', message: expect.stringMatching(/line 2/) });
  });
});
