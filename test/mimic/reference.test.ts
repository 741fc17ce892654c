import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mimicFromFeatures } from '../../src/index.js';
import { readGoldenFile } from '../../src/mimic/golden.js';
import { isMimicError } from '../../src/errors.js';
import { bruteForceScores } from './brute-force.js';
import { GOLDEN, randomInput, scoreMismatches } from './helpers.js';

const FLOAT64 = { rtol: 1e-6, atolZero: 1e-9 };

describe('mimicFromFeatures (float64 closed form)', () => {
  const golden = readGoldenFile(GOLDEN);

  it('reads every golden case', () => {
    expect(golden.length).toBeGreaterThanOrEqual(4);
    expect(golden.map((c) => c.name)).toContain('single');
  });

  for (const c of golden) {
    it(`matches golden case "${c.name}" to 1e-6`, () => {
      expect(scoreMismatches(mimicFromFeatures(c.input), c.expected, FLOAT64)).toEqual([]);
    });
  }

  it('matches the brute-force [B,B,P] computation on random batches', () => {
    const shapes = [
      { b: 2, dv: 3, dt: 4, p: 5, logitScale: 2.6593 },
      { b: 7, dv: 9, dt: 6, p: 4, logitScale: Math.log(100) },
      { b: 13, dv: 5, dt: 8, p: 11, logitScale: 0.5 },
      { b: 24, dv: 16, dt: 12, p: 8, logitScale: 3.2 },
    ];
    shapes.forEach((shape, seed) => {
      const input = randomInput({ ...shape, seed: 100 + seed, featureScale: 1 + seed });
      expect(scoreMismatches(mimicFromFeatures(input), bruteForceScores(input), FLOAT64), JSON.stringify(shape)).toEqual([]);
    });
  });

  it('gives a batch of one zero loss and zero gradients', () => {
    const r = mimicFromFeatures(randomInput({ b: 1, dv: 4, dt: 3, p: 2, logitScale: 2, seed: 7 }));
    expect(r.loss).toEqual([0]);
    for (const layer of [r.visual, r.text, r.both]) {
      expect(layer).toEqual({ gradNorm: [0], mimicProj: [0], mimicCos: [0] });
    }
    expect(Math.abs(r.clipSim[0]!)).toBeLessThanOrEqual(1);
  });

  it('rejects inconsistent shapes with a typed error', () => {
    const input = randomInput({ b: 3, dv: 4, dt: 3, p: 2, logitScale: 2, seed: 8 });
    const bad = { ...input, refTextProjection: input.refTextProjection.slice(1) };
    expect(() => mimicFromFeatures(bad)).toThrowError(/reference heads/);
    const ragged = { ...input, imageFeatures: [[1, 2, 3, 4], [1, 2, 3]] };
    try {
      mimicFromFeatures(ragged);
      expect.unreachable();
    } catch (e) {
      expect(isMimicError(e) && e.code).toBe('E_USAGE');
      expect((e as Error).message).toMatch(/imageFeatures: row 1 has 3 entries, expected 4/);
    }
  });
});

describe('mimicFromFeatures against PyTorch autograd (scripts/mimic_reference.py)', () => {
  it('matches per-sample autograd gradients on the generated suite (B=1, B=2, duplicates, zero directions, ...)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mimic-ref-'));
    try {
      const out = join(dir, 'cases.json');
      const script = new URL('../../scripts/mimic_reference.py', import.meta.url).pathname;
      const r = spawnSync('/usr/bin/python3', [script, '--out', out, '--seed', '3'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const cases = readGoldenFile(out);
      expect(cases.map((c) => c.name)).toEqual(
        expect.arrayContaining(['b1', 'b2', 'b8_duplicates', 'b6_zero_dir_both', 'b16_converged']),
      );
      for (const c of cases) {
        expect(scoreMismatches(mimicFromFeatures(c.input), c.expected, FLOAT64), c.name).toEqual([]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
