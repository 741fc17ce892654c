import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadBundle, type Bundle } from '../../src/model/bundle.js';
import { normalizeHwcToChw, normalizeTable } from '../../src/image/normalize.js';
import { exportFusedModel, exportGradGraph, writeModel } from '../../src/mimic/export.js';
import { fuseBundleGraph } from '../../src/mimic/fused.js';
import { GradSession, scoresFromOutputs } from '../../src/mimic/grad-session.js';
import { buildGradGraph, GRAD_GRAPH_OUTPUTS } from '../../src/mimic/grad-graph.js';
import { gradGraphHeads } from '../../src/mimic/export.js';
import { withUint8Input } from '../../src/model/onnx/uint8-input.js';
import { tinyBundle } from '../helpers/bundles.js';
import { normalGenerator, scoreMismatches } from './helpers.js';
import { onnxTool, onnxToolJson } from '../onnx/python.js';

const work = mkdtempSync(join(tmpdir(), 'mimic-fused-'));
const opened: ort.InferenceSession[] = [];
let proxy: Bundle;
let reference: Bundle;

const B = 5;
const S = 32;
const L = 77;

async function session(model: string | Uint8Array): Promise<ort.InferenceSession> {
  const s = typeof model === 'string' ? await ort.InferenceSession.create(model, { intraOpNumThreads: 2 }) : await ort.InferenceSession.create(model, { intraOpNumThreads: 2 });
  opened.push(s);
  return s;
}

/** Random uint8 HWC images, their normalised CHW floats as the CPU path makes them, and token ids. */
function batch(seed: number, b = B) {
  const rnd = normalGenerator(seed);
  const hwc = Uint8Array.from({ length: b * S * S * 3 }, () => Math.min(255, Math.max(0, Math.round(128 + 70 * rnd()))));
  const table = normalizeTable(proxy.manifest.image);
  const chw = new Float32Array(b * 3 * S * S);
  for (let i = 0; i < b; i++) normalizeHwcToChw(hwc.subarray(i * S * S * 3), S * S, table, chw, i * 3 * S * S);
  const ids = new BigInt64Array(b * L);
  for (let i = 0; i < b; i++) {
    const len = 3 + ((i * 7) % 20);
    ids[i * L] = 49406n;
    for (let j = 1; j < len; j++) ids[i * L + j] = BigInt(1 + (Math.floor(Math.abs(rnd()) * 20000) % 49000));
    ids[i * L + len] = 49407n; // end of text: the pooled position
  }
  return {
    hwc,
    pixels: new ort.Tensor('float32', chw, [b, 3, S, S]),
    tokens: new ort.Tensor('int64', ids, [b, L]),
  };
}

beforeAll(async () => {
  proxy = await loadBundle(await tinyBundle({ seed: 1 }));
  reference = await loadBundle(await tinyBundle({ seed: 1, perturb: 0.05 }));
});

afterAll(async () => {
  for (const s of opened) await s.release();
  rmSync(work, { recursive: true, force: true });
});

/** Scores through three sessions, as the pipeline runs them. */
async function separate(b: ReturnType<typeof batch>, n = B) {
  const vis = await session(proxy.paths.visual);
  const txt = await session(proxy.paths.textual);
  const grad = await GradSession.create(exportGradGraph(proxy.heads, reference.heads));
  const img = (await vis.run({ pixel_values: b.pixels })).image_features!.data as Float32Array;
  const tf = (await txt.run({ input_ids: b.tokens })).text_features!.data as Float32Array;
  const r = await grad.run(img, tf, n);
  await grad.release();
  return { scores: r, imageFeatures: img };
}

