import { afterAll, describe, expect, it } from 'vitest';
import { buildGradGraph, GRAD_GRAPH_OUTPUTS, type GradGraphOptions } from '../../src/mimic/grad-graph.js';
import { GradSession } from '../../src/mimic/grad-session.js';
import { exportGradGraph } from '../../src/mimic/export.js';
import { readGoldenFile } from '../../src/mimic/golden.js';
import { mimicFromFeatures } from '../../src/mimic/reference.js';
import * as ort from 'onnxruntime-node';
import { DataType, decodeModel } from '../../src/model/onnx/proto.js';
import type { MimicFeaturesInput } from '../../src/mimic/types.js';
import {
  GOLDEN,
  alignedInput,
  randomInput,
  roundedToFloat32,
  scoreMismatches,
  toGraphInputs,
  type Tolerance,
} from './helpers.js';

const sessions: GradSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

async function runGraph(input: MimicFeaturesInput, opts: GradGraphOptions = {}) {
  const gi = toGraphInputs(input);
  const session = await GradSession.create(buildGradGraph(gi.heads, opts));
  sessions.push(session);
  return session.run(gi.image, gi.text, gi.b);
}

/** The acceptance tolerance against float64 golden values. */
const GOLDEN_TOL: Tolerance = { rtol: 1e-4, atolZero: 1e-9 };
/**
 * float32 arithmetic: 1e-4 relative, or 1e-6 of the batch's largest value of the quantity. Projections are sums
 * of terms of either sign (two towers' terms in `both`); where they cancel almost completely the float32 rounding
 * of the terms (≈1e-7 of the batch's scale) dominates. The float64 default has no such floor.
 */
const FLOAT32_TOL: Tolerance = { rtol: 1e-4, atolZero: 1e-9, batchFloor: 1e-6 };
/** The float64 graph against the float64 reference on identical (float32) inputs: only the outputs are rounded. */
const FLOAT64_TOL: Tolerance = { rtol: 1e-6, atolZero: 1e-12 };

