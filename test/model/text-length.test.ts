/**
 * A dynamic text length end to end: the exporter traces textual.onnx with a symbolic sequence axis (PyTorch 1.13,
 * checked at several lengths), the encoders cut each batch's ids after its last end token and get the padded
 * features back within float rounding, fixed-length bundles keep working, and text towers for which cutting
 * would be wrong (not causal) or impossible (full context only) are run, or exported, at the full length.
 *
 * Tolerance for cut against padded features: 1e-5 relative per caption (max |Δ| / max |padded| over the row).
 * Only the shapes of the matrix products differ: measured identical on this machine's CPU (tiny, the demo model
 * and ViT-B/32 sizes), PyTorch itself 5e-7 to 8e-7; another CPU or the CUDA EP may round differently.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/model/bundle.js';
import { openEncoders, type Encoders } from '../../src/model/encoders.js';
import { maxRelError } from '../../src/model/linalg.js';
import { cutIds, pooledLength } from '../../src/model/text-length.js';
import { verifyBundle } from '../../src/model/verify.js';
import { loadClipTokenizer } from '../../src/text/tokenizer.js';
import { makeTinyBundle, PYTHON, REPO, tinyBundle } from '../helpers/bundles.js';

const RTOL = 1e-5;
const work = mkdtempSync(join(tmpdir(), 'mimic-textlen-'));
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
const fixture = (...args: string[]) =>
  execFileSync(PYTHON, [join(REPO, 'test/model/text_length_fixture.py'), ...args], { encoding: 'utf8' });

/** Worst per-caption relative error between two [batch, d] feature arrays. */
function rowError(a: Float32Array, b: Float32Array, d: number): number {
  let worst = 0;
  for (let i = 0; i < b.length / d; i++) worst = Math.max(worst, maxRelError(a.subarray(i * d, (i + 1) * d), b.subarray(i * d, (i + 1) * d)));
  return worst;
}

const WORDS = 'a photo of the red dog cat on in with at street beach tree small large two three white black wooden view'.split(' ');
/** Captions of 0 to 60 words (the longest past the 77-token context, so truncated with the end token kept). */
function captions(n: number, seed: number): string[] {
  let s = seed;
  const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296);
  return Array.from({ length: n }, (_, i) => Array.from({ length: i === 0 ? 60 : Math.floor(r() * 25) }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' '));
}

let dynamicDir: string;
let fixedDir: string;
let ids: BigInt64Array; // 24 captions at L = 77, the first at full length
const B = 24;
const L = 77;

beforeAll(async () => {
  [dynamicDir, fixedDir] = await Promise.all([tinyBundle({ seed: 1 }), tinyBundle({ seed: 1, textLength: 'fixed' })]);
  const tok = await loadClipTokenizer(join(dynamicDir, 'bpe_simple_vocab_16e6.txt.gz'));
  ids = new BigInt64Array(B * L);
  captions(B, 5).forEach((c, i) => tok.tokenizeInto(c, L, ids, i * L, 0));
}, 300_000);

async function withEncoders<T>(dir: string, opts: Parameters<typeof openEncoders>[1], fn: (e: Encoders) => Promise<T>): Promise<T> {
  const enc = await openEncoders(await loadBundle(dir, { hash: false }), { device: 'cpu', ...opts });
  try {
    return await fn(enc);
  } finally {
    await enc.release();
  }
}

