/**
 * Lineage checks: linear CKA against a NumPy implementation, the heads statistics on real exported bundles
 * (a perturbed proxy, an independent model, an identical copy), and the pairing errors.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/model/bundle.js';
import { checkPair, featureAlignment, lineageVerdict, linearCka } from '../../src/model/lineage.js';
import { makeTinyBundle, PYTHON, tinyBundle } from '../helpers/bundles.js';

const work = mkdtempSync(join(tmpdir(), 'mimic-lineage-'));

/** Deterministic pseudo-random matrix (xorshift), so NumPy gets the same numbers through JSON. */
function matrix(n: number, d: number, seed: number): Float64Array {
  let s = seed >>> 0 || 1;
  const out = new Float64Array(n * d);
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = s / 2 ** 32 - 0.5 + (i % d === 0 ? 1 : 0);
  }
  return out;
}

describe('linear CKA and feature alignment', () => {
  it('match NumPy\'s linear CKA (feature-space formula) on random matrices', () => {
    const cases = [[40, 8, 5], [17, 3, 12], [64, 32, 32]].map(([n, dx, dy], k) => ({
      n: n!, dx: dx!, dy: dy!, x: matrix(n!, dx!, 11 + k), y: matrix(n!, dy!, 97 + k),
    }));
    const py = execFileSync(PYTHON, ['-c', `
import json, sys, numpy as np
out = []
for c in json.load(sys.stdin):
    x = np.array(c['x']).reshape(c['n'], c['dx']); y = np.array(c['y']).reshape(c['n'], c['dy'])
    x = x - x.mean(0); y = y - y.mean(0)
    out.append(float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))))
print(json.dumps(out))
`], { input: JSON.stringify(cases.map((c) => ({ ...c, x: Array.from(c.x), y: Array.from(c.y) }))), encoding: 'utf8' });
    const want = JSON.parse(py) as number[];
    cases.forEach((c, i) => expect(linearCka(c.x, c.y, c.n, c.dx, c.dy)).toBeCloseTo(want[i]!, 12));
  });

  it('CKA is 1 under a rotation, where alignment is not; both are 1 for identical features', () => {
    const n = 50;
    const d = 6;
    const x = matrix(n, d, 3);
    // rotate the feature basis: a permutation with sign flips is orthogonal
    const perm = [3, 0, 5, 1, 4, 2];
    const r = new Float64Array(n * d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) r[i * d + j] = (j % 2 ? -1 : 1) * x[i * d + perm[j]!]!;
    expect(linearCka(x, r, n, d, d)).toBeCloseTo(1, 12);
    expect(featureAlignment(x, r, n, d)).toBeLessThan(0.5);
    expect(linearCka(x, x, n, d, d)).toBeCloseTo(1, 12);
    expect(featureAlignment(x, x, n, d)).toBeCloseTo(1, 12);
    const unrelated = matrix(n, d, 1234);
    expect(Math.abs(featureAlignment(x, unrelated, n, d))).toBeLessThan(0.3);
  });

  it('needs two samples', () => {
    expect(() => linearCka(new Float64Array(3), new Float64Array(3), 1, 3, 3)).toThrow(/at least two samples/);
  });
});

