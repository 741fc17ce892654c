import { describe, expect, it } from 'vitest';
import { HighHistogram, LowHistogram, floatKey, keyFloat, linearPercentile, percentileRanks } from '../../src/filter/order-stats.js';
import { python, rng } from './helpers.js';

/** Exact order statistics of `values` through the two histogram passes, as the filter runs them. */
function orderStats(values: Float32Array, ranks: number[]) {
  const hh = new HighHistogram();
  // several chunks, as files would come
  for (let p = 0; p < values.length; p += 97) hh.add(values.subarray(p, p + 97).slice(), null);
  const lows = new Map<number, LowHistogram>();
  for (const r of ranks) {
    const { bucket, below } = hh.locate(r);
    if (!lows.has(bucket)) lows.set(bucket, new LowHistogram(bucket, below));
  }
  for (const lh of lows.values()) lh.add(values, null);
  return { hh, at: (r: number) => lows.get(hh.locate(r).bucket)!.at(r) };
}

describe('order statistics', () => {
  it('float keys preserve order across signs, zeros, subnormals and infinities', () => {
    const xs = [-Infinity, -3.4e38, -1, -1e-45, -0, 0, 1e-45, 1e-38, 1, 3.4e38, Infinity].map(Math.fround);
    const keys = xs.map(floatKey);
    for (let i = 1; i < keys.length; i++) {
      if (Object.is(xs[i - 1], -0) && xs[i] === 0) expect(keys[i]).toBe(keys[i - 1]);
      else expect(keys[i]).toBeGreaterThan(keys[i - 1]);
    }
    for (const x of xs) expect(keyFloat(floatKey(x))).toBe(x === 0 ? 0 : x);
  });

  it('equals numpy.percentile(method=linear) on adversarial arrays', () => {
    const r = rng(42);
    const arrays: number[][] = [
      [1e-8, 3], // neighbours far apart: the float32 difference matters
      [Math.fround(0.1), Math.fround(1e7), Math.fround(-2.5)],
      [5],
      [-0, 0, -0, 0, 1],
      Array.from({ length: 1000 }, () => Math.floor(r() * 4)), // four values, many ties
      Array.from({ length: 777 }, () => (r() - 0.5) * 10 ** Math.floor(r() * 12 - 6)), // many magnitudes
      Array.from({ length: 500 }, () => 1 + r() * 1e-6), // one high bucket: every value in the same 2^16 range
      [-Infinity, 1, 2, Infinity],
    ];
    const qs = [0, 0.1, 1, 10, 12.5, 20, 25, 33.3, 50, 66.7, 70, 75, 90, 99, 99.5, 99.9, 100];
    const want = python<(number | string | null)[][]>(`
res = []
for a in A['arrays']:
    x = np.array([float(v) for v in a], dtype=np.float32)
    res.append([None if np.isnan(p) else (str(float(p)) if np.isinf(p) else float(p)) for p in (np.percentile(x, q) for q in A['qs'])])
out(res)`, null, { arrays: arrays.map((a) => a.map((v) => (Object.is(v, -0) ? '-0.0' : String(Math.fround(v))))), qs });
    arrays.forEach((a, k) => {
      const v = Float32Array.from(a);
      const n = v.length;
      const ranks = qs.flatMap((q) => { const p = percentileRanks(q, n); return [p.lo, p.hi]; });
      const { at } = orderStats(v, ranks);
      const got = qs.map((q) => { const p = linearPercentile(q, n, (rr) => at(rr).value); return Number.isNaN(p) ? null : p === Infinity ? 'inf' : p === -Infinity ? '-inf' : p; });
      expect(got, `array ${k}`).toEqual(want[k]);
    });
  });

  it('counts values below and equal to the value at a rank', () => {
    const v = Float32Array.from([3, 1, 2, 2, 2, 5, NaN, 2]);
    const hh = new HighHistogram();
    hh.add(v, null);
    expect(hh.n).toBe(7);
    expect(hh.nan).toBe(1);
    const { at } = orderStats(Float32Array.from([3, 1, 2, 2, 2, 5, 2]), [1, 4, 5, 6]);
    expect(at(1)).toMatchObject({ value: 2, less: 1, equal: 4 });
    expect(at(4)).toMatchObject({ value: 2, less: 1, equal: 4 });
    expect(at(5)).toMatchObject({ value: 3, less: 5, equal: 1 });
    expect(at(6)).toMatchObject({ value: 5, less: 6, equal: 1 });
  });

  it('masks rows and keeps counts exact across 100k values in one high bucket', () => {
    const r = rng(9);
    const n = 100_000;
    const v = Float32Array.from({ length: n }, () => 1 + Math.floor(r() * 50) * 2 ** -20);
    const mask = Uint8Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 0 : 1));
    const kept = Array.from(v).filter((_, i) => mask[i]).sort((a, b) => a - b);
    const hh = new HighHistogram();
    hh.add(v, mask);
    expect(hh.n).toBe(kept.length);
    const ranks = [0, 17, 5000, kept.length - 1];
    const lows = new Map<number, LowHistogram>();
    for (const rr of ranks) {
      const { bucket, below } = hh.locate(rr);
      if (!lows.has(bucket)) lows.set(bucket, new LowHistogram(bucket, below));
    }
    for (const lh of lows.values()) lh.add(v, mask);
    for (const rr of ranks) expect(lows.get(hh.locate(rr).bucket)!.at(rr).value).toBe(kept[rr]);
  });
});
