import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  auroc,
  bottom,
  keepTop,
  keptNoiseRate,
  midranks,
  percentileLinear,
  precisionAtK,
  precisionAtNoiseRate,
} from '../../src/demo/metrics.js';
import { evaluateQuality, formatQualityMarkdown } from '../../src/demo/quality.js';
import { mulberry32 } from '../../src/demo/random.js';

const ORACLE = new URL('./metrics_oracle.py', import.meta.url).pathname;

interface Case {
  suspicion: number[];
  bad: number[];
  k: number | null;
  values: number[];
  valuesBad: number[];
  qs: number[];
  fraction: number;
}

/** Random cases with many ties (values on a coarse grid), small enough for the oracle's permutations. */
function makeCases(): Case[] {
  const rand = mulberry32(7);
  const cases: Case[] = [];
  for (let c = 0; c < 24; c++) {
    const small = c < 12;
    const n = small ? 4 + (c % 4) : 50 + 37 * c;
    const grid = c % 3 === 0 ? 3 : c % 3 === 1 ? 10 : 1000;
    const suspicion = Array.from({ length: n }, () => Math.floor(rand() * grid) / grid);
    const bad = Array.from({ length: n }, () => (rand() < 0.35 ? 1 : 0));
    if (!bad.includes(1)) bad[0] = 1;
    if (!bad.includes(0)) bad[n - 1] = 0;
    const m = 20 + c * 13;
    // + 0 turns -0 into 0, as JSON does on its way to the oracle.
    const values = Array.from({ length: m }, () => Math.round((rand() * 2 - 1) * grid) / grid + 0);
    cases.push({
      suspicion,
      bad,
      k: small ? 1 + (c % n) : null,
      values,
      valuesBad: values.map(() => (rand() < 0.3 ? 1 : 0)),
      qs: [0, 12.5, 30, 50, 70, 99.9, 100],
      fraction: [0.7, 0.3, 0.2, 1, 0.05][c % 5]!,
    });
  }
  return cases;
}

describe('quality metrics against a brute-force Python oracle', () => {
  const cases = makeCases();
  const oracle = JSON.parse(
    execFileSync('/usr/bin/python3', [ORACLE], { input: JSON.stringify(cases), maxBuffer: 1 << 26 }).toString(),
  ) as Array<{ auroc: number | null; precision?: number; percentiles: number[]; keepTop: number[]; bottom: number[]; keptNoise: number | null }>;

  it('AUROC equals the pair count with ties as one half', () => {
    for (const [i, c] of cases.entries()) {
      expect(auroc(c.suspicion, c.bad)).toBeCloseTo(oracle[i]!.auroc!, 12);
    }
  });

  it('precision at k is the mean over every tie order', () => {
    let checked = 0;
    for (const [i, c] of cases.entries()) {
      if (c.k === null) continue;
      expect(precisionAtK(c.suspicion, c.bad, c.k)).toBeCloseTo(oracle[i]!.precision!, 12);
      checked++;
    }
    expect(checked).toBe(12);
  });

  it('percentiles, top and bottom fractions and the kept-set noise match numpy', () => {
    for (const [i, c] of cases.entries()) {
      const o = oracle[i]!;
      c.qs.forEach((q, j) => expect(percentileLinear(c.values, q)).toBe(o.percentiles[j]));
      const top = keepTop(c.values, c.fraction);
      expect(Array.from(top)).toEqual(o.keepTop);
      expect(Array.from(bottom(c.values, c.fraction))).toEqual(o.bottom);
      const kn = keptNoiseRate(top, c.valuesBad);
      if (o.keptNoise === null) expect(kn).toBeNaN();
      else expect(kn).toBeCloseTo(o.keptNoise, 12);
    }
  });
});