describe('checkPair on exported bundles', () => {
  let ref: string;
  beforeAll(async () => {
    ref = await tinyBundle({ seed: 1 });
  });

  it('a proxy perturbed by 10% shares the lineage: ‖D‖/‖W‖ ≈ 0.1, cosine ≈ 1', async () => {
    const proxy = await tinyBundle({ from: ref, seed: 5, perturb: 0.1 });
    const r = await checkPair(await loadBundle(proxy), await loadBundle(ref));
    expect(r.heads).toEqual({ dv: 64, dt: 48, p: 32 });
    expect(r.layers.map((l) => l.layer)).toEqual(['visual', 'text', 'both']);
    for (const l of r.layers) {
      expect(l.relDistance).toBeGreaterThan(0.07);
      expect(l.relDistance).toBeLessThan(0.13);
      expect(l.cosine).toBeGreaterThan(0.99);
      expect(l.normD).toBeCloseTo(l.relDistance * l.normW, 10);
    }
    expect(r.layers[2]!.shape).toEqual([112, 32]);
    expect(r.verdict.level).toBe('shares-lineage');
    expect(r.verdict.message).toMatch(/^shares lineage: mimic scores are meaningful/);
  });

  it('two independently initialised models are unrelated: ‖D‖/‖W‖ ≈ √2, cosine ≈ 0', async () => {
    const r = await checkPair(await loadBundle(await tinyBundle({ seed: 2 })), await loadBundle(ref));
    const both = r.layers[2]!;
    expect(both.relDistance).toBeGreaterThan(1.2);
    expect(both.relDistance).toBeLessThan(1.7);
    expect(Math.abs(both.cosine)).toBeLessThan(0.1);
    expect(r.verdict.level).toBe('unrelated');
    expect(r.verdict.message).toMatch(/^unrelated: the direction W_ref − W has no meaning/);
  });

  it('an identical pair has a zero direction', async () => {
    const r = await checkPair(await loadBundle(ref), await loadBundle(await makeTinyBundle(join(work, 'same'), { seed: 1 })));
    expect(r.layers.every((l) => l.normD === 0 && l.cosine > 0.999999)).toBe(true);
    expect(r.verdict.level).toBe('identical');
  });

  it('feature evidence overrides similar heads, and explains high CKA in another basis', () => {
    const layers = [{ layer: 'both' as const, shape: [2, 2] as [number, number], normW: 1, normRef: 1, normD: 0.1, relDistance: 0.1, cosine: 0.99 }];
    expect(lineageVerdict(layers).level).toBe('shares-lineage');
    const v = lineageVerdict(layers, [{ tower: 'visual', samples: 10, cka: 0.9, alignment: 0.02 }]);
    expect(v.level).toBe('unrelated');
    expect(v.message).toMatch(/similar up to a rotation \(high CKA\) but in different bases/);
    expect(lineageVerdict(layers, [{ tower: 'text', samples: 10, cka: 0.9, alignment: 0.3 }]).level).toBe('weak');
  });

  it('refuses pairs that cannot work together, saying why', async () => {
    const p = await loadBundle(ref);
    const wide = await loadBundle(await tinyBundle({ seed: 1, embedDim: 16 }));
    await expect(checkPair(wide, p)).rejects.toMatchObject({
      code: 'E_BUNDLE',
      message: expect.stringMatching(/cannot be paired: head shapes differ: proxy visual_projection \[64,16\] text_projection \[48,16\], reference \[64,32\] and \[48,32\]/),
    });
    const short = await loadBundle(await tinyBundle({ seed: 1, contextLength: 16 }));
    await expect(checkPair(short, p)).rejects.toThrow(/tokenization differs: text\.context_length is 16 vs 77/);

    const meanDir = await makeTinyBundle(join(work, 'mean'), { seed: 1 });
    const mj = JSON.parse(readFileSync(join(meanDir, 'model.json'), 'utf8'));
    mj.image.mean = [0.5, 0.5, 0.5];
    writeFileSync(join(meanDir, 'model.json'), JSON.stringify(mj));
    await expect(checkPair(await loadBundle(meanDir), p)).rejects.toThrow(/image preprocessing differs: image\.mean is \[0\.5,0\.5,0\.5\]/);

    const vocabDir = await makeTinyBundle(join(work, 'vocab'), { seed: 1 });
    const vp = join(vocabDir, 'bpe_simple_vocab_16e6.txt.gz');
    const lines = gunzipSync(readFileSync(vp)).toString().split('\n');
    [lines[5], lines[6]] = [lines[6]!, lines[5]!];
    writeFileSync(vp, gzipSync(lines.join('\n')));
    await expect(checkPair(await loadBundle(vocabDir), p)).rejects.toThrow(/their tokenizer vocabularies differ/);
  });
});