describe('pooledLength and cutIds', () => {
  it('keep one past the last row\'s argmax (the end token): at least 1, the whole context when a row fills it', () => {
    const rows = (...r: number[][]) => BigInt64Array.from(r.flat(), BigInt);
    expect(pooledLength(rows([49406, 320, 49407, 0, 0, 0], [49406, 320, 1125, 539, 49407, 0]), 2, 6)).toBe(5);
    expect(pooledLength(rows([0, 0, 0, 0]), 1, 4)).toBe(1);
    expect(pooledLength(rows([49406, 49407, 0, 0], [49406, 5, 6, 49407]), 2, 4)).toBe(4);
    // ties: the first largest id is where CLIP pools (torch.argmax, ONNX ArgMax), so a later equal id is cut
    expect(pooledLength(rows([49406, 49407, 0, 49407, 0]), 1, 5)).toBe(2);
    expect(pooledLength(new BigInt64Array(0), 0, 77)).toBe(1);
    const cut = cutIds(rows([1, 2, 3, 4], [5, 6, 7, 8]), 2, 4, 3);
    expect(Array.from(cut, Number)).toEqual([1, 2, 3, 5, 6, 7]);
    const same = rows([1, 2]);
    expect(cutIds(same, 1, 2, 2)).toBe(same);
  });

  it('agree with a plain argmax on random batches and never cut a row\'s largest id', () => {
    let s = 9;
    const r = (n: number) => Math.floor(((s = (s * 1103515245 + 12345) >>> 0) / 4294967296) * n);
    for (let t = 0; t < 300; t++) {
      const batch = 1 + r(6);
      const len = 2 + r(20);
      const x = BigInt64Array.from({ length: batch * len }, () => BigInt(r(4) === 0 ? r(49408) : r(50)));
      let want = 1;
      for (let b = 0; b < batch; b++) {
        const row = Array.from(x.subarray(b * len, (b + 1) * len));
        const m = row.reduce((a, v) => (v > a ? v : a), row[0]!);
        want = Math.max(want, row.indexOf(m) + 1);
      }
      const n = pooledLength(x, batch, len);
      expect(n).toBe(want);
      const c = cutIds(x, batch, len, n);
      for (let b = 0; b < batch; b++) {
        const row = x.subarray(b * len, (b + 1) * len);
        const kept = c.subarray(b * n, (b + 1) * n);
        expect(kept).toEqual(row.subarray(0, n));
        expect(kept.reduce((a, v) => (v > a ? v : a), kept[0]!)).toBe(row.reduce((a, v) => (v > a ? v : a), row[0]!));
      }
    }
  });
});

describe('textual.onnx with a symbolic sequence axis', () => {
  it('is what the exporter writes by default, and runs at any length up to the context with the padded features', async () => {
    const b = await loadBundle(dynamicDir, { hash: false });
    expect(b.signatures.textual.inputs[0]!.shape).toEqual(['batch', 'sequence']);
    expect(b.manifest.source).toMatchObject({ text_length: 'dynamic' });
    expect(b.manifest.text.context_length).toBe(L);
    await withEncoders(dynamicDir, { trimText: false }, async (enc) => {
      const padded = await enc.textFeatures(ids, B);
      // the session itself at several lengths, from the shortest that keeps every end token to the full context
      const rest = ids.slice(L); // without the full-length first caption
      const shortest = pooledLength(rest, B - 1, L);
      expect(shortest).toBeLessThan(40);
      for (const n of [shortest, shortest + 1, 40, 76, 77]) {
        const out = await enc.textual.run({ input_ids: new ort.Tensor('int64', cutIds(rest, B - 1, L, n), [B - 1, n]) });
        const f = out.text_features!.data as Float32Array;
        expect(rowError(f, padded.subarray(48), 48), `L = ${n}`).toBeLessThan(RTOL);
      }
    });
  });

  it('the encoders cut each batch (same features within 1e-5 per caption), and report it', async () => {
    const padded = await withEncoders(dynamicDir, { trimText: false }, async (enc) => {
      expect(enc.textLength).toEqual({ dynamic: true, trimmed: false, reason: 'turned off (trimText: false)' });
      return enc.textFeatures(ids, B);
    });
    await withEncoders(dynamicDir, {}, async (enc) => {
      expect(enc.textLength).toEqual({ dynamic: true, trimmed: true });
      // the batch without its full-length caption is cut; with it, it runs whole
      const rest = ids.slice(L);
      expect(pooledLength(rest, B - 1, L)).toBeLessThan(30);
      expect(rowError(await enc.textFeatures(rest, B - 1), padded.subarray(48), 48)).toBeLessThan(RTOL);
      expect(rowError(await enc.textFeatures(ids, B), padded, 48)).toBeLessThan(RTOL);
      // one caption at a time: each at its own length
      for (let i = 1; i < 6; i++) {
        const one = await enc.textFeatures(ids.slice(i * L, (i + 1) * L), 1);
        expect(maxRelError(one, padded.subarray(i * 48, (i + 1) * 48))).toBeLessThan(RTOL);
      }
      // the same batch is cut the same way every time: identical bytes
      expect(await enc.textFeatures(rest, B - 1)).toEqual(await enc.textFeatures(rest, B - 1));
    });
  });

  it('verifyBundle runs the check captions in a batch and each alone at its own length', async () => {
    const r = await verifyBundle(await loadBundle(dynamicDir), { device: 'cpu' });
    expect(r.ok).toBe(true);
    expect(r.textLengths).toEqual([77, 8, 2, 77]);
    expect(r.errors.textFeatures).toBeLessThan(RTOL);
  });
});

