/**
 * Feature agreement on real shards: JPEG/PNG images encoded by sharp and captions, written as a WebDataset tar,
 * read, decoded, tokenized and run through both models' ONNX encoders; checked against features computed from
 * the same preprocessed inputs directly, and through `mimic check` with shards.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { preprocessInto } from '../../src/image/index.js';
import { loadBundle } from '../../src/model/bundle.js';
import { openEncoders } from '../../src/model/encoders.js';
import { featureAlignment, linearCka } from '../../src/model/lineage.js';
import { poolFeatureAgreement } from '../../src/model/pool-features.js';
import { loadClipTokenizer } from '../../src/text/tokenizer.js';
import { ShardWriter } from '../../src/wds/index.js';
import { tinyBundle } from '../helpers/bundles.js';

const work = mkdtempSync(join(tmpdir(), 'mimic-pool-'));
const bin = fileURLToPath(new URL('../../bin/mimic', import.meta.url));
const shard = join(work, 'pool-000000.tar');
const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'];
const N_GOOD = 14;

/** A w×h image with a colour gradient and a square, deterministic per i. */
async function image(i: number, format: 'jpeg' | 'png'): Promise<Buffer> {
  const w = 40 + 7 * i;
  const h = 30 + 5 * ((i * 3) % 11);
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      const inSquare = Math.abs(x - w / 2) < w / 5 && Math.abs(y - h / 2) < h / 5;
      px[o] = inSquare ? (i * 40) % 256 : (x * 255) / w;
      px[o + 1] = inSquare ? (i * 90) % 256 : (y * 255) / h;
      px[o + 2] = (i * 17 + x + y) % 256;
    }
  }
  const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  return format === 'jpeg' ? img.jpeg({ quality: 90 }).toBuffer() : img.png().toBuffer();
}

const caption = (i: number) => `a ${COLORS[i % COLORS.length]} square on a gradient, photo number ${i}`;

beforeAll(async () => {
  const w = new ShardWriter(shard);
  for (let i = 0; i < N_GOOD; i++) {
    await w.add(`s${String(i).padStart(3, '0')}`, { [i % 3 ? 'jpg' : 'png']: await image(i, i % 3 ? 'jpeg' : 'png'), txt: caption(i) });
    if (i === 4) await w.add('nocap', { jpg: await image(99, 'jpeg') });
    if (i === 8) await w.add('broken', { jpg: Buffer.from('not a jpeg at all'), txt: 'broken image' });
  }
  await w.close();
});

describe('poolFeatureAgreement', () => {
  it('encodes the usable samples with both models and agrees with a direct computation', async () => {
    const ref = await loadBundle(await tinyBundle({ seed: 1 }));
    const proxy = await loadBundle(await tinyBundle({ from: ref.dir, seed: 5, perturb: 0.1 }));
    // batch 4 does not divide 12: the last batch is partial
    const r = await poolFeatureAgreement(proxy, ref, [shard], { samples: 12, batchSize: 4, device: 'cpu' });
    expect(r.used).toBe(12);
    expect(r.skipped).toBe(2);
    expect(r.skippedReasons[0]).toMatch(/row 5 \(nocap\): no caption/);
    expect(r.skippedReasons[1]).toMatch(/row 10 \(broken\)/);

    // Direct: preprocess and tokenize the first 12 good samples ourselves, one batch.
    const good = Array.from({ length: 12 }, (_, i) => i);
    const px = new Float32Array(12 * 3 * 32 * 32);
    const ids = new BigInt64Array(12 * 77);
    const tok = await loadClipTokenizer(ref.paths.vocab);
    for (const i of good) {
      await preprocessInto(await image(i, i % 3 ? 'jpeg' : 'png'), ref.manifest.image, px, i * 3 * 32 * 32);
      tok.tokenizeInto(caption(i), 77, ids, i * 77);
    }
    const [ep, er] = [await openEncoders(proxy, { device: 'cpu' }), await openEncoders(ref, { device: 'cpu' })];
    try {
      const hp = await ep.imageFeatures(px, 12);
      const hr = await er.imageFeatures(px, 12);
      const tp = await ep.textFeatures(ids, 12);
      const tr = await er.textFeatures(ids, 12);
      const [vis, txt] = r.agreement;
      expect(vis).toMatchObject({ tower: 'visual', samples: 12 });
      expect(vis!.cka).toBeCloseTo(linearCka(hp, hr, 12, 64, 64), 5);
      expect(vis!.alignment).toBeCloseTo(featureAlignment(hp, hr, 12, 64), 5);
      expect(txt!.cka).toBeCloseTo(linearCka(tp, tr, 12, 48, 48), 5);
      expect(txt!.alignment).toBeCloseTo(featureAlignment(tp, tr, 12, 48), 5);
    } finally {
      await ep.release();
      await er.release();
    }
    // a 10% perturbation keeps the basis
    for (const a of r.agreement) expect(a.alignment).toBeGreaterThan(0.8);
  });

  it('an unrelated model\'s features are not aligned', async () => {
    const ref = await loadBundle(await tinyBundle({ seed: 1 }));
    const other = await loadBundle(await tinyBundle({ seed: 2 }));
    const r = await poolFeatureAgreement(other, ref, [shard], { samples: 14, device: 'cpu' });
    expect(r.used).toBe(14);
    for (const a of r.agreement) expect(Math.abs(a.alignment)).toBeLessThan(0.4);
  });

  it('needs at least two usable samples', async () => {
    const ref = await loadBundle(await tinyBundle({ seed: 1 }));
    const empty = join(work, 'empty.tar');
    const w = new ShardWriter(empty);
    await w.add('only', { jpg: await image(1, 'jpeg'), txt: 'one' });
    await w.close();
    await expect(poolFeatureAgreement(ref, ref, [empty], { device: 'cpu' })).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringMatching(/only 1 usable samples .*needs at least 2/),
    });
  });
});

describe('mimic check with shards', () => {
  it('reports CKA and alignment per tower and the sample counts', async () => {
    const ref = await tinyBundle({ seed: 1 });
    const proxy = await tinyBundle({ from: ref, seed: 5, perturb: 0.1 });
    const r = spawnSync(process.execPath, [bin, '--log-level', 'warn', 'check', '--proxy', proxy, '--reference', ref,
      '--device', 'cpu', '--no-verify', '--samples', '10', shard], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\s+features\s+samples\s+linear CKA\s+alignment$/m);
    expect(r.stdout).toMatch(/^\s+visual\s+10\s+0\.\d+\s+0\.\d+$/m);
    expect(r.stdout).toMatch(/^\s+text\s+10\s+0\.\d+\s+0\.\d+$/m);
    expect(r.stdout).toMatch(/pool samples: 10 compared, 2 passed over \(e\.g\. .*no caption\)/);
    expect(r.stdout).toMatch(/verdict: shares lineage: .*feature alignment 0\.\d+/);
    const bad = spawnSync(process.execPath, [bin, 'check', '--proxy', proxy, shard], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/comparing features on shards needs --reference too/);
  });
});
