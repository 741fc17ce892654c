/**
 * `mimic graph export` as a user runs it: the written files load in onnxruntime and compute the mimic score of
 * the float64 reference (plain graph), or the same scores from pixels and token ids (fused model).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBundle, openEncoders, type Bundle } from '../../src/model/index.js';
import { mimicFromFeatures } from '../../src/mimic/reference.js';
import { scoresFromOutputs } from '../../src/mimic/grad-session.js';
import { tinyBundle, REPO } from '../helpers/bundles.js';
import { normalGenerator } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'mimic-graph-cli-'));
let proxy: Bundle;
let reference: Bundle;

function mimic(...args: string[]) {
  return spawnSync(process.execPath, [join(REPO, 'bin/mimic'), '--log-level', 'warn', ...args], { encoding: 'utf8' });
}

function rows(data: Float32Array, n: number, d: number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from(data.subarray(i * d, (i + 1) * d)));
}

beforeAll(async () => {
  proxy = await loadBundle(await tinyBundle({ seed: 3 }));
  reference = await loadBundle(await tinyBundle({ seed: 3, perturb: 0.1 }));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('mimic graph export', () => {
  it('writes a gradient graph that scores features as the float64 reference does', async () => {
    const file = join(work, 'grad.onnx');
    const r = mimic('graph', 'export', '--proxy', proxy.dir, '--reference', reference.dir, '-o', file);
    expect(r.status, r.stderr).toBe(0);
    const { dv, dt, p } = proxy.heads;
    const b = 6;
    const rnd = normalGenerator(11);
    const h = Float32Array.from({ length: b * dv }, rnd);
    const t = Float32Array.from({ length: b * dt }, rnd);
    const session = await ort.InferenceSession.create(file);
    const got = scoresFromOutputs(await session.run({
      image_features: new ort.Tensor('float32', h, [b, dv]),
      text_features: new ort.Tensor('float32', t, [b, dt]),
    }), b);
    await session.release();
    const want = mimicFromFeatures({
      imageFeatures: rows(h, b, dv),
      textFeatures: rows(t, b, dt),
      visualProjection: rows(proxy.heads.visualProjection, dv, p),
      textProjection: rows(proxy.heads.textProjection, dt, p),
      refVisualProjection: rows(reference.heads.visualProjection, dv, p),
      refTextProjection: rows(reference.heads.textProjection, dt, p),
      logitScale: proxy.heads.logitScale,
    });
    for (let i = 0; i < b; i++) {
      expect(got.loss[i]).toBeCloseTo(want.loss[i]!, 4);
      for (const l of ['visual', 'text', 'both'] as const) {
        const w = want[l].mimicProj[i]!;
        expect(Math.abs(got[l].mimicProj[i]! - w)).toBeLessThanOrEqual(1e-4 * Math.max(1e-3, Math.abs(w)));
        expect(Math.abs(got[l].gradNorm[i]! - want[l].gradNorm[i]!)).toBeLessThanOrEqual(1e-4 * want[l].gradNorm[i]! + 1e-9);
      }
    }
  });

  it('writes a fused model whose scores equal the encoders followed by the gradient graph', async () => {
    const file = join(work, 'fused.onnx');
    const r = mimic('graph', 'export', '--proxy', proxy.dir, '--reference', reference.dir, '-o', file, '--fused');
    expect(r.status, r.stderr).toBe(0);
    const S = proxy.manifest.image.size;
    const L = proxy.manifest.text.context_length;
    const b = 4;
    const rnd = normalGenerator(5);
    const pixels = Float32Array.from({ length: b * 3 * S * S }, rnd);
    const ids = new BigInt64Array(b * L);
    for (let i = 0; i < b; i++) {
      ids[i * L] = 49406n;
      ids[i * L + 1] = BigInt(320 + i);
      ids[i * L + 2] = 49407n;
    }
    const session = await ort.InferenceSession.create(file);
    const fused = scoresFromOutputs(await session.run({
      pixel_values: new ort.Tensor('float32', pixels, [b, 3, S, S]),
      input_ids: new ort.Tensor('int64', ids, [b, L]),
    }), b);
    await session.release();
    const enc = await openEncoders(proxy, { device: 'cpu' });
    const h = await enc.imageFeatures(pixels.slice(), b);
    const t = await enc.textFeatures(ids.slice(), b);
    await enc.release();
    const want = mimicFromFeatures({
      imageFeatures: rows(h, b, proxy.heads.dv),
      textFeatures: rows(t, b, proxy.heads.dt),
      visualProjection: rows(proxy.heads.visualProjection, proxy.heads.dv, proxy.heads.p),
      textProjection: rows(proxy.heads.textProjection, proxy.heads.dt, proxy.heads.p),
      refVisualProjection: rows(reference.heads.visualProjection, proxy.heads.dv, proxy.heads.p),
      refTextProjection: rows(reference.heads.textProjection, proxy.heads.dt, proxy.heads.p),
      logitScale: proxy.heads.logitScale,
    });
    for (let i = 0; i < b; i++) {
      const w = want.both.mimicProj[i]!;
      expect(Math.abs(fused.both.mimicProj[i]! - w)).toBeLessThanOrEqual(1e-4 * Math.max(1e-3, Math.abs(w)));
      expect(fused.clipSim[i]).toBeCloseTo(want.clipSim[i]!, 5);
    }
  });

  it('refuses a pair of different head shapes with a clear error', async () => {
    const other = await tinyBundle({ seed: 3, embedDim: 24 });
    const r = mimic('graph', 'export', '--proxy', proxy.dir, '--reference', other, '-o', join(work, 'x.onnx'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/E_BUNDLE|head/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
