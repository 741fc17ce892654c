/**
 * Resizing inside the image encoder (opt-in --source-size): the graph's resize against PIL (scripts/
 * preprocess_ref.py, the oracle) on 256-px JPEGs, the rows the CPU resized passing through untouched, and the
 * refusals. The "encoder" here is an Identity, so the graph's output is the normalised pixels themselves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { DataType, GraphBuilder, RESIZED_MASK_INPUT, withResizingUint8Input } from '../../src/model/onnx/index.js';
import { CLIP_MEAN, CLIP_STD, decodeResized, decodeRgb, normalizeHwcToChw, normalizeTable } from '../../src/image/index.js';
import { PYTHON, REPO } from '../helpers/bundles.js';
import { tempDir } from '../helpers/shards.js';
import { randomImage } from '../pipeline/helpers.js';

const t = tempDir('mimic-resize-input-');
afterAll(t.cleanup);
const S = 224;

function identityEncoder(opset = 17, extraOp?: string): Uint8Array {
  const gb = new GraphBuilder({ opset });
  const x = gb.input('pixel_values', DataType.FLOAT, ['batch', 3, S, S]);
  let y = gb.op('Identity', [x]);
  if (extraOp) y = gb.op(extraOp, [y], { axes: [1], keepdims: 1 });
  gb.output(y, 'image_features', DataType.FLOAT, ['batch', extraOp ? 1 : 3, S, S]);
  return gb.encode();
}

/** The graph's normalised output back to uint8 pixels (HWC), to compare in LSB. */
function toPixels(out: Float32Array, k: number): Uint8Array {
  const px = new Uint8Array(S * S * 3);
  const base = k * 3 * S * S;
  for (let c = 0; c < 3; c++) for (let p = 0; p < S * S; p++) px[p * 3 + c] = Math.round((out[base + c * S * S + p]! * CLIP_STD[c]! + CLIP_MEAN[c]!) * 255);
  return px;
}

const sizes: Array<[number, number]> = [[256, 256], [320, 256]];
const jpegs = new Map<string, Buffer[]>();

beforeAll(async () => {
  for (const [w, h] of sizes) {
    const list: Buffer[] = [];
    for (let i = 0; i < 6; i++) list.push(await randomImage(7000 + i * 13 + w, w, h));
    jpegs.set(`${w}x${h}`, list);
  }
});

