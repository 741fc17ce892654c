/**
 * scripts/export_bundle.py end to end: the ONNX files and heads it writes, run by onnxruntime in Node, reproduce
 * the PyTorch model's features and embeddings; checkpoints in Hugging Face and OpenCLIP layouts give the same
 * bundle as the model they hold; exports are deterministic; bad input is one clear line.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/model/bundle.js';
import { openEncoders } from '../../src/model/encoders.js';
import { maxRelError } from '../../src/model/linalg.js';
import { floatTensor, readSafetensors } from '../../src/model/safetensors.js';
import { verifyBundle } from '../../src/model/verify.js';
import { CLIP_VOCAB, makeTinyBundle, PYTHON, REPO, runExporter, tinyBundle } from '../helpers/bundles.js';

const work = mkdtempSync(join(tmpdir(), 'mimic-export-'));
const vocab = ['--vocab', CLIP_VOCAB, '--verify', 'skip'];
const digest = (dir: string) => Object.fromEntries(readdirSync(dir).sort()
  .map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
const checkTensor = async (dir: string, name: string) => floatTensor(await readSafetensors(join(dir, 'check.safetensors')), name).data;

let ref: string;
beforeAll(async () => {
  ref = await tinyBundle({ seed: 1 });
});

describe('exported bundle vs PyTorch', () => {
  it('onnxruntime reproduces PyTorch\'s features and embeddings on the check inputs', async () => {
    const r = await verifyBundle(await loadBundle(ref), { device: 'cpu' });
    expect(r.ok).toBe(true);
    expect(r.samples).toBe(3);
    expect(r.provider).toBe('cpu');
    for (const e of Object.values(r.errors)) expect(e).toBeLessThan(1e-5);
  });

  it('the batch axis is dynamic: one sample alone gives the same features as in a batch of three', async () => {
    const bundle = await loadBundle(ref);
    const enc = await openEncoders(bundle, { device: 'cpu' });
    try {
      const st = await readSafetensors(join(ref, 'check.safetensors'));
      const px = floatTensor(st, 'pixel_values').data;
      const ids = st.tensors.get('input_ids')!.data as BigInt64Array;
      const one = await enc.imageFeatures(px.slice(2 * 3 * 32 * 32), 1);
      expect(maxRelError(one, floatTensor(st, 'image_features').data.slice(2 * 64))).toBeLessThan(1e-5);
      const t1 = await enc.textFeatures(ids.slice(77, 154), 1);
      expect(maxRelError(t1, floatTensor(st, 'text_features').data.slice(48, 96))).toBeLessThan(1e-5);
      // the second caption is empty (start, end, padding): its pooled token is position 1
      expect(ids[77]).toBe(49406n);
      expect(ids[78]).toBe(49407n);
    } finally {
      await enc.release();
    }
  });

  it('verification fails when the heads are not the source model\'s (same shapes, other values)', async () => {
    const dir = await makeTinyBundle(join(work, 'wrong-heads'), { seed: 1 });
    copyFileSync(join(await tinyBundle({ seed: 2 }), 'heads.safetensors'), join(dir, 'heads.safetensors'));
    const r = await verifyBundle(await loadBundle(dir), { device: 'cpu' });
    expect(r.ok).toBe(false);
    expect(r.errors.imageFeatures).toBeLessThan(1e-5);
    expect(r.errors.imageEmbeds).toBeGreaterThan(0.1);
  });
});

describe('export_bundle.py', () => {
  it('is deterministic for a seed, and another seed gives other weights', async () => {
    const again = join(work, 'again');
    const r = await runExporter(['--config', 'tiny', '--seed', '1', '-o', again, ...vocab]);
    expect(r.code).toBe(0);
    expect(digest(again)).toEqual(digest(ref));
    const other = digest(await tinyBundle({ seed: 2 }));
    expect(other['heads.safetensors']).not.toBe(digest(ref)['heads.safetensors']);
    expect(other['visual.onnx']).not.toBe(digest(ref)['visual.onnx']);
  });

  it('records a recipe, and --init-from a bundle rebuilds its exact weights', async () => {
    const m = JSON.parse(readFileSync(join(ref, 'model.json'), 'utf8'));
    expect(m.source.recipe).toMatchObject({ base: { kind: 'random', preset: 'tiny', seed: 1 }, perturb: [] });
    const same = await tinyBundle({ from: ref, seed: 9 });
    expect(digest(same)['heads.safetensors']).toBe(digest(ref)['heads.safetensors']);
    const proxy = await tinyBundle({ from: ref, seed: 9, perturb: 0.1 });
    const pm = JSON.parse(readFileSync(join(proxy, 'model.json'), 'utf8'));
    expect(pm.source.recipe.perturb).toEqual([{ eps: 0.1, seed: 9 + 0x5eed }]);
    // a proxy of the proxy replays both steps
    const second = await tinyBundle({ from: proxy, seed: 3, perturb: 0.05 });
    expect(JSON.parse(readFileSync(join(second, 'model.json'), 'utf8')).source.recipe.perturb).toHaveLength(2);
    expect((await verifyBundle(await loadBundle(second), { device: 'cpu' })).ok).toBe(true);
  });

  it('refuses --init-from a bundle whose heads its recipe does not reproduce', async () => {
    const dir = await makeTinyBundle(join(work, 'edited'), { seed: 1 });
    copyFileSync(join(await tinyBundle({ seed: 2 }), 'heads.safetensors'), join(dir, 'heads.safetensors'));
    const r = await runExporter(['--init-from', dir, '--perturb', '0.1', '-o', join(work, 'x'), ...vocab]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/export_bundle: error: .*edited: rebuilding the bundle from its recipe does not reproduce its/);
    expect(r.stderr).not.toMatch(/Traceback/);
  });

  it('a Hugging Face checkpoint (projections [P,D]) gives exactly the model it holds', async () => {
    const hf = join(work, 'hf');
    execFileSync(PYTHON, [join(REPO, 'test/model/hf_fixture.py'), 'make-hf', hf, '--seed', '1']);
    const out = join(work, 'hf-bundle');
    const r = await runExporter(['--from-checkpoint', hf, '-o', out, ...vocab]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/heads match the checkpoint's own projection tensors/);
    const b = await loadBundle(out);
    expect(b.heads).toMatchObject({ dv: 64, dt: 48, p: 32 });
    expect((await verifyBundle(b, { device: 'cpu' })).ok).toBe(true);
    for (const t of ['image_features', 'text_features', 'image_embeds', 'text_embeds']) {
      expect(maxRelError(await checkTensor(out, t), await checkTensor(ref, t)), t).toBeLessThan(1e-6);
    }
    expect(JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')).source.recipe.base).toMatchObject({ kind: 'checkpoint', format: 'hf', act: 'quick_gelu' });
  });

  it('a square text head (Dt = P) from Hugging Face is transposed, not passed through', async () => {
    const hf = join(work, 'hf-square');
    execFileSync(PYTHON, [join(REPO, 'test/model/hf_fixture.py'), 'make-hf', hf, '--seed', '4', '--square']);
    const out = join(work, 'hf-square-bundle');
    expect((await runExporter(['--from-checkpoint', hf, '-o', out, ...vocab])).code).toBe(0);
    const b = await loadBundle(out);
    expect(b.heads).toMatchObject({ dt: 48, p: 48 });
    const v = await verifyBundle(b, { device: 'cpu' });
    expect(v.ok).toBe(true);
    // The same random model exported directly: identical embeddings.
    const direct = await tinyBundle({ seed: 4, embedDim: 48 });
    expect(maxRelError(await checkTensor(out, 'text_embeds'), await checkTensor(direct, 'text_embeds'))).toBeLessThan(1e-6);
  });

  it('OpenCLIP-layout checkpoints (.pt and .safetensors) round-trip; activation and unusual head counts must be given', async () => {
    for (const ext of ['pt', 'safetensors']) {
      const ckpt = join(work, `seed1.${ext}`);
      expect((await runExporter(['--config', 'tiny', '--seed', '1', '-o', join(work, `saver-${ext}`), '--save-checkpoint', ckpt, ...vocab])).code).toBe(0);
      const heads = ['--visual-heads', '4', '--text-heads', '4'];
      if (ext === 'pt') {
        const noAct = await runExporter(['--from-checkpoint', ckpt, ...heads, '-o', join(work, 'oc-noact'), ...vocab]);
        expect(noAct.code).toBe(2);
        expect(noAct.stderr).toMatch(/give --act quick_gelu\|gelu/);
        // tiny's widths (64, 48) are no released CLIP size: the head count cannot be guessed
        const noHeads = await runExporter(['--from-checkpoint', ckpt, '--act', 'quick_gelu', '-o', join(work, 'oc-noheads'), ...vocab]);
        expect(noHeads.code).toBe(2);
        expect(noHeads.stderr).toMatch(/heads of a width-64 tower is not stored in the weights .*give --visual-heads/);
      }
      const out = join(work, `oc-${ext}`);
      const r = await runExporter(['--from-checkpoint', ckpt, '--act', 'quick_gelu', ...heads, '-o', out, ...vocab]);
      expect(r.code, r.stderr).toBe(0);
      expect(digest(out)['visual.onnx']).toBe(digest(ref)['visual.onnx']);
      expect(maxRelError(await checkTensor(out, 'text_embeds'), await checkTensor(ref, 'text_embeds'))).toBe(0);
    }
  });

  it('the exporter\'s Python helpers: HF mapping inverse, transposed-square-head detection, perturbation size', () => {
    expect(execFileSync(PYTHON, [join(REPO, 'test/model/hf_fixture.py'), 'unit'], { encoding: 'utf8' }).trim()).toBe('ok');
  });

  it('bad input is one line on stderr, exit status 2, nothing written', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--from-checkpoint', join(work, 'absent.pt'), '--act', 'gelu'], /absent\.pt: no such checkpoint file \(only local files are read/],
      [['--from-checkpoint', join(REPO, 'package.json'), '--act', 'gelu'], /package\.json: cannot be read as a PyTorch checkpoint/],
      [['--config', 'tiny', '--perturb', '-1'], /--perturb must be a finite number >= 0/],
      [['--from-checkpoint', join(work, 'seed1.pt'), '--context-length', '16'], /--context-length and --embed-dim apply to random configs/],
      [['--config', 'tiny', '-o', ref], /exists: pass --force to replace it/],
    ];
    for (const [args, re] of cases) {
      const out = args.includes('-o') ? [] : ['-o', join(work, 'never')];
      const r = await runExporter([...args, ...out, ...vocab]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(re);
      expect(r.stderr).not.toMatch(/Traceback/);
    }
    expect(readdirSync(work).filter((f) => f.startsWith('never') || f.startsWith('.never'))).toEqual([]);
  });
});
