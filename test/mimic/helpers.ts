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

/**
 * A nearly converged batch: text features are their image's plus `noise`, through the same head, so p ≈ I and
 * losses and gradients are tiny (down to 1e-20 at logit scale 100).
 */
export function alignedInput(o: { b: number; d: number; p: number; logitScale: number; seed: number; noise: number }): MimicFeaturesInput {
  const base = randomInput({ b: o.b, dv: o.d, dt: o.d, p: o.p, logitScale: o.logitScale, seed: o.seed });
  const rnd = normalGenerator(o.seed + 1);
  return {
    ...base,
    textProjection: base.visualProjection,
    textFeatures: base.imageFeatures.map((row) => row.map((v) => v + o.noise * rnd())),
  };
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
  /** Optional absolute floor for every value. */
  atol?: number;
  /**
   * Optional floor relative to the batch: this times the largest |expected| of the same quantity in the batch.
   * float32 sums carry errors proportional to their terms, which the batch's largest values bound; a score that
   * is a near-complete cancellation of such terms can only be that accurate.
   */
  batchFloor?: number;
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
    let largest = 0;
    for (let i = 0; i < e.length; i++) largest = Math.max(largest, Math.abs(e[i]!));
    const floor = (tol.atol ?? 0) + (tol.batchFloor ?? 0) * largest;
    for (let i = 0; i < e.length; i++) {
      const av = a[i]!;
      const ev = e[i]!;
      const allowed = ev === 0 ? Math.max(tol.atolZero, floor) : tol.rtol * Math.abs(ev) + floor;
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

/** The float32 heads and features of a plain-array input, as the gradient graph takes them. */
export function toGraphInputs(input: MimicFeaturesInput): {
  heads: import('../../src/mimic/grad-graph.js').GradGraphHeads;
  image: Float32Array;
  text: Float32Array;
  b: number;
} {
  const flat = (m: number[][]): Float32Array => Float32Array.from(m.flat());
  return {
    heads: {
      visualProjection: flat(input.visualProjection),
      textProjection: flat(input.textProjection),
      refVisualProjection: flat(input.refVisualProjection),
      refTextProjection: flat(input.refTextProjection),
      logitScale: input.logitScale,
      dv: input.visualProjection.length,
      dt: input.textProjection.length,
      p: input.visualProjection[0]!.length,
    },
    image: flat(input.imageFeatures),
    text: flat(input.textFeatures),
    b: input.imageFeatures.length,
  };
}

/** The input with every value rounded to float32, so a float64 reference sees exactly what the graph sees. */
export function roundedToFloat32(input: MimicFeaturesInput): MimicFeaturesInput {
  const r = (m: number[][]): number[][] => m.map((row) => row.map(Math.fround));
  return {
    imageFeatures: r(input.imageFeatures),
    textFeatures: r(input.textFeatures),
    visualProjection: r(input.visualProjection),
    textProjection: r(input.textProjection),
    refVisualProjection: r(input.refVisualProjection),
    refTextProjection: r(input.refTextProjection),
    logitScale: input.logitScale,
  };
}

/** Largest relative error per quantity (for diagnostics in failure messages). */
export function worstRelative(actual: MimicScores<Vec>, expected: MimicScores<Vec>): Record<string, number> {
  const out: Record<string, number> = {};
  const rel = (a: Vec, e: Vec, k: string): void => {
    let w = 0;
    for (let i = 0; i < e.length; i++) if (e[i] !== 0) w = Math.max(w, Math.abs(a[i]! - e[i]!) / Math.abs(e[i]!));
    out[k] = w;
  };
  rel(actual.loss, expected.loss, 'loss');
  rel(actual.clipSim, expected.clipSim, 'clipSim');
  for (const l of MIMIC_LAYERS) {
    rel(actual[l].gradNorm, expected[l].gradNorm, `${l}.gradNorm`);
    rel(actual[l].mimicProj, expected[l].mimicProj, `${l}.mimicProj`);
    rel(actual[l].mimicCos, expected[l].mimicCos, `${l}.mimicCos`);
  }
  return out;
}