describe('fused model (encoders + gradient graph in one ONNX file)', () => {
  it('gives the scores of the separate sessions, from pixel_values and input_ids', async () => {
    const b = batch(1);
    const path = join(work, 'fused.onnx');
    writeModel(path, exportFusedModel(proxy, reference.heads));
    const fused = await session(path);
    expect(fused.inputNames).toEqual(['pixel_values', 'input_ids']);
    expect(fused.outputNames).toEqual([...GRAD_GRAPH_OUTPUTS]);
    const got = scoresFromOutputs(await fused.run({ pixel_values: b.pixels, input_ids: b.tokens }), B);
    const want = (await separate(b)).scores;
    // The same kernels on the same values: bit-identical on the CPU EP (onnxruntime 1.29 fuses nothing across parts).
    expect(scoreMismatches(got, want, { rtol: 0, atolZero: 0 })).toEqual([]);
    expect(Array.from(got.visual.gradNorm).every((v) => v > 0)).toBe(true);
  });

  it('passes onnx.checker', () => {
    const path = join(work, 'fused-check.onnx');
    writeModel(path, exportFusedModel(proxy, reference.heads));
    const r = onnxToolJson<{ ok: boolean; opset: [string, number][] }>('check', path);
    expect(r.ok).toBe(true);
    expect(r.opset).toContainEqual(['', 17]);
  });

  it('reads encoders whose weights are external data (given their folder), and says so otherwise', async () => {
    const ext = join(work, 'ext', 'visual.onnx'); // its weights go to visual.onnx.data beside it
    mkdirSync(dirname(ext), { recursive: true });
    const r = onnxTool('externalize', proxy.paths.visual, ext);
    expect(r.status, r.stderr).toBe(0);
    const heads = gradGraphHeads(proxy.heads, reference.heads);
    const textual = readFileSync(proxy.paths.textual);
    const bytes = readFileSync(ext);
    expect(() => fuseBundleGraph(bytes, textual, heads)).toThrowError(
      expect.objectContaining({ code: 'E_ONNX', message: expect.stringMatching(/external data/) }),
    );
    const fused = await session(fuseBundleGraph({ bytes, baseDir: dirname(ext) }, textual, heads));
    const b = batch(2);
    const got = scoresFromOutputs(await fused.run({ pixel_values: b.pixels, input_ids: b.tokens }), B);
    expect(scoreMismatches(got, (await separate(b)).scores, { rtol: 0, atolZero: 0 })).toEqual([]);
  });

  it('refuses a gradient graph of another opset, and builds one at the encoders\' opset from heads', () => {
    const heads = gradGraphHeads(proxy.heads, reference.heads);
    const v = readFileSync(proxy.paths.visual);
    const t = readFileSync(proxy.paths.textual);
    expect(() => fuseBundleGraph(v, t, buildGradGraph(heads, { opset: 16 }))).toThrowError(
      expect.objectContaining({ code: 'E_ONNX', hint: expect.stringMatching(/opset: 17/) }),
    );
    expect(fuseBundleGraph(v, t, buildGradGraph(heads, { opset: 17 })).length).toBeGreaterThan(v.length);
  });
});

describe('uint8 pixel input', () => {
  it('gives bit-identical image features to the float32 path (NHWC and NCHW)', async () => {
    const b = batch(3);
    const float = await session(proxy.paths.visual);
    const want = (await float.run({ pixel_values: b.pixels })).image_features!.data as Float32Array;
    const opts = { mean: proxy.manifest.image.mean, std: proxy.manifest.image.std };
    const nhwc = await session(withUint8Input(readFileSync(proxy.paths.visual), { ...opts, layout: 'NHWC' }));
    expect(nhwc.inputMetadata[0]).toMatchObject({ name: 'pixel_values', type: 'uint8', shape: ['batch', S, S, 3] });
    const got = (await nhwc.run({ pixel_values: new ort.Tensor('uint8', b.hwc, [B, S, S, 3]) })).image_features!.data;
    expect(Array.from(got as Float32Array)).toEqual(Array.from(want));

    const chwU8 = new Uint8Array(b.hwc.length);
    for (let i = 0; i < B; i++) for (let p = 0; p < S * S; p++) for (let c = 0; c < 3; c++) chwU8[i * 3 * S * S + c * S * S + p] = b.hwc[i * S * S * 3 + p * 3 + c]!;
    const nchw = await session(withUint8Input(readFileSync(proxy.paths.visual), { ...opts, layout: 'NCHW' }));
    const got2 = (await nchw.run({ pixel_values: new ort.Tensor('uint8', chwU8, [B, 3, S, S]) })).image_features!.data;
    expect(Array.from(got2 as Float32Array)).toEqual(Array.from(want));
  });

  it('makes a fused model that takes uint8 NHWC pixels', async () => {
    const b = batch(4);
    const fused = await session(exportFusedModel(proxy, reference.heads, { uint8Pixels: 'NHWC' }));
    const got = scoresFromOutputs(await fused.run({ pixel_values: new ort.Tensor('uint8', b.hwc, [B, S, S, 3]), input_ids: b.tokens }), B);
    expect(scoreMismatches(got, (await separate(b)).scores, { rtol: 0, atolZero: 0 })).toEqual([]);
  });

  it('refuses a model that has no single float [B,3,H,W] input', () => {
    expect(() => withUint8Input(readFileSync(proxy.paths.textual), { mean: [0, 0, 0], std: [1, 1, 1], layout: 'NHWC' })).toThrowError(
      expect.objectContaining({ code: 'E_ONNX', message: expect.stringMatching(/input_ids is not float32/) }),
    );
  });
});
