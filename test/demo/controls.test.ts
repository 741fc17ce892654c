import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlHeads, writeControlBundle } from '../../src/demo/controls.js';
import { loadBundle, type Bundle } from '../../src/model/bundle.js';
import { checkPair } from '../../src/model/lineage.js';

const MODELS = new URL('../../models/', import.meta.url).pathname;
const tmp = mkdtempSync(join(os.tmpdir(), 'mimic-demo-controls-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const norm = (a: Float32Array, b?: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - (b?.[i] ?? 0)) ** 2, 0));
const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i]!, 0);
/** D = W_ref − W of one layer, in float64. */
const direction = (ref: Float32Array, w: Float32Array) => Float64Array.from(ref, (v, i) => v - w[i]!);

describe('control reference bundles', () => {
  let proxy: Bundle;
  let reference: Bundle;
  let negW: Bundle;
  let random: Bundle;

  beforeAll(async () => {
    proxy = await loadBundle(join(MODELS, 'demo-proxy-400'));
    reference = await loadBundle(join(MODELS, 'demo-reference'));
    negW = await writeControlBundle({ proxy, reference, kind: 'neg_w', out: join(tmp, 'neg_w') });
    random = await writeControlBundle({ proxy: proxy.dir, reference: reference.dir, kind: 'random', seed: 4, out: join(tmp, 'random') });
  });

  it('are bundles loadBundle accepts, named and sourced as controls, with no check file', () => {
    for (const [b, kind] of [[negW, 'neg_w'], [random, 'random']] as const) {
      expect(b.manifest.name).toBe(`control-${kind}-demo-proxy-400`);
      expect(b.manifest.source).toMatchObject({ kind: 'control', control: kind, proxy: { name: 'demo-proxy-400', hash: proxy.hash }, reference: { name: 'demo-reference', hash: reference.hash } });
      expect(b.manifest.check).toBeUndefined();
      expect(b.paths.check).toBeUndefined();
      expect(b.manifest.image).toEqual(reference.manifest.image);
      expect(b.manifest.text).toEqual(reference.manifest.text);
      // The reference's encoders and vocabulary, byte for byte.
      for (const f of ['visual', 'textual', 'vocab'] as const) expect(readFileSync(b.paths[f]).equals(readFileSync(reference.paths[f]))).toBe(true);
      expect(b.heads.logitScale).toBe(reference.heads.logitScale);
    }
  });

  it('D = −W exactly: zero reference heads', () => {
    expect(negW.heads.visualProjection.every((v) => v === 0)).toBe(true);
    expect(negW.heads.textProjection.every((v) => v === 0)).toBe(true);
    expect(negW.heads.visualProjection.length).toBe(proxy.heads.visualProjection.length);
    expect(negW.heads.textProjection.length).toBe(proxy.heads.textProjection.length);
  });

  it('random D: the norm of the real D in each layer (so in both), a direction unrelated to it', () => {
    const h = proxy.heads;
    const r = random.heads;
    const ref = reference.heads;
    const rel = (a: number, b: number) => Math.abs(a - b) / b;
    expect(rel(norm(r.visualProjection, h.visualProjection), norm(ref.visualProjection, h.visualProjection))).toBeLessThan(1e-5);
    expect(rel(norm(r.textProjection, h.textProjection), norm(ref.textProjection, h.textProjection))).toBeLessThan(1e-5);
    for (const [a, b, w] of [[r.visualProjection, ref.visualProjection, h.visualProjection], [r.textProjection, ref.textProjection, h.textProjection]] as const) {
      const dRandom = direction(a, w);
      const dReal = direction(b, w);
      const cos = dot(dRandom, dReal) / Math.sqrt(dot(dRandom, dRandom) * dot(dReal, dReal));
      // A Gaussian direction in ~2,000 dimensions: |cos| ≈ 0.02 with the real one.
      expect(Math.abs(cos)).toBeLessThan(0.1);
    }
  });

  it('are a pure function of the bundles, the kind and the seed: rewriting keeps the bytes and the bundle hash', async () => {
    const before = readFileSync(random.paths.heads);
    const again = await writeControlBundle({ proxy, reference, kind: 'random', seed: 4, out: join(tmp, 'random') });
    expect(readFileSync(again.paths.heads).equals(before)).toBe(true);
    expect(again.hash).toBe(random.hash);
    const other = await writeControlBundle({ proxy, reference, kind: 'random', seed: 5, out: join(tmp, 'random-5') });
    expect(other.hash).not.toBe(random.hash);
    expect(Array.from(controlHeads(proxy.heads, reference.heads, 'random', 4).visualProjection)).toEqual(Array.from(random.heads.visualProjection));
  });

  it('link the encoders rather than copy them when the folder is on the same file system', () => {
    // Only when models/ and the temp folder share a device; otherwise the copy above is what counts.
    if (statSync(MODELS).dev === statSync(tmp).dev) expect(statSync(negW.paths.visual).ino).toBe(statSync(reference.paths.visual).ino);
    expect(statSync(negW.paths.visual).size).toBe(statSync(reference.paths.visual).size);
  });

  it("are what mimic's lineage check says they are: D = −W unrelated, the random D as far from W as the real one", async () => {
    expect((await checkPair(proxy, negW)).verdict.level).toBe('unrelated');
    const real = await checkPair(proxy, reference);
    const rnd = await checkPair(proxy, random);
    const both = (p: typeof real) => p.layers.find((l) => l.layer === 'both')!;
    expect(both(rnd).normD).toBeCloseTo(both(real).normD, 4);
  });
});