describe('quality metrics: edge cases', () => {
  it('midranks average tied ranks', () => {
    expect(Array.from(midranks([3, 1, 3, 2, 3]))).toEqual([4, 1, 4, 2, 4]);
  });

  it('a perfect score has AUROC 1 and precision 1; a reversed one 0; a constant one 0.5 and the base rate', () => {
    const bad = [1, 1, 0, 0, 0, 0, 0, 0];
    const perfect = [9, 8, 1, 2, 3, 1, 2, 0];
    expect(auroc(perfect, bad)).toBe(1);
    expect(precisionAtNoiseRate(perfect, bad)).toBe(1);
    expect(auroc(perfect.map((v) => -v), bad)).toBe(0);
    expect(precisionAtNoiseRate(perfect.map((v) => -v), bad)).toBe(0);
    const flat = bad.map(() => 0.5);
    expect(auroc(flat, bad)).toBe(0.5);
    expect(precisionAtNoiseRate(flat, bad)).toBeCloseTo(0.25, 15);
  });

  it('an empty class gives NaN, bad input a clear error', () => {
    expect(auroc([1, 2, 3], [0, 0, 0])).toBeNaN();
    expect(() => auroc([1, NaN], [1, 0])).toThrow(/score 1 is NaN/);
    expect(() => auroc([1, 2], [1])).toThrow(/2 scores but 1 truth labels/);
    expect(() => precisionAtK([1, 2], [1, 0], 3)).toThrow(/k = 3/);
    expect(() => keepTop([1, 2], 0)).toThrow(/fraction 0/);
  });
});

describe('evaluateQuality', () => {
  it('reads the suspicious end of each score, splits AUROC by kind of noise and applies the filters', () => {
    // 10 rows: 2 swapped, 2 corrupted. "good" ranks every bad row lowest, "loss" is its mirror image.
    const labels = ['clean', 'swapped', 'clean', 'corrupted', 'clean', 'clean', 'swapped', 'clean', 'corrupted', 'clean'] as const;
    const good = [10, 1, 9, 2, 8, 7, 3, 6, 4, 5];
    const report = evaluateQuality({
      labels,
      columns: { good, loss: good.map((v) => -v), half: [5, 1, 5, 9, 5, 5, 2, 5, 9, 5] },
      scores: [
        { label: 'good', column: 'good', bad: 'low' },
        { label: 'loss', column: 'loss', bad: 'high' },
        { label: 'half', column: 'half', bad: 'low' },
        { label: 'random', column: 'random', bad: 'low' },
      ],
      filters: [
        { label: 'good top 60%', keep: [{ column: 'good', side: 'top', fraction: 0.6 }] },
        { label: 'all minus good bottom 20%', keep: [], drop: [{ column: 'good', side: 'bottom', fraction: 0.2 }] },
      ],
    });
    expect(report.counts).toEqual({ clean: 6, swapped: 2, corrupted: 2 });
    expect(report.noiseRate).toBe(0.4);
    const [g, l, h, r] = report.scores;
    expect(g!.auroc).toBe(1);
    expect(l!.auroc).toBe(1);
    expect(g!.precisionAtNoiseRate).toBe(1);
    // "half" catches the swapped rows and misses the corrupted ones entirely.
    expect(h!.aurocSwapped).toBe(1);
    expect(h!.aurocCorrupted).toBe(0);
    expect(r!.auroc).toBeGreaterThanOrEqual(0);
    expect(r!.auroc).toBeLessThanOrEqual(1);
    // numpy.percentile(good, 40) = 4.6: rows 10, 9, 8, 7, 6, 5 are kept, all clean.
    expect(report.filters[0]).toMatchObject({ kept: 6, keptNoiseRate: 0, badRemoved: 1 });
    // percentile(good, 20) = 2.8: rows 1, 2 dropped (both bad).
    expect(report.filters[1]).toMatchObject({ kept: 8, keptNoiseRate: 0.25, badRemoved: 0.5 });
    const md = formatQualityMarkdown(report);
    expect(md).toContain('| good | 1.000 | 1.000 | 1.000 | 1.000 |');
    expect(md).toContain('| good top 60% | 6 (60.0%) | 0.0% | 100.0% |');
  });

  it('names a missing column and a length mismatch', () => {
    const base = { labels: ['clean', 'swapped'] as const, scores: [], filters: [] };
    expect(() => evaluateQuality({ ...base, columns: {}, scores: [{ label: 'x', column: 'x', bad: 'low' }] })).toThrow(/no column "x"/);
    expect(() => evaluateQuality({ ...base, columns: { x: [1] }, scores: [{ label: 'x', column: 'x', bad: 'low' }] })).toThrow(/1 rows, the truth 2/);
  });
});
