import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemoDataset, type DemoDataset } from '../../src/demo/dataset.js';
import { evaluateDemo } from '../../src/demo/evaluate.js';
import { controlHeads, scoreDemoPool, type DemoScores } from '../../src/demo/score-pool.js';
import { preprocessInto } from '../../src/image/preprocess.js';
import { mimicFromFeatures } from '../../src/mimic/reference.js';
import { loadBundle, type Bundle, type BundleHeads } from '../../src/model/bundle.js';
import { openEncoders } from '../../src/model/encoders.js';
import { loadClipTokenizer } from '../../src/text/tokenizer.js';
import { openShard } from '../../src/wds/shard-reader.js';
import { ShardWriter } from '../../src/wds/shard-writer.js';

const MODELS = new URL('../../models/', import.meta.url).pathname;
const tmp = mkdtempSync(join(os.tmpdir(), 'mimic-demo-score-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const B = 8;

interface Raw {
  image: Buffer;
  caption: string;
}

async function readRaw(shard: string): Promise<Raw[]> {
  const out: Raw[] = [];
  for await (const s of (await openShard(shard)).samples) out.push({ image: s.files.get('jpg')!, caption: s.files.get('txt')!.toString('utf8') });
  return out;
}

const rows2 = (a: Float32Array, n: number, d: number, from: number) =>
  Array.from({ length: n }, (_, i) => Array.from(a.subarray((from + i) * d, (from + i + 1) * d)));
const mat = (a: Float32Array, r: number, c: number) => rows2(a, r, c, 0);

describe('scoreDemoPool on the committed bundles', () => {
  let ds: DemoDataset;
  let proxy: Bundle;
  let reference: Bundle;
  let scores: DemoScores;
  /** Features of shard 0 by both models, computed sample by sample. */
  let feats: { img: Float32Array; txt: Float32Array; refImg: Float32Array; refTxt: Float32Array; n: number };

  beforeAll(async () => {
    ds = await buildDemoDataset({ out: join(tmp, 'data'), limit: 30, samplesPerShard: 20, noise: 0.3, seed: 5 });
    // A shard with an undecodable image between two good samples.
    const good = await readRaw(ds.poolShards[0]!);
    const broken = join(tmp, 'broken.tar');
    const w = new ShardWriter(broken);
    await w.add('a', { jpg: good[0]!.image, txt: good[0]!.caption, json: JSON.stringify({ uid: 'a'.repeat(32) }) });
    await w.add('b', { jpg: Buffer.from('not a jpeg'), txt: 'caption', json: JSON.stringify({ uid: 'b'.repeat(32) }) });
    await w.add('c', { jpg: good[1]!.image, txt: good[1]!.caption, json: JSON.stringify({ uid: 'c'.repeat(32) }) });
    await w.close();
    const proxies = ['demo-proxy-50', 'demo-proxy-400'];
    proxy = await loadBundle(join(MODELS, proxies[1]!));
    reference = await loadBundle(join(MODELS, 'demo-reference'));
    scores = await scoreDemoPool({ proxy, reference, shards: [...ds.poolShards, broken], batchSize: B, seed: 9, intraOpThreads: 1 });

    const spec = proxy.manifest.image;
    const S = spec.size;
    const L = proxy.manifest.text.context_length;
    const tok = await loadClipTokenizer(proxy.paths.vocab);
    const n = good.length;
    const pixels = new Float32Array(n * 3 * S * S);
    const ids = new BigInt64Array(n * L);
    for (const [i, s] of good.entries()) {
      await preprocessInto(s.image, spec, pixels, i * 3 * S * S);
      tok.tokenizeInto(s.caption, L, ids, i * L, proxy.manifest.text.pad_id);
    }
    const encP = await openEncoders(proxy, { device: 'cpu', intraOpThreads: 1 });
    const encR = await openEncoders(reference, { device: 'cpu', intraOpThreads: 1 });
    feats = {
      img: await encP.imageFeatures(pixels, n),
      txt: await encP.textFeatures(ids, n),
      refImg: await encR.imageFeatures(pixels, n),
      refTxt: await encR.textFeatures(ids, n),
      n,
    };
    await encP.release();
    await encR.release();
  });

  /** The float64 oracle on shard 0's rows [from, from + n) with reference heads `ref`. */
  const oracle = (from: number, n: number, ref: BundleHeads) => {
    const h = proxy.heads;
    return mimicFromFeatures({
      imageFeatures: rows2(feats.img, n, h.dv, from),
      textFeatures: rows2(feats.txt, n, h.dt, from),
      visualProjection: mat(h.visualProjection, h.dv, h.p),
      textProjection: mat(h.textProjection, h.dt, h.p),
      refVisualProjection: mat(ref.visualProjection, h.dv, h.p),
      refTextProjection: mat(ref.textProjection, h.dt, h.p),
      logitScale: h.logitScale,
    });
  };

  const expectClose = (got: Float32Array, want: number[], at: number, tol = 2e-4) => {
    want.forEach((v, i) => expect(Math.abs(got[at + i]! - v)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(v))));
  };

  it('keeps every row, in shard order, with its uid and status', () => {
    const t = ds.truth;
    expect(scores.row.length).toBe(t.counts.pool + 3);
    t.rows.forEach((r, i) => {
      expect(scores.uid[i]).toBe(r.uid);
      expect(scores.key[i]).toBe(r.key);
      expect(scores.status[i]).toBe('ok');
    });
    const tail = scores.status.slice(-3);
    expect(tail[0]).toBe('ok');
    expect(tail[1]).toMatch(/^decode_error/);
    expect(tail[2]).toBe('ok');
    const n = scores.row.length;
    expect(scores.columns.mimic_proj_both![n - 2]).toBeNaN();
    expect(Number.isFinite(scores.columns.mimic_proj_both![n - 1]!)).toBe(true);
  });

  it('scores a full batch as the float64 closed form does on the same features', () => {
    const want = oracle(0, B, reference.heads);
    expectClose(scores.columns.loss!, want.loss, 0);
    expectClose(scores.columns.clip_sim!, want.clipSim, 0);
    for (const l of ['visual', 'text', 'both'] as const) {
      expectClose(scores.columns[`mimic_proj_${l}`]!, want[l].mimicProj, 0);
      expectClose(scores.columns[`mimic_cos_${l}`]!, want[l].mimicCos, 0);
      expectClose(scores.columns[`grad_norm_${l}`]!, want[l].gradNorm, 0);
    }
  });

  it("fills a shard's last partial batch with the tail of its previous batch", () => {
    // Shard 0 holds 20 rows: batches 0–7, 8–15, then 16–19 scored with rows 12–15 as negatives.
    const want = oracle(12, B, reference.heads);
    expectClose(scores.columns.loss!, want.loss.slice(4), 16);
    expectClose(scores.columns.mimic_proj_both!, want.both.mimicProj.slice(4), 16);
    // Scored alone, the four rows would get other values: the fill is what makes them agree.
    const alone = oracle(16, 4, reference.heads);
    expect(Math.abs(alone.loss[0]! - scores.columns.loss![16]!)).toBeGreaterThan(1e-3);
  });

  it('scores the controls: D = −W (zero reference heads) and a random D with the norm of the real one', () => {
    const zero = controlHeads(proxy.heads, reference.heads, 'neg_w');
    expect(zero.visualProjection.every((v) => v === 0)).toBe(true);
    const neg = oracle(0, B, zero);
    expectClose(scores.columns['mimic_proj_both:neg_w']!, neg.both.mimicProj, 0);
    const random = controlHeads(proxy.heads, reference.heads, 'random', 9);
    const rnd = oracle(0, B, random);
    expectClose(scores.columns['mimic_proj_visual:random']!, rnd.visual.mimicProj, 0);
    const dist = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));
    const h = proxy.heads;
    expect(dist(random.visualProjection, h.visualProjection)).toBeCloseTo(dist(reference.heads.visualProjection, h.visualProjection), 4);
    expect(dist(random.textProjection, h.textProjection)).toBeCloseTo(dist(reference.heads.textProjection, h.textProjection), 4);
    // Not the real direction, nor a rescaled copy of it.
    expect(dist(random.visualProjection, reference.heads.visualProjection)).toBeGreaterThan(0.5 * dist(reference.heads.visualProjection, h.visualProjection));
  });

  it("reports the reference's own CLIP score", () => {
    const { dv, dt, p } = reference.heads;
    for (let i = 0; i < 5; i++) {
      const u = Array.from({ length: p }, (_, j) => Array.from({ length: dv }, (_, k) => feats.refImg[i * dv + k]! * reference.heads.visualProjection[k * p + j]!).reduce((a, b) => a + b, 0));
      const v = Array.from({ length: p }, (_, j) => Array.from({ length: dt }, (_, k) => feats.refTxt[i * dt + k]! * reference.heads.textProjection[k * p + j]!).reduce((a, b) => a + b, 0));
      const cos = u.reduce((a, x, j) => a + x * v[j]!, 0) / Math.hypot(...u) / Math.hypot(...v);
      expect(scores.columns.ref_clip_sim![i]).toBeCloseTo(cos, 5);
    }
  });

  it('feeds the evaluation, which joins rows to the truth by uid and refuses rows it cannot place', () => {
    const n = ds.truth.counts.pool;
    const cut = (c: Float32Array) => c.subarray(0, n);
    const columns = Object.fromEntries(Object.entries(scores.columns).map(([k, v]) => [k, cut(v)]));
    const ev = evaluateDemo({ uid: scores.uid.slice(0, n), status: scores.status.slice(0, n), columns }, ds.truth);
    expect(ev.unscored).toBe(0);
    expect(ev.report.rows).toBe(n);
    expect(ev.report.bad).toBe(ds.truth.counts.swapped + ds.truth.counts.corrupted);
    expect(ev.report.scores.map((s) => s.column)).toContain('mimic_proj_both:random');
    expect(() => evaluateDemo({ uid: scores.uid, status: scores.status, columns: scores.columns }, ds.truth)).toThrow(/uid "a{32}"/);
  });
});