describe('bundles with a fixed text length', () => {
  it('load, run uncut, and give the dynamic export\'s features (same weights)', async () => {
    const b = await loadBundle(fixedDir, { hash: false });
    expect(b.signatures.textual.inputs[0]!.shape).toEqual(['batch', 77]);
    expect(b.manifest.source).toMatchObject({ text_length: 'fixed' });
    const [fixed, dynamic] = await Promise.all([fixedDir, dynamicDir].map((d) =>
      withEncoders(d, { trimText: false }, async (enc) => [enc.textLength, await enc.textFeatures(ids, B)] as const)));
    expect(fixed![0]).toMatchObject({ dynamic: false, trimmed: false, reason: expect.stringMatching(/takes a fixed length \(77 tokens\)/) });
    expect(rowError(fixed![1], dynamic![1], 48)).toBeLessThan(1e-6);
    const r = await verifyBundle(b, { device: 'cpu' });
    expect(r.ok).toBe(true);
    expect(r.textLengths).toEqual([77]);
    expect(readFileSync(join(fixedDir, 'heads.safetensors'))).toEqual(readFileSync(join(dynamicDir, 'heads.safetensors')));
  });
});

describe('when cutting would be wrong or impossible', () => {
  it('a text tower that sees the padding (not causal) is refused by the exporter, and run uncut by the encoders', async () => {
    const dir = await makeTinyBundle(join(work, 'noncausal'), { seed: 1 });
    const out = fixture('noncausal', dir);
    expect(out).toMatch(/^refused: the text features of captions cut after their end token differ from the padded ones \(max relative error [\d.e-]+ > 1e-05\): the text tower is not causal/m);
    const bundle = await loadBundle(dir, { hash: false });
    expect(bundle.signatures.textual.inputs[0]!.shape).toEqual(['batch', 'sequence']);
    await withEncoders(dir, {}, async (enc) => {
      expect(enc.textLength.dynamic).toBe(true);
      expect(enc.textLength.trimmed).toBe(false);
      expect(enc.textLength.reason).toMatch(/cut after their end token give other features than padded ones \(max relative error .*\): the text tower is not causal/);
      const rest = ids.slice(L);
      const whole = await enc.textual.run({ input_ids: new ort.Tensor('int64', rest, [B - 1, L]) });
      expect(await enc.textFeatures(rest, B - 1)).toEqual(whole.text_features!.data);
      const n = pooledLength(rest, B - 1, L);
      const cut = await enc.textual.run({ input_ids: new ort.Tensor('int64', cutIds(rest, B - 1, L, n), [B - 1, n]) });
      // what cutting would have cost here
      expect(rowError(cut.text_features!.data as Float32Array, whole.text_features!.data as Float32Array, 48)).toBeGreaterThan(1e-2);
    });
  });

  it('a text tower written for the full context only is exported with a fixed length, with a note', async () => {
    const out = join(work, 'fullonly');
    const notes = fixture('fullonly', out);
    expect(notes).toMatch(/text length fixed: the model's text tower does not run on ids cut to a shorter length/);
    const b = await loadBundle(out, { hash: false });
    expect(b.signatures.textual.inputs[0]!.shape).toEqual(['batch', 16]);
    expect(b.manifest.source).toMatchObject({ text_length: 'fixed' });
    expect((await verifyBundle(b, { device: 'cpu' })).ok).toBe(true);
  });

  it('a context length past the positional table fails when the encoders open, not on the first long caption', async () => {
    const dir = await makeTinyBundle(join(work, 'long'), { seed: 1 });
    const p = join(dir, 'model.json');
    const j = JSON.parse(readFileSync(p, 'utf8'));
    j.text.context_length = 100;
    writeFileSync(p, JSON.stringify(j));
    const bundle = await loadBundle(dir, { hash: false });
    await expect(openEncoders(bundle, { device: 'cpu' })).rejects.toMatchObject({
      code: 'E_ONNX',
      message: expect.stringMatching(/textual\.onnx does not run on 100 tokens, the text\.context_length of .*model\.json/),
    });
    // a shorter context than the table is fine, and cut as usual
    j.text.context_length = 16;
    writeFileSync(p, JSON.stringify(j));
    await withEncoders(dir, {}, async (enc) => expect(enc.textLength.trimmed).toBe(true));
  });
});

describe('scripts/bundle_dynamic_text.py', () => {
  it('turns a fixed-length bundle into the dynamic export of the same weights, byte for byte, touching nothing else', async () => {
    const dir = await makeTinyBundle(join(work, 'convert'), { seed: 1, textLength: 'fixed' });
    const before = Object.fromEntries(readdirSync(dir).map((f) => [f, sha(join(dir, f))]));
    const run = (d: string) => execFileSync(PYTHON, [join(REPO, 'scripts/bundle_dynamic_text.py'), d, '--verify', 'skip'], { encoding: 'utf8' });
    const out = run(dir);
    expect(out).toMatch(/all \d+ text-tower tensors equal the old file's bit for bit/);
    expect(out).toMatch(/the rebuilt text tower reproduces the check file's features/);
    expect(sha(join(dir, 'textual.onnx'))).toBe(sha(join(dynamicDir, 'textual.onnx')));
    for (const f of ['visual.onnx', 'heads.safetensors', 'check.safetensors', 'bpe_simple_vocab_16e6.txt.gz']) expect(sha(join(dir, f)), f).toBe(before[f]);
    const m = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    expect(m.source.text_length).toBe('dynamic');
    expect(m.source.text_encoder.previous_sha256).toBe(before['textual.onnx']);
    expect(run(dir)).toMatch(/already has a dynamic sequence axis; nothing to do/);
    const r = await verifyBundle(await loadBundle(dir), { device: 'cpu' });
    expect(r.ok).toBe(true);
    expect(r.textLengths).toEqual([77, 8, 2, 77]);
  });

  it('refuses a bundle that does not record its architecture, in one line', async () => {
    const dir = await makeTinyBundle(join(work, 'noarch'), { seed: 1, textLength: 'fixed' });
    const p = join(dir, 'model.json');
    const j = JSON.parse(readFileSync(p, 'utf8'));
    delete j.source.architecture;
    writeFileSync(p, JSON.stringify(j));
    let err: { status?: number; stderr?: string } = {};
    try {
      execFileSync(PYTHON, [join(REPO, 'scripts/bundle_dynamic_text.py'), dir, '--verify', 'skip'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.status).toBe(2);
    expect(err.stderr).toMatch(/^bundle_dynamic_text: error: .*records no source\.architecture/);
    expect(err.stderr).not.toMatch(/Traceback/);
  });
});

describe('the committed demo bundles', () => {
  it('take a dynamic text length and give the padded features on cut captions', async () => {
    const dir = join(REPO, 'models', 'demo-reference');
    const b = await loadBundle(dir, { hash: false });
    expect(b.signatures.textual.inputs[0]!.shape).toEqual(['batch', 'sequence']);
    const Ld = b.manifest.text.context_length;
    const tok = await loadClipTokenizer(b.paths.vocab);
    const texts = ['emoji of grinning face', 'red heart', 'emoji of a cat face with tears of joy in the openmoji style', 'flag'];
    const x = new BigInt64Array(texts.length * Ld);
    texts.forEach((t, i) => tok.tokenizeInto(t, Ld, x, i * Ld, 0));
    expect(pooledLength(x, texts.length, Ld)).toBeLessThan(Ld);
    const padded = await withEncoders(dir, { trimText: false }, (enc) => enc.textFeatures(x, texts.length));
    await withEncoders(dir, {}, async (enc) => {
      expect(enc.textLength.trimmed).toBe(true);
      expect(rowError(await enc.textFeatures(x, texts.length), padded, b.heads.dt)).toBeLessThan(RTOL);
    });
  });
});