describe('gradient graph on onnxruntime (CPU)', () => {
  const golden = readGoldenFile(GOLDEN);

  for (const c of golden) {
    it(`matches golden case "${c.name}" to 1e-4 (default, float64 inside)`, async () => {
      expect(scoreMismatches(await runGraph(c.input), c.expected, GOLDEN_TOL)).toEqual([]);
    });
  }

  it('matches every golden case in float32 arithmetic within the documented tolerance', async () => {
    for (const c of golden) {
      expect(scoreMismatches(await runGraph(c.input, { precision: 'float32' }), c.expected, FLOAT32_TOL), c.name).toEqual([]);
    }
  });

  it('needs that tolerance only where terms cancel: 1e-4 relative fails in float32 on "wide" both', async () => {
    // Guards the tolerance's reason: if this starts passing, the float32 floor can go.
    const wide = golden.find((c) => c.name === 'wide');
    if (!wide) return; // another golden file of the same format may not hold this case
    const r = await runGraph(wide.input, { precision: 'float32' });
    const misses = scoreMismatches(r, wide.expected, GOLDEN_TOL);
    expect(misses.length).toBeGreaterThan(0);
    expect(misses.every((m) => m.startsWith('both.mimic'))).toBe(true);
  });

  const shapes = [
    { b: 1, dv: 6, dt: 5, p: 4, logitScale: 2.6593 },
    { b: 2, dv: 6, dt: 5, p: 4, logitScale: 2.6593 },
    { b: 17, dv: 12, dt: 9, p: 20, logitScale: Math.log(100) },
    // Scores of this batch include near-cancellations that a float32 scale factor inside the graph would spoil.
    { b: 200, dv: 30, dt: 20, p: 16, logitScale: 2.6593 },
  ];
  for (const [i, shape] of shapes.entries()) {
    it(`matches the float64 reference on random B=${shape.b} (float64 to 1e-6, float32 within tolerance)`, async () => {
      const input = roundedToFloat32(randomInput({ ...shape, seed: i }));
      const expected = mimicFromFeatures(input);
      expect(scoreMismatches(await runGraph(input), expected, FLOAT64_TOL)).toEqual([]);
      expect(scoreMismatches(await runGraph(input, { precision: 'float32' }), expected, FLOAT32_TOL)).toEqual([]);
    });
  }

  it('keeps the tiny losses and gradients of a nearly converged batch (logit scale 100)', async () => {
    const input = roundedToFloat32(alignedInput({ b: 24, d: 16, p: 16, logitScale: Math.log(100), seed: 5, noise: 0.01 }));
    const expected = mimicFromFeatures(input);
    // The batch really is that converged: naive log-sum-exp or 1 − p_ii would return 0 or noise here.
    expect(Math.max(...expected.loss)).toBeLessThan(1e-8);
    expect(Math.min(...expected.loss)).toBeGreaterThan(0);
    expect(scoreMismatches(await runGraph(input), expected, FLOAT64_TOL)).toEqual([]);
    const f32 = await runGraph(input, { precision: 'float32' });
    expect(scoreMismatches(f32, expected, FLOAT32_TOL)).toEqual([]);
  });

  it('builds the same graph at opsets 13 and 18 (reductions take axes as inputs from 18)', async () => {
    const input = roundedToFloat32(randomInput({ b: 9, dv: 8, dt: 7, p: 6, logitScale: 3, seed: 21 }));
    const expected = mimicFromFeatures(input);
    for (const opset of [13, 18]) {
      const gi = toGraphInputs(input);
      expect(decodeModel(buildGradGraph(gi.heads, { opset })).opsetImport).toEqual([{ domain: '', version: opset }]);
      expect(scoreMismatches(await runGraph(input, { opset }), expected, FLOAT64_TOL), `opset ${opset}`).toEqual([]);
    }
    expect(() => buildGradGraph(toGraphInputs(input).heads, { opset: 12 })).toThrowError(/opset 12 is below 13/);
  });

  it('scores a batch of one as zero loss and zero gradients, with finite outputs', async () => {
    for (const precision of ['float32', 'float64'] as const) {
      const r = await runGraph(randomInput({ b: 1, dv: 5, dt: 4, p: 3, logitScale: 2, seed: 9 }), { precision });
      for (const name of ['loss'] as const) expect(Array.from(r[name])).toEqual([0]);
      for (const l of [r.visual, r.text, r.both]) {
        expect([l.gradNorm[0], l.mimicProj[0], l.mimicCos[0]]).toEqual([0, 0, 0]);
      }
    }
  });

  it('scores a zero direction as 0 for that layer only', async () => {
    const input = roundedToFloat32(randomInput({ b: 6, dv: 5, dt: 4, p: 3, logitScale: 2, seed: 10 }));
    input.refVisualProjection = input.visualProjection.map((row) => [...row]);
    const r = await runGraph(input);
    expect(Array.from(r.visual.mimicProj).every((v) => v === 0)).toBe(true);
    expect(Array.from(r.visual.mimicCos).every((v) => v === 0)).toBe(true);
    expect(Array.from(r.visual.gradNorm).every((v) => v > 0)).toBe(true);
    expect(Array.from(r.text.mimicProj).some((v) => v !== 0)).toBe(true);
    expect(scoreMismatches(r, mimicFromFeatures(input), FLOAT64_TOL)).toEqual([]);
  });

  it('declares B-symbolic float32 inputs and exactly the score outputs, and labels itself', () => {
    const gi = toGraphInputs(randomInput({ b: 2, dv: 7, dt: 6, p: 5, logitScale: 2, seed: 11 }));
    const m = decodeModel(buildGradGraph(gi.heads));
    expect(m.graph.input.map((v) => [v.name, v.type?.tensorType?.shape?.map((d) => d.dimParam ?? d.dimValue)])).toEqual([
      ['image_features', ['B', 7]],
      ['text_features', ['B', 6]],
    ]);
    expect(m.graph.output.map((v) => v.name)).toEqual([...GRAD_GRAPH_OUTPUTS]);
    expect(m.opsetImport).toEqual([{ domain: '', version: 17 }]);
    const meta = Object.fromEntries((m.metadataProps ?? []).map((e) => [e.key, e.value]));
    expect(meta).toMatchObject({ format: 'mimic-grad/1', dv: '7', dt: '6', p: '5', precision: 'float64' });
  });

  it('refuses heads of the wrong size with a typed error', () => {
    const gi = toGraphInputs(randomInput({ b: 2, dv: 7, dt: 6, p: 5, logitScale: 2, seed: 12 }));
    expect(() => buildGradGraph({ ...gi.heads, refTextProjection: new Float32Array(3) })).toThrowError(
      /refTextProjection has 3 values, expected 30/,
    );
  });

  it('exports the graph for a proxy/reference pair and refuses heads of different shapes', async () => {
    const gi = toGraphInputs(randomInput({ b: 3, dv: 7, dt: 6, p: 5, logitScale: 2, seed: 14 }));
    const proxy = { visualProjection: gi.heads.visualProjection, textProjection: gi.heads.textProjection, logitScale: 2, dv: 7, dt: 6, p: 5 };
    const reference = { ...proxy, visualProjection: gi.heads.refVisualProjection, textProjection: gi.heads.refTextProjection };
    expect(Buffer.from(exportGradGraph(proxy, reference)).equals(Buffer.from(buildGradGraph(gi.heads)))).toBe(true);
    const wider = { ...reference, p: 6, visualProjection: new Float32Array(42), textProjection: new Float32Array(36) };
    expect(() => exportGradGraph(proxy, wider)).toThrowError(
      expect.objectContaining({ code: 'E_BUNDLE', message: expect.stringMatching(/\[7,5\] and \[6,5\] but the reference's are \[7,6\]/) }),
    );
  });

  it('refuses a batch whose features do not match the graph', async () => {
    const gi = toGraphInputs(randomInput({ b: 3, dv: 7, dt: 6, p: 5, logitScale: 2, seed: 13 }));
    const session = await GradSession.create(buildGradGraph(gi.heads));
    sessions.push(session);
    await expect(session.run(gi.image, gi.text, 4)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(GradSession.create(new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ code: 'E_ONNX' });
    // A session over another model is refused when wrapped.
    const other = await ort.InferenceSession.create(buildGradGraph(gi.heads));
    expect(GradSession.wrap(other).dv).toBe(7);
    const { GraphBuilder } = await import('../../src/model/onnx/builder.js');
    const g = new GraphBuilder({ opset: 17 });
    g.output(g.input('x', DataType.FLOAT, ['B', 3]), 'y', DataType.FLOAT, ['B', 3]);
    const notGrad = await ort.InferenceSession.create(g.encode());
    expect(() => GradSession.wrap(notGrad)).toThrowError(/no input image_features/);
    await other.release();
    await notGrad.release();
  });
});
