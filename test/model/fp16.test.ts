/**
 * fp16 encoder variants: the float32 → float16 rounding against numpy's, the converted graphs against onnx's own
 * checker and against the float32 encoders on onnxruntime's CPU EP (which runs float16 graphs through inserted
 * casts, so this measures the rounding of weights and activations; the GPU comparison is scripts/bench-gpu's),
 * and the bundle contract (model.json variants.fp16: validated, checked like the float32 files, hashed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addFloat16Variant, encoderFiles, loadBundle, openEncoders } from '../../src/model/index.js';
import { fromHalfBits, toHalfBits, toFloat16, parseModel, DataType } from '../../src/model/onnx/index.js';
import { normalizeHwcToChw, normalizeTable } from '../../src/image/index.js';
import { makeTinyBundle, PYTHON, REPO } from '../helpers/bundles.js';
import { tempDir } from '../helpers/shards.js';

const t = tempDir('mimic-fp16-');
afterAll(t.cleanup);

let dir: string;
beforeAll(async () => {
  dir = await makeTinyBundle(t.path('b'), { seed: 5 });
  await addFloat16Variant(dir);
}, 300_000);

describe('float32 → float16 bits', () => {
  it('rounds to nearest even like numpy, with subnormals, ties, overflow, infinities and NaN', () => {
    const values: number[] = [0, -0, 1, -1, 65504, 65519.99, 65520, 1e6, -1e6, 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9, 3.0e-8,
      1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, 2049, 2051, 0.1, 1 / 3, Math.PI, Infinity, -Infinity];
    let x = 12345;
    for (let i = 0; i < 2000; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      values.push(((x / 2 ** 32) - 0.5) * 2 ** ((i % 40) - 24));
    }
    const f32 = Float32Array.from(values);
    const py = spawnSync(PYTHON, ['-c', 'import sys, numpy as np; a = np.frombuffer(sys.stdin.buffer.read(), dtype="<f4"); '
      + 'import warnings; warnings.simplefilter("ignore"); sys.stdout.write(" ".join(map(str, a.astype(np.float16).view(np.uint16).tolist())))'],
    { input: Buffer.from(f32.buffer), encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const want = py.stdout.split(' ').map(Number);
    const got = Array.from(f32, toHalfBits);
    expect(got).toEqual(want);
    expect(toHalfBits(NaN) & 0x7c00).toBe(0x7c00);
    expect(toHalfBits(NaN) & 0x3ff).not.toBe(0);
    for (const h of [0x3c00, 0x7bff, 0x0001, 0x8400, 0x7c00]) expect(toHalfBits(fromHalfBits(h))).toBe(h);
  });
});

describe('toFloat16 on a real encoder', () => {
  it('keeps float32 inputs and outputs, makes every weight float16, and passes onnx.checker', () => {
    const files = encoderFiles({ paths: { visual: '', textual: '', variants: { fp16: { visual: join(dir, 'visual.fp16.onnx'), textual: join(dir, 'textual.fp16.onnx') } } } } as never, 'fp16');
    for (const f of [files.visual, files.textual]) {
      const m = parseModel(readFileSync(f), f);
      expect(m.graph.input.every((v) => v.type?.tensorType?.elemType !== DataType.FLOAT16)).toBe(true);
      expect(m.graph.output.map((v) => v.type?.tensorType?.elemType)).toEqual([DataType.FLOAT]);
      expect(m.graph.initializer.some((i) => i.dataType === DataType.FLOAT)).toBe(false);
      expect(m.graph.initializer.filter((i) => i.dataType === DataType.FLOAT16).length).toBeGreaterThan(5);
      const r = spawnSync(PYTHON, ['-c', 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print("ok")', f], { encoding: 'utf8' });
      expect(r.stdout.trim(), r.stderr).toBe('ok');
    }
  });

  it('refuses graphs whose float inputs must stay float32 (Resize)', () => {
    const m = parseModel(readFileSync(join(dir, 'visual.onnx')));
    m.graph.node.push({ input: ['a', '', 's'], output: ['b'], opType: 'Resize', attribute: [], name: 'r' });
    expect(() => toFloat16(m, 'x')).toThrow(/Resize/);
  });

  it('gives features within 2e-3 (image) and 5e-3 (text) of float32 on the CPU EP, max error relative to the largest feature', async () => {
    const b = await loadBundle(dir, { hash: false });
    const S = b.manifest.image.size;
    const L = b.manifest.text.context_length;
    const B = 6;
    const u8 = new Uint8Array(B * S * S * 3);
    let x = 7;
    for (let i = 0; i < u8.length; i++) u8[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    const f = new Float32Array(B * 3 * S * S);
    const table = normalizeTable(b.manifest.image);
    for (let k = 0; k < B; k++) normalizeHwcToChw(u8.subarray(k * S * S * 3), S * S, table, f, k * 3 * S * S);
    const ids = new BigInt64Array(B * L);
    for (let k = 0; k < B; k++) {
      ids[k * L] = 49406n;
      for (let j = 1; j <= 4 + k; j++) ids[k * L + j] = BigInt(400 + 97 * j * (k + 1));
      ids[k * L + 5 + k] = 49407n;
    }
    const rel = (a: Float32Array, c: Float32Array) => {
      let d = 0;
      let m = 0;
      for (let i = 0; i < a.length; i++) {
        d = Math.max(d, Math.abs(a[i]! - c[i]!));
        m = Math.max(m, Math.abs(c[i]!));
      }
      return d / m;
    };
    const e32 = await openEncoders(b, { device: 'cpu', intraOpThreads: 1 });
    const e16 = await openEncoders(b, { device: 'cpu', intraOpThreads: 1, precision: 'fp16' });
    try {
      expect(e16.precision).toBe('fp16');
      const img32 = await e32.imageFeatures(f.slice(), B);
      const img16 = await e16.imageFeatures(f.slice(), B);
      const txt32 = await e32.textFeatures(ids.slice(), B);
      const txt16 = await e16.textFeatures(ids.slice(), B);
      const ri = rel(img16, img32);
      const rt = rel(txt16, txt32);
      expect(ri).toBeLessThan(2e-3);
      expect(rt).toBeLessThan(5e-3);
      // fp16 really ran: not bit-identical to float32.
      expect(ri).toBeGreaterThan(0);
    } finally {
      await e32.release();
      await e16.release();
    }
  });
});

describe('bundle variants', () => {
  it('loads the declared fp16 files, includes them in the bundle hash and checks their contract', async () => {
    const b = await loadBundle(dir);
    expect(b.paths.variants?.fp16?.visual).toBe(join(dir, 'visual.fp16.onnx'));
    const copy = t.path('c');
    await makeTinyBundle(copy, { seed: 5 });
    // Same fp32 files; the fp16 variant (declared in model.json, hashed) changes the identity.
    expect((await loadBundle(copy)).hash).not.toBe(b.hash);
    await addFloat16Variant(copy);
    expect((await loadBundle(copy)).hash).toBe(b.hash);
    // The variant's files must satisfy the same contract as the float32 ones.
    writeFileSync(join(copy, 'visual.fp16.onnx'), readFileSync(join(copy, 'textual.onnx')));
    await expect(loadBundle(copy)).rejects.toMatchObject({ code: 'E_ONNX', file: join(copy, 'visual.fp16.onnx') });
    rmSync(join(copy, 'visual.fp16.onnx'));
    await expect(loadBundle(copy)).rejects.toMatchObject({ code: 'E_BUNDLE', message: expect.stringMatching(/visual\.fp16\.onnx is missing \(the fp16 image encoder/) });
  });

  it('validates variants in model.json (known precisions, two file names inside the folder)', async () => {
    const copy = t.path('v');
    await makeTinyBundle(copy, { seed: 5 });
    const base = JSON.parse(readFileSync(join(copy, 'model.json'), 'utf8'));
    const write = (variants: unknown) => writeFileSync(join(copy, 'model.json'), JSON.stringify({ ...base, variants }));
    write({ int8: { visual: 'a', textual: 'b' } });
    await expect(loadBundle(copy)).rejects.toMatchObject({ code: 'E_BUNDLE', message: expect.stringMatching(/unknown key "variants\.int8"/) });
    write({ fp16: { visual: '../visual.onnx', textual: 'textual.onnx' } });
    await expect(loadBundle(copy)).rejects.toMatchObject({ code: 'E_BUNDLE', message: expect.stringMatching(/variants\.fp16\.visual must be a file name inside/) });
    write({ fp16: { visual: 'visual.onnx' } });
    await expect(loadBundle(copy)).rejects.toMatchObject({ code: 'E_BUNDLE', message: expect.stringMatching(/variants\.fp16\.textual must be a non-empty string/) });
  });

  it('--precision fp16 on a bundle without the variant is an E_BUNDLE error that says how to add it', async () => {
    const plain = await loadBundle(await makeTinyBundle(t.path('p'), { seed: 5 }), { hash: false });
    await expect(openEncoders(plain, { device: 'cpu', precision: 'fp16' })).rejects.toMatchObject({
      code: 'E_BUNDLE',
      hint: expect.stringMatching(/scripts\/add-fp16/),
    });
  });

  it('scripts/add-fp16 writes the variant and reports it; a folder that is no bundle is an error', () => {
    const copyDir = t.path('s');
    rmSync(copyDir, { recursive: true, force: true });
    spawnSync('cp', ['-r', dir, copyDir]);
    rmSync(join(copyDir, 'visual.fp16.onnx'));
    const ok = spawnSync(process.execPath, [join(REPO, 'scripts', 'add-fp16'), copyDir], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/wrote .*visual\.fp16\.onnx and .*textual\.fp16\.onnx/);
    const bad = spawnSync(process.execPath, [join(REPO, 'scripts', 'add-fp16'), t.path('nothing')], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/is not a model bundle folder/);
  });
});
