import { readFileSync, writeFileSync, unlinkSync, mkdtempSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBundle, readHeads } from '../../src/model/bundle.js';
import { readOnnxSignature } from '../../src/model/onnx-signature.js';
import { encodeSafetensors, makeTinyBundle, tinyBundle } from '../helpers/bundles.js';

const work = mkdtempSync(join(tmpdir(), 'mimic-bundle-'));
let n = 0;
/** A private copy of the tiny bundle, to damage. */
const copy = () => makeTinyBundle(join(work, `b${n++}`), { seed: 1 });
const editJson = (dir: string, edit: (j: any) => void) => {
  const p = join(dir, 'model.json');
  const j = JSON.parse(readFileSync(p, 'utf8'));
  edit(j);
  writeFileSync(p, JSON.stringify(j));
};
const heads = (dir: string, t: Parameters<typeof encodeSafetensors>[0]) => writeFileSync(join(dir, 'heads.safetensors'), encodeSafetensors(t));
const f32 = (shape: number[], fill = 0.01) => ({ dtype: 'F32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill) });

beforeAll(async () => {
  await tinyBundle({ seed: 1 });
});

describe('loadBundle on an exported bundle', () => {
  it('reads the manifest, heads, paths and signatures', async () => {
    const b = await loadBundle(await tinyBundle({ seed: 1 }));
    expect(b.manifest).toMatchObject({
      format: 'mimic-clip/1',
      name: 'tiny-seed1',
      image: { size: 32, resize: 'shortest', interpolation: 'bicubic' },
      text: { tokenizer: 'clip-bpe', vocab: 'bpe_simple_vocab_16e6.txt.gz', context_length: 77, pad_id: 0 },
      check: 'check.safetensors',
    });
    expect(b.manifest.image.mean).toEqual([0.48145466, 0.4578275, 0.40821073]);
    expect(b.heads).toMatchObject({ dv: 64, dt: 48, p: 32 });
    expect(b.heads.visualProjection.length).toBe(64 * 32);
    expect(b.heads.textProjection.length).toBe(48 * 32);
    expect(b.heads.logitScale).toBeCloseTo(Math.log(1 / 0.07), 6);
    expect(b.paths.vocab).toBe(join(b.dir, 'bpe_simple_vocab_16e6.txt.gz'));
    expect(b.signatures.visual.inputs).toEqual([{ name: 'pixel_values', type: 'float32', shape: ['batch', 3, 32, 32] }]);
    expect(b.signatures.visual.outputs).toEqual([{ name: 'image_features', type: 'float32', shape: ['batch', 64] }]);
    expect(b.signatures.textual.inputs).toEqual([{ name: 'input_ids', type: 'int64', shape: ['batch', 'sequence'] }]);
    expect(b.signatures.textual.opsets).toContainEqual({ domain: '', version: 17 });
    expect(b.signatures.textual.externalData).toBe(false);
    expect(b.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('hashes content: a copy has the same hash, a changed file another', async () => {
    const a = await loadBundle(await tinyBundle({ seed: 1 }));
    const dir = await copy();
    expect((await loadBundle(dir)).hash).toBe(a.hash);
    editJson(dir, (j) => { j.name = 'renamed'; });
    expect((await loadBundle(dir)).hash).not.toBe(a.hash);
    const other = await loadBundle(await tinyBundle({ seed: 2 }));
    expect(other.hash).not.toBe(a.hash);
    expect((await loadBundle(dir, { hash: false })).hash).toBe('');
  });
});

describe('loadBundle errors name the file', () => {
  it('a folder that does not exist', () =>
    expect(loadBundle(join(work, 'nope'))).rejects.toMatchObject({ code: 'E_BUNDLE', message: expect.stringMatching(/nope is not a model bundle folder/) }));

  for (const f of ['model.json', 'visual.onnx', 'textual.onnx', 'heads.safetensors', 'bpe_simple_vocab_16e6.txt.gz', 'check.safetensors']) {
    it(`a missing ${f}`, async () => {
      const dir = await copy();
      unlinkSync(join(dir, f));
      await expect(loadBundle(dir)).rejects.toMatchObject({
        code: 'E_BUNDLE',
        file: join(dir, f),
        message: expect.stringContaining(`${join(dir, f)} is missing`),
      });
    });
  }

  it('model.json that is not JSON', async () => {
    const dir = await copy();
    writeFileSync(join(dir, 'model.json'), '{"format": ');
    await expect(loadBundle(dir)).rejects.toMatchObject({ code: 'E_BUNDLE', message: expect.stringMatching(/model\.json is not valid JSON/) });
  });

  const manifestCases: Array<[string, (j: any) => void, RegExp]> = [
    ['an unknown format', (j) => { j.format = 'mimic-clip/2'; }, /format is "mimic-clip\/2", this version of mimic reads "mimic-clip\/1"/],
    ['an unknown key', (j) => { j.image.sise = 32; }, /unknown key "image\.sise"/],
    ['an unknown top-level key', (j) => { j.heads = 'x'; }, /unknown key "heads"/],
    ['a size that is a string', (j) => { j.image.size = '32'; }, /image\.size must be a positive integer, got "32"/],
    ['two mean values', (j) => { j.image.mean = [0.5, 0.5]; }, /image\.mean must be three numbers/],
    ['a zero std', (j) => { j.image.std = [0.2, 0, 0.2]; }, /image\.std must be three positive numbers/],
    ['an unknown resize', (j) => { j.image.resize = 'crop'; }, /image\.resize must be one of "shortest", "squash", got "crop"/],
    ['another tokenizer', (j) => { j.text.tokenizer = 'sentencepiece'; }, /text\.tokenizer must be one of "clip-bpe"/],
    ['a vocab path outside the folder', (j) => { j.text.vocab = '../v.txt.gz'; }, /text\.vocab must be a file name inside the bundle folder/],
    ['a context of one token', (j) => { j.text.context_length = 1; }, /text\.context_length must be at least 2/],
    ['a negative pad id', (j) => { j.text.pad_id = -1; }, /text\.pad_id must be an integer >= 0/],
    ['no name', (j) => { delete j.name; }, /name must be a non-empty string/],
  ];
  for (const [what, edit, re] of manifestCases) {
    it(`model.json with ${what}`, async () => {
      const dir = await copy();
      editJson(dir, edit);
      await expect(loadBundle(dir)).rejects.toMatchObject({ code: 'E_BUNDLE', file: join(dir, 'model.json'), message: expect.stringMatching(re) });
    });
  }

  it('heads of the wrong dtype', async () => {
    const dir = await copy();
    heads(dir, {
      visual_projection: { dtype: 'F16', shape: [64, 32], data: new Uint8Array(64 * 32 * 2) },
      text_projection: f32([48, 32]),
      logit_scale: f32([], 2.6),
    });
    await expect(loadBundle(dir)).rejects.toMatchObject({
      code: 'E_BUNDLE',
      message: expect.stringMatching(/heads\.safetensors: visual_projection is F16, heads must be F32/),
    });
  });

  it('a transposed (Hugging Face orientation) projection', async () => {
    const dir = await copy();
    heads(dir, { visual_projection: f32([32, 64]), text_projection: f32([48, 32]), logit_scale: f32([], 2.6) });
    await expect(loadBundle(dir)).rejects.toMatchObject({
      code: 'E_BUNDLE',
      message: expect.stringMatching(/visual_projection \[32,64\] and text_projection \[48,32\] project to different sizes/),
      hint: expect.stringMatching(/must be transposed/),
    });
  });

  it('a projection whose rows disagree with the encoder\'s features', async () => {
    const dir = await copy();
    heads(dir, { visual_projection: f32([60, 32]), text_projection: f32([48, 32]), logit_scale: f32([], 2.6) });
    await expect(loadBundle(dir)).rejects.toMatchObject({
      code: 'E_ONNX',
      file: join(dir, 'visual.onnx'),
      message: expect.stringMatching(/output image_features has 64 features but visual_projection in heads\.safetensors has 60 rows/),
    });
  });

  it('a missing head, a non-scalar logit scale, a NaN', async () => {
    const dir = await copy();
    heads(dir, { visual_projection: f32([64, 32]), logit_scale: f32([], 2.6) });
    await expect(loadBundle(dir)).rejects.toThrow(/heads\.safetensors has no tensor "text_projection"/);
    heads(dir, { visual_projection: f32([64, 32]), text_projection: f32([48, 32]), logit_scale: f32([2], 2.6) });
    await expect(loadBundle(dir)).rejects.toThrow(/logit_scale must be a scalar, got shape \[2\]/);
    heads(dir, { visual_projection: f32([64, 32], NaN), text_projection: f32([48, 32]), logit_scale: f32([], 2.6) });
    await expect(loadBundle(dir)).rejects.toThrow(/visual_projection contains NaN/);
  });

  it('a truncated ONNX file', async () => {
    const dir = await copy();
    const p = join(dir, 'textual.onnx');
    const bytes = readFileSync(p);
    writeFileSync(p, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expect(loadBundle(dir)).rejects.toMatchObject({
      code: 'E_ONNX',
      file: p,
      message: expect.stringMatching(/textual\.onnx is not a valid ONNX model: .*(runs past the end|truncated)/),
      hint: expect.stringMatching(/truncated or corrupt/),
    });
  });

  it('an ONNX file that is not protobuf at all', async () => {
    const dir = await copy();
    writeFileSync(join(dir, 'visual.onnx'), 'this is not a model\n');
    await expect(loadBundle(dir)).rejects.toMatchObject({ code: 'E_ONNX', message: expect.stringMatching(/visual\.onnx is not a valid ONNX model/) });
  });

  it('encoders swapped', async () => {
    const dir = await copy();
    renameSync(join(dir, 'visual.onnx'), join(dir, 'tmp.onnx'));
    renameSync(join(dir, 'textual.onnx'), join(dir, 'visual.onnx'));
    renameSync(join(dir, 'tmp.onnx'), join(dir, 'textual.onnx'));
    await expect(loadBundle(dir)).rejects.toMatchObject({
      code: 'E_ONNX',
      message: expect.stringMatching(/visual\.onnx: has inputs \[input_ids\], expected exactly \[pixel_values\]/),
    });
  });

  it('an image size or context length the encoders do not take', async () => {
    const dir = await copy();
    editJson(dir, (j) => { j.image.size = 64; });
    await expect(loadBundle(dir)).rejects.toMatchObject({
      code: 'E_ONNX',
      message: expect.stringMatching(/visual\.onnx: input pixel_values has shape \[batch,3,32,32\], expected \[B,3,64,64\] from image\.size 64/),
    });
    // A fixed text axis names its length; a symbolic one takes any length (the encoders check it runs).
    const fixed = await makeTinyBundle(join(work, `b${n++}`), { seed: 1, textLength: 'fixed' });
    editJson(fixed, (j) => { j.text.context_length = 16; });
    await expect(loadBundle(fixed)).rejects.toThrow(/textual\.onnx: input input_ids has shape \[batch,77\], expected \[B,16\]/);
    editJson(dir, (j) => { j.image.size = 32; j.text.context_length = 16; });
    expect((await loadBundle(dir)).signatures.textual.inputs[0]!.shape).toEqual(['batch', 'sequence']);
  });

  it('a vocabulary that is not CLIP\'s', async () => {
    const dir = await copy();
    const v = join(dir, 'bpe_simple_vocab_16e6.txt.gz');
    writeFileSync(v, 'plain text');
    await expect(loadBundle(dir)).rejects.toMatchObject({ code: 'E_BUNDLE', message: expect.stringMatching(/is not a clip-bpe vocabulary: it does not decompress/) });
    const lines = gunzipSync(readFileSync(join(await tinyBundle({ seed: 1 }), 'bpe_simple_vocab_16e6.txt.gz'))).toString().split('\n');
    writeFileSync(v, gzipSync(lines.slice(0, 1000).join('\n')));
    await expect(loadBundle(dir)).rejects.toThrow(/has 999 merge lines, the tokenizer needs 48894/);
  });
});

describe('readOnnxSignature and readHeads directly', () => {
  it('reads a file whose graph declares no shapes', async () => {
    // Opset-13 Identity model with shapes [1]: the probe model the providers module uses, written by onnx.helper.
    const p = join(work, 'probe.onnx');
    writeFileSync(p, Buffer.from('CAgSCmdyYWQtbWltaWM6OwoQCgF4EgF5IghJZGVudGl0eRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAN', 'base64'));
    const s = await readOnnxSignature(p);
    expect(s).toMatchObject({ irVersion: 8, producer: 'grad-mimic', opsets: [{ domain: '', version: 13 }] });
    expect(s.inputs).toEqual([{ name: 'x', type: 'float32', shape: [1] }]);
    expect(s.outputs).toEqual([{ name: 'y', type: 'float32', shape: [1] }]);
  });

  it('readHeads returns the exporter\'s tensors', async () => {
    const h = await readHeads(join(await tinyBundle({ seed: 1 }), 'heads.safetensors'));
    expect(h.p).toBe(32);
    expect(Math.max(...h.visualProjection.map(Math.abs))).toBeGreaterThan(0);
  });
});
