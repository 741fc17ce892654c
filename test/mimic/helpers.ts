/** Shared by the mimic tests: seeded random inputs and a scores comparison that names every mismatch. */
import { MIMIC_LAYERS, type MimicFeaturesInput, type MimicScores } from '../../src/mimic/types.js';

export const GOLDEN = new URL('../../../shared/golden/heads-v1.json', import.meta.url).pathname;

/** A seeded normal generator (mulberry32 + Box–Muller), so failures reproduce. */
export function normalGenerator(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform() + 1e-300)) * Math.cos(2 * Math.PI * uniform());
}

export interface RandomCaseOptions {
  b: number;
  dv: number;
  dt: number;
  p: number;
  logitScale: number;
  seed: number;
  /** Size of W_ref − W relative to W. */
  refStep?: number;
  featureScale?: number;
}

export function randomInput(o: RandomCaseOptions): MimicFeaturesInput {
  const rnd = normalGenerator(o.seed);
  const mat = (r: number, c: number, scale: number): number[][] =>
    Array.from({ length: r }, () => Array.from({ length: c }, () => scale * rnd()));
  const wv = mat(o.dv, o.p, 1 / Math.sqrt(o.dv));
  const wt = mat(o.dt, o.p, 1 / Math.sqrt(o.dt));
  const step = o.refStep ?? 0.1;
  const plus = (w: number[][], d: number): number[][] => w.map((row) => row.map((v) => v + (step * rnd()) / Math.sqrt(d)));
  return {
    imageFeatures: mat(o.b, o.dv, o.featureScale ?? 1),
    textFeatures: mat(o.b, o.dt, o.featureScale ?? 1),
    visualProjection: wv,
    textProjection: wt,
    refVisualProjection: plus(wv, o.dv),
    refTextProjection: plus(wt, o.dt),
    logitScale: o.logitScale,
  };
}

export interface Tolerance {
  /** Relative tolerance. */
  rtol: number;
  /** Absolute tolerance where the expected value is exactly 0. */
  atolZero: number;
  /** Optional absolute floor for every value (for float32 results of quantities near 0). */
  atol?: number;
}

type Vec = ArrayLike<number>;

/** Every entry of every per-sample vector that misses the tolerance, as readable lines (empty when all pass). */
export function scoreMismatches(actual: MimicScores<Vec>, expected: MimicScores<Vec>, tol: Tolerance): string[] {
  const out: string[] = [];
  const check = (a: Vec, e: Vec, what: string): void => {
    if (a.length !== e.length) {
      out.push(`${what}: length ${a.length}, expected ${e.length}`);
      return;
    }
    for (let i = 0; i < e.length; i++) {
      const av = a[i]!;
      const ev = e[i]!;
      const allowed = ev === 0 ? Math.max(tol.atolZero, tol.atol ?? 0) : tol.rtol * Math.abs(ev) + (tol.atol ?? 0);
      if (!(Math.abs(av - ev) <= allowed)) out.push(`${what}[${i}] = ${av}, expected ${ev} (allowed ±${allowed.toExponential(2)})`);
    }
  };
  check(actual.loss, expected.loss, 'loss');
  check(actual.clipSim, expected.clipSim, 'clipSim');
  for (const layer of MIMIC_LAYERS) {
    check(actual[layer].gradNorm, expected[layer].gradNorm, `${layer}.gradNorm`);
    check(actual[layer].mimicProj, expected[layer].mimicProj, `${layer}.mimicProj`);
    check(actual[layer].mimicCos, expected[layer].mimicCos, `${layer}.mimicCos`);
  }
  return out;
}