describe('resize inside the image encoder', () => {
  for (const [w, h] of sizes) {
    it(`${w}×${h} JPEGs to ${S}: within 3 LSB of PIL, mean ≤ 0.35 LSB, not worse than libvips on average`, async () => {
      const model = withResizingUint8Input(identityEncoder(), { mean: CLIP_MEAN, std: CLIP_STD, from: { width: w, height: h }, size: S, resize: 'shortest' });
      const session = await ort.InferenceSession.create(model);
      const list = jpegs.get(`${w}x${h}`)!;
      const files = list.map((b, i) => {
        const p = t.path(`${w}x${h}-${i}.jpg`);
        writeFileSync(p, b);
        return p;
      });
      const refDir = t.path(`ref-${w}x${h}`);
      execFileSync(PYTHON, [join(REPO, 'scripts', 'preprocess_ref.py'), '--size', String(S), '--uint8', '--out', refDir, ...files]);
      const frames = new Uint8Array(list.length * w * h * 3);
      for (const [i, b] of list.entries()) frames.set((await decodeRgb(b)).pixels, i * w * h * 3);
      const out = (await session.run({
        pixel_values: new ort.Tensor('uint8', frames, [list.length, h, w, 3]),
        [RESIZED_MASK_INPUT]: new ort.Tensor('bool', new Uint8Array(list.length), [list.length]),
      })).image_features!.data as Float32Array;
      let max = 0;
      let sum = 0;
      let vipsSum = 0;
      for (let i = 0; i < list.length; i++) {
        const g = toPixels(out, i);
        const pil = readFileSync(join(refDir, `${i}.bin`));
        const vips = (await decodeResized(list[i]!, { size: S, mean: CLIP_MEAN, std: CLIP_STD, resize: 'shortest' })).pixels;
        for (let k = 0; k < g.length; k++) {
          const d = Math.abs(g[k]! - pil[k]!);
          max = Math.max(max, d);
          sum += d;
          vipsSum += Math.abs(vips[k]! - pil[k]!);
        }
      }
      const n = list.length * S * S * 3;
      if (process.env.MIMIC_TEST_PRINT) console.log(`${w}x${h}: graph vs PIL max ${max} mean ${(sum / n).toFixed(4)}; libvips vs PIL mean ${(vipsSum / n).toFixed(4)}`);
      expect(max).toBeLessThanOrEqual(3);
      expect(sum / n).toBeLessThanOrEqual(0.35);
      expect(sum / n).toBeLessThanOrEqual(vipsSum / n + 0.02);
      await session.release();
    });
  }

  it('rows flagged as resized on the CPU pass through exactly (S×S from the frame corner, normalised as on the host)', async () => {
    const model = withResizingUint8Input(identityEncoder(), { mean: CLIP_MEAN, std: CLIP_STD, from: { width: 256, height: 256 }, size: S, resize: 'shortest' });
    const session = await ort.InferenceSession.create(model);
    const odd = await randomImage(99, 300, 180);
    const small = (await decodeResized(odd, { size: S, mean: CLIP_MEAN, std: CLIP_STD, resize: 'shortest' })).pixels;
    const frames = new Uint8Array(2 * 256 * 256 * 3).fill(77);
    frames.set((await decodeRgb(jpegs.get('256x256')![0]!)).pixels, 0);
    for (let y = 0; y < S; y++) frames.set(small.subarray(y * S * 3, (y + 1) * S * 3), 256 * 256 * 3 + y * 256 * 3);
    const out = (await session.run({
      pixel_values: new ort.Tensor('uint8', frames, [2, 256, 256, 3]),
      [RESIZED_MASK_INPUT]: new ort.Tensor('bool', Uint8Array.of(0, 1), [2]),
    })).image_features!.data as Float32Array;
    const want = new Float32Array(3 * S * S);
    normalizeHwcToChw(small, S * S, normalizeTable({ mean: CLIP_MEAN, std: CLIP_STD }), want, 0);
    expect(Array.from(out.subarray(3 * S * S))).toEqual(Array.from(want));
    // The first row was resized by the graph: not simply its corner.
    const corner = new Float32Array(3 * S * S);
    const cornerPx = new Uint8Array(S * S * 3);
    for (let y = 0; y < S; y++) cornerPx.set(frames.subarray(y * 256 * 3, y * 256 * 3 + S * 3), y * S * 3);
    normalizeHwcToChw(cornerPx, S * S, normalizeTable({ mean: CLIP_MEAN, std: CLIP_STD }), corner, 0);
    expect(Array.from(out.subarray(0, 3 * S * S))).not.toEqual(Array.from(corner));
    await session.release();
  });

  it('refuses an encoder whose opset-17 graph uses an op that changed at 18, and bad sizes', () => {
    expect(() => withResizingUint8Input(identityEncoder(17, 'ReduceMean'), { mean: CLIP_MEAN, std: CLIP_STD, from: { width: 256, height: 256 }, size: S, resize: 'shortest' }))
      .toThrow(/ReduceMean, whose signature changed at opset 18/);
    expect(() => withResizingUint8Input(identityEncoder(), { mean: CLIP_MEAN, std: CLIP_STD, from: { width: 256, height: 256 }, size: 200, resize: 'shortest' }))
      .toThrow(/is not 200×200/);
    expect(() => withResizingUint8Input(identityEncoder(), { mean: CLIP_MEAN, std: CLIP_STD, from: { width: 0, height: 256 }, size: S, resize: 'shortest' }))
      .toThrow(/positive integers/);
  });

  it('decodeRgb gives the full-size RGB that decodeResized starts from (a same-size "resize" is the identity)', async () => {
    const b = await randomImage(5, 64, 48);
    const full = await decodeRgb(b);
    expect([full.source.width, full.source.height]).toEqual([64, 48]);
    const raw = await sharp(b).raw().toBuffer();
    expect(Buffer.compare(full.pixels, raw)).toBe(0);
  });
});
