/**
 * One scoring run over generated shards that hold every kind of bad sample, with two proxies and the reference's
 * CLIP score: every input sample is in its file, in shard order, with the right status, error, batch and batch
 * size; and every score equals what the scoring core computes for the same batches (the bundles' encoders on the
 * same preprocessed inputs, then the float64 closed form of src/mimic/reference.ts, filler rows included).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { scorePool, type ScoreSummary } from '../../src/pipeline/index.js';
import { loadBundle, openEncoders, type Bundle } from '../../src/model/index.js';
import { decodeResized, normalizeHwcToChw, normalizeTable } from '../../src/image/index.js';
import { loadClipTokenizer } from '../../src/text/tokenizer.js';
import { mimicFromFeatures, MIMIC_LAYERS } from '../../src/mimic/index.js';
import { SCORE_COLUMNS } from '../../src/scores/schema.js';
import { formatSummary } from '../../src/cli/score.js';
import { buildTar, tempDir, writeBytes } from '../helpers/shards.js';
import { pngClaiming } from '../image/fixtures.js';
import { bundles, entriesOf, goodSamples, randomImage, readScores, uidOf, type ScoreRows } from './helpers.js';

const B = 4;
const t = tempDir('mimic-score-run-');
afterAll(t.cleanup);

interface Expect {
  key: string;
  status: string;
  error?: RegExp;
  uid: string | null;
  /** For ok rows: the image bytes and caption the oracle preprocesses itself. */
  image?: Buffer;
  caption?: string;
}

/** Shard name → the samples written, in order, with what the score file must say about each. */
const truth = new Map<string, Expect[]>();
let summary: ScoreSummary;
let refs: { reference: string; proxy: string; proxy2: string };

async function badShard(): Promise<{ entries: Parameters<typeof buildTar>[0]; expect: Expect[] }> {
  const good = await goodSamples(12, { seed: 7, prefix: 'g' });
  const img = (i: number) => good[i]!.files.jpg;
  const jpg = await randomImage(991, 50, 37);
  const png = await randomImage(992, 33, 61, 'png');
  const webp = await randomImage(993, 45, 45, 'webp');
  const samples: { key: string; files: Record<string, Buffer | string>; expect: Omit<Expect, 'key'> }[] = [];
  const ok = (key: string, image: Buffer, caption: string, json: string | undefined, uid: string | null, ext = 'jpg') => {
    const files: Record<string, Buffer | string> = { [ext]: image, txt: caption };
    if (json !== undefined) files.json = json;
    samples.push({ key, files, expect: { status: 'ok', uid, image, caption } });
  };
  const bad = (key: string, files: Record<string, Buffer | string>, status: string, error: RegExp, uid: string | null = null) =>
    samples.push({ key, files, expect: { status, error, uid } });
  const u = (k: string) => JSON.stringify({ uid: uidOf(k) });

  ok('a00', img(0), 'first good one', u('a00'), uidOf('a00'));
  bad('a01', { txt: 'caption without image', json: u('a01') }, 'no_image', /none of the image members/, uidOf('a01'));
  ok('a02', img(1), 'second good one', u('a02'), uidOf('a02'));
  bad('a03', { jpg: img(2), json: u('a03') }, 'no_caption', /no \.txt member/, uidOf('a03'));
  bad('a04', { jpg: Buffer.from('this is not an image at all, just some bytes'), txt: 'corrupt' }, 'decode_error', /./);
  ok('a05', jpg, 'a third good one', u('a05'), uidOf('a05'));
  bad('a06', { jpg: jpg.subarray(0, Math.floor(jpg.length * 0.6)), txt: 'truncated jpeg' }, 'decode_error', /./);
  bad('a07', { png: pngClaiming(20_000, 20_000), txt: 'a decompression bomb' }, 'image_too_large', /./);
  bad('a08', { jpg: img(3), txt: '' }, 'bad_caption', /empty/);
  bad('a09', { jpg: img(4), txt: '  \n\t ' }, 'bad_caption', /empty/);
  bad('a10', { jpg: img(5), txt: Buffer.from([0x61, 0xff, 0xfe, 0x62]) }, 'bad_caption', /UTF-8/);
  samples.push({ key: 'a11', files: {}, expect: { status: 'duplicate_extension', error: /jpg/, uid: null } }); // members below
  ok('a12', img(6), 'json that does not parse', '{"uid": "abc', null);
  ok('a13', img(7), 'json with a null uid', JSON.stringify({ uid: null }), null);
  ok('a14', png, 'a png only', u('a14'), uidOf('a14'), 'png');
  ok('a15', webp, 'a webp only', u('a15'), uidOf('a15'), 'webp');
  ok('a16', img(8), 'no json at all', undefined, null);
  bad('a17', { gif: img(9), txt: 'an image under an extension that is not read' }, 'no_image', /none of the image members/);
  for (let i = 0; i < 9; i++) {
    const s = (await goodSamples(1, { seed: 200 + i, prefix: `b0${i}` }))[0]!;
    ok(`b0${i}`, s.files.jpg, s.files.txt, s.files.json, JSON.parse(s.files.json).uid);
  }
  const entries = samples.flatMap((s) =>
    s.key === 'a11'
      ? [{ name: 'a11.jpg', data: img(10) }, { name: 'a11.jpg', data: img(11) }, { name: 'a11.txt', data: 'duplicate jpg' }]
      : entriesOf([s]),
  );
  return { entries, expect: samples.map((s) => ({ key: s.key, ...s.expect })) };
}

async function goodShard(n: number, seed: number, badEvery = 0): Promise<{ entries: Parameters<typeof buildTar>[0]; expect: Expect[] }> {
  const samples = await goodSamples(n, { seed, prefix: `s${seed}-` });
  const expect: Expect[] = [];
  const list: { key: string; files: Record<string, Buffer | string> }[] = [];
  samples.forEach((s, i) => {
    if (badEvery && i % badEvery === 1) {
      list.push({ key: s.key, files: { jpg: s.files.jpg, json: s.files.json } });
      expect.push({ key: s.key, status: 'no_caption', error: /no \.txt/, uid: JSON.parse(s.files.json).uid });
    } else {
      list.push(s);
      expect.push({ key: s.key, status: 'ok', uid: JSON.parse(s.files.json).uid, image: s.files.jpg, caption: s.files.txt });
    }
  });
  return { entries: entriesOf(list), expect };
}

beforeAll(async () => {
  refs = await bundles();
  const shards: Record<string, { entries: Parameters<typeof buildTar>[0]; expect: Expect[] }> = {
    // 17 ok samples among 27: four full batches and a last one of 1 real sample + 3 fillers.
    'pool/bad.tar': await badShard(),
    // 3 ok samples (< B): one batch of 3.
    'pool/small.tar': await goodShard(4, 31, 4),
    // Exactly 2·B ok samples: no filler.
    'pool/exact.tar': await goodShard(8, 32),
    // 10 ok: two full batches and a last of 2 + 2 fillers; in a subfolder (names are relative to the common prefix).
    'pool/sub/ten.tar': await goodShard(10, 33),
    // Nothing scorable, and nothing at all.
    'pool/allbad.tar': { entries: [{ name: 'x.txt', data: 'only a caption' }, { name: 'y.jpg', data: 'not a jpeg' }, { name: 'y.txt', data: 'y' }], expect: [
      { key: 'x', status: 'no_image', error: /image members/, uid: null },
      { key: 'y', status: 'decode_error', error: /./, uid: null },
    ] },
    'pool/empty.tar': { entries: [], expect: [] },
  };
  for (const [name, s] of Object.entries(shards)) {
    writeBytes(t.path(name), await buildTar(s.entries));
    truth.set(name.replace(/^pool\//, ''), s.expect);
  }
  summary = await scorePool({
    shards: [t.path('pool/{bad,small,exact,allbad,empty}.tar'), t.path('pool/sub/ten.tar')],
    proxies: [`p1=${refs.proxy}`, `p2=${refs.proxy2}`],
    reference: refs.reference,
    out: t.path('out'),
    batchSize: B,
    referenceClipScore: true,
    device: 'cpu',
  });
}, 300_000);

const read = (ckpt: string, shard: string): ScoreRows => readScores(join(t.path('out'), ckpt, `${shard}.arrow`));

describe('every sample, in shard order, with its status', () => {
  it('writes one file per shard and checkpoint, named by the path relative to the common prefix', () => {
    for (const c of ['p1', 'p2']) {
      for (const s of truth.keys()) expect(read(c, s).length).toBe(truth.get(s)!.length);
    }
  });

  it('has the fixed columns and the completion metadata', () => {
    const f = read('p1', 'bad.tar');
    expect(f.fields).toEqual(SCORE_COLUMNS.map((c) => c.name));
    expect(f.metadata['mimic.rows']).toBe(String(truth.get('bad.tar')!.length));
    expect(f.metadata['mimic.shard']).toBe('bad.tar');
    expect(f.metadata['mimic.checkpoint']).toBe('p1');
    expect(f.metadata['mimic.shard_status']).toBe('ok');
    expect(f.metadata['mimic.fill_policy']).toBe('previous-batch-tail');
    expect(f.metadata['mimic.args_hash']).toMatch(/^[0-9a-f]{32}$/);
    expect(Number(f.metadata['mimic.input_size'])).toBeGreaterThan(0);
  });

  it('records key, row, uid, status and error of every row', () => {
    for (const [shard, rows] of truth) {
      const f = read('p1', shard);
      expect(f.col('key')).toEqual(rows.map((r) => r.key));
      expect(f.col('row')).toEqual(rows.map((_, i) => i));
      expect(f.col('shard')).toEqual(rows.map(() => shard));
      expect(f.col('uid')).toEqual(rows.map((r) => r.uid));
      expect(f.col('status')).toEqual(rows.map((r) => r.status));
      const errors = f.col('error') as (string | null)[];
      rows.forEach((r, i) => {
        if (r.status === 'ok') expect(errors[i], `${shard} row ${i}`).toBeNull();
        else expect(errors[i], `${shard} row ${i} (${r.status})`).toMatch(r.error!);
      });
    }
  });

  it('leaves every score null on rows that are not ok, and fills them on ok rows', () => {
    const f = read('p1', 'bad.tar');
    const status = f.col('status');
    for (const c of SCORE_COLUMNS.filter((c) => c.type === 'float32' || c.type === 'int32')) {
      f.num(c.name).forEach((v, i) => {
        if (status[i] === 'ok') expect(v, `${c.name}[${i}]`).not.toBeNull();
        else expect(v, `${c.name}[${i}]`).toBeNull();
      });
    }
  });

  it('numbers batches in order of the ok rows; the last partial batch is filled to B, a shard with < B ok rows has one batch of n', () => {
    const expected: Record<string, { batch: (number | null)[]; size: (number | null)[] }> = {};
    for (const [shard, rows] of truth) {
      const okCount = rows.filter((r) => r.status === 'ok').length;
      let k = 0;
      expected[shard] = { batch: [], size: [] };
      for (const r of rows) {
        if (r.status !== 'ok') {
          expected[shard]!.batch.push(null);
          expected[shard]!.size.push(null);
          continue;
        }
        expected[shard]!.batch.push(Math.floor(k / B));
        expected[shard]!.size.push(okCount < B ? okCount : B);
        k++;
      }
    }
    for (const shard of truth.keys()) {
      const f = read('p2', shard);
      expect({ batch: f.num('batch'), size: f.num('batch_size') }, shard).toEqual(expected[shard]);
    }
    expect(new Set(read('p1', 'bad.tar').num('batch'))).toEqual(new Set([null, 0, 1, 2, 3, 4]));
    expect(read('p1', 'small.tar').num('batch_size').filter((v) => v !== null)).toEqual([3, 3, 3]);
  });

  it('summarises the samples by status', () => {
    const counts: Record<string, number> = {};
    for (const rows of truth.values()) for (const r of rows) counts[r.status] = (counts[r.status] ?? 0) + 1;
    expect(summary.statuses).toEqual(counts);
    expect(summary.samples).toBe([...truth.values()].reduce((a, r) => a + r.length, 0));
    expect(summary.shards).toMatchObject({ run: truth.size, mine: truth.size, alreadyDone: 0, scored: truth.size, failed: 0 });
    const text = formatSummary(summary);
    expect(text).toContain(`samples: ${summary.samples}`);
    // The scoring thread's CPU after loading (Linux): some, and no more than the CPU time of the whole process.
    expect(summary.scoringThreadCpuS).toBeGreaterThan(0);
    expect(summary.scoringThreadCpuS!).toBeLessThan(process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6);
    expect(text).toMatch(/model busy \d+%, scoring thread \d+% of the rest/);
    for (const [status, n] of Object.entries(counts)) expect(text).toContain(` ${status} ${n}`);
    // Rows without a caption or image come with the flag that names another member.
    const withKeys = formatSummary(summary, { imageKeys: ['jpg', 'png'], captionKey: 'txt' });
    expect(counts.no_caption).toBeGreaterThan(0);
    expect(withKeys).toContain(`hint: ${counts.no_caption} sample(s) have no caption member (.txt): if your shards name it otherwise, pass --caption-key`);
    expect(counts.no_image).toBeGreaterThan(0);
    expect(withKeys).toContain(`hint: ${counts.no_image} sample(s) have no image member (.jpg, .png)`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The oracle: the scoring core on the same batches.

interface Oracle {
  bundle: Bundle;
  encoders: Awaited<ReturnType<typeof openEncoders>>;
}

const toRows = (flat: Float32Array, width: number): number[][] =>
  Array.from({ length: flat.length / width }, (_, i) => Array.from(flat.subarray(i * width, (i + 1) * width)));

/**
 * Tolerance: the oracle runs the same encoders on the same batches, with the text ids NOT cut (trimText: false,
 * every caption padded to the full context), while the pipeline cuts each batch after its last end token; the
 * text features then differ by float rounding of the smaller matrix products at most (src/model/text-length.ts).
 * What is left is that, the ONNX graph's float64 arithmetic against the JS closed form's, and float32 rounding of
 * the outputs (measured worst: 6e-8 relative). 1e-5 relative leaves room for another CPU's kernels; the floor,
 * 1e-6 of the batch's largest value, covers scores that are near-complete cancellations of larger terms.
 */
const RTOL = 1e-5;
const BATCH_FLOOR = 1e-6;

describe('scores equal the scoring core for the same batches', () => {
  it('loss, clip_sim, ref_clip_sim and grad_norm/mimic_proj/mimic_cos of every layer, filler rows included', async () => {
    const reference = await loadBundle(refs.reference, { hash: false });
    const spec = reference.manifest.image;
    const table = normalizeTable(spec);
    const tokenizer = await loadClipTokenizer(reference.paths.vocab);
    const L = reference.manifest.text.context_length;
    const S = spec.size;
    const open = async (dir: string): Promise<Oracle> => {
      const bundle = await loadBundle(dir, { hash: false });
      const encoders = await openEncoders(bundle, { device: 'cpu', trimText: false });
      // The pipeline's encoders cut (test/pipeline/text-length.test.ts); the oracle's must not.
      expect(encoders.textLength).toMatchObject({ dynamic: true, trimmed: false });
      return { bundle, encoders };
    };
    const ref = await open(refs.reference);
    const ckpts = { p1: await open(refs.proxy), p2: await open(refs.proxy2) };
    const mismatches: string[] = [];
    let compared = 0;
    let worst = 0;
    try {
      for (const [shard, rows] of truth) {
        const okRows = rows.map((r, i) => ({ ...r, row: i })).filter((r) => r.status === 'ok');
        if (okRows.length === 0) continue;
        // Inputs built here, independently of the pipeline's batch builder.
        const pixels: Float32Array[] = [];
        const ids: BigInt64Array[] = [];
        for (const r of okRows) {
          const { pixels: hwc } = await decodeResized(r.image!, spec);
          const chw = new Float32Array(3 * S * S);
          normalizeHwcToChw(hwc, S * S, table, chw, 0);
          pixels.push(chw);
          ids.push(BigInt64Array.from(tokenizer.tokenize(r.caption!, L, reference.manifest.text.pad_id), (v) => BigInt(v)));
        }
        const batches: number[][] = [];
        for (let k = 0; k < okRows.length; k += B) batches.push(okRows.slice(k, k + B).map((_, j) => k + j));

        const concat = <T extends Float32Array | BigInt64Array>(parts: T[], make: (n: number) => T): T => {
          const out = make(parts.reduce((a, p) => a + p.length, 0));
          let off = 0;
          for (const p of parts) {
            (out as Float32Array).set(p as Float32Array, off);
            off += p.length;
          }
          return out;
        };
        const features = async (o: Oracle, idx: number[]) => ({
          image: await o.encoders.imageFeatures(concat(idx.map((i) => pixels[i]!), (n) => new Float32Array(n)), idx.length),
          text: await o.encoders.textFeatures(concat(idx.map((i) => ids[i]!), (n) => new BigInt64Array(n)), idx.length),
        });

        for (const [name, o] of Object.entries(ckpts)) {
          const f = read(name, shard);
          const h = o.bundle.heads;
          const rh = reference.heads;
          let prev: { image: number[][]; text: number[][] } | null = null;
          for (const [bi, idx] of batches.entries()) {
            const feat = await features(o, idx);
            let image = toRows(feat.image, h.dv);
            let text = toRows(feat.text, h.dt);
            const real = { image, text };
            const fill = prev && idx.length < B ? B - idx.length : 0;
            if (fill) {
              image = [...image, ...prev!.image.slice(B - fill)];
              text = [...text, ...prev!.text.slice(B - fill)];
            }
            prev = real;
            const expected = mimicFromFeatures({
              imageFeatures: image,
              textFeatures: text,
              visualProjection: toRows(h.visualProjection, h.p),
              textProjection: toRows(h.textProjection, h.p),
              refVisualProjection: toRows(rh.visualProjection, rh.p),
              refTextProjection: toRows(rh.textProjection, rh.p),
              logitScale: h.logitScale,
            });
            const cols: [string, number[]][] = [['loss', expected.loss], ['clip_sim', expected.clipSim]];
            for (const l of MIMIC_LAYERS) {
              cols.push([`grad_norm_${l}`, expected[l].gradNorm], [`mimic_proj_${l}`, expected[l].mimicProj], [`mimic_cos_${l}`, expected[l].mimicCos]);
            }
            for (const [col, want] of cols) {
              const largest = Math.max(...want.map(Math.abs));
              idx.forEach((i, k) => {
                const row = okRows[i]!.row;
                const got = f.num(col)[row]!;
                const e = want[k]!;
                const err = Math.abs(got - e);
                if (e !== 0) worst = Math.max(worst, err / Math.abs(e));
                compared++;
                if (!(err <= RTOL * Math.abs(e) + BATCH_FLOOR * largest)) {
                  mismatches.push(`${name}/${shard} row ${row} (batch ${bi}${fill ? `, ${fill} fillers` : ''}) ${col} = ${got}, expected ${e}`);
                }
                expect(f.num('batch')[row]).toBe(bi);
              });
            }
          }
          // ref_clip_sim: the reference's own CLIP similarity x·y of each real row.
          const rf = await features(ref, okRows.map((_, i) => i));
          const proj = (feat: Float32Array, w: Float32Array, d: number, p: number) =>
            toRows(feat, d).map((row) => {
              const u = Array.from({ length: p }, (_, j) => row.reduce((a, v, k) => a + v * w[k * p + j]!, 0));
              const n = Math.sqrt(u.reduce((a, v) => a + v * v, 0));
              return u.map((v) => v / n);
            });
          const x = proj(rf.image, reference.heads.visualProjection, reference.heads.dv, reference.heads.p);
          const y = proj(rf.text, reference.heads.textProjection, reference.heads.dt, reference.heads.p);
          okRows.forEach((r, i) => {
            const e = x[i]!.reduce((a, v, j) => a + v * y[i]![j]!, 0);
            const got = f.num('ref_clip_sim')[r.row]!;
            compared++;
            if (!(Math.abs(got - e) <= RTOL * Math.abs(e) + 1e-6)) mismatches.push(`${name}/${shard} row ${r.row} ref_clip_sim = ${got}, expected ${e}`);
          });
        }
      }
    } finally {
      for (const o of [ref, ...Object.values(ckpts)]) await o.encoders.release();
    }
    expect(mismatches, `worst relative error ${worst}`).toEqual([]);
    expect(compared).toBeGreaterThan(2 * 38 * 11);
  }, 120_000);

  it('the two checkpoints share the rows and ref_clip_sim but not the scores', () => {
    const a = read('p1', 'bad.tar');
    const b = read('p2', 'bad.tar');
    expect(b.col('key')).toEqual(a.col('key'));
    expect(b.num('ref_clip_sim')).toEqual(a.num('ref_clip_sim'));
    expect(b.num('mimic_proj_both')).not.toEqual(a.num('mimic_proj_both'));
  });
});
