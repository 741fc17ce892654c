/**
 * The controls of a mimic-score evaluation (DESIGN §4): does the direction D = W_ref − W carry information, or
 * would any direction of that size rank the pool as well? A control is just another reference: heads W_ref' that
 * make D' = W_ref' − W either −W (zero heads) or a random direction with the norm of the real D in each layer.
 * Written as a bundle folder (the reference's encoders and vocabulary, linked or copied, plus the control heads),
 * it is scored by `mimic score` / scorePool() like any reference, so the controls need no scorer of their own.
 */
import { copyFile, link, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MimicError, errorMessage } from '../errors.js';
import { HEADS_FILE, MANIFEST_FILE, TEXTUAL_FILE, VISUAL_FILE, loadBundle, type Bundle, type BundleHeads } from '../model/bundle.js';
import { assertCompatible } from '../model/lineage.js';
import type { BundleManifest } from '../model/manifest.js';
import { writeSafetensors } from '../model/safetensors.js';
import { releaseTemp, tempPathFor, writeFileAtomic } from '../atomic-file.js';
import { rngFor } from './random.js';

export type ControlKind = 'neg_w' | 'random';
export const CONTROL_KINDS: readonly ControlKind[] = ['neg_w', 'random'];

/** Control columns are the mimic columns with this suffix, e.g. `mimic_proj_visual:neg_w`. */
export const CONTROL_SUFFIX: Record<ControlKind, string> = { neg_w: ':neg_w', random: ':random' };

/**
 * What each control's direction is, in words (model.json's source and the demo's output). D = −W is a degenerate
 * control for CLIP heads: the loss is invariant to rescaling either projection, so ⟨G_i, W⟩ = 0 for every sample
 * (Euler's theorem) and its mimic scores are rounding noise; the random D is the informative control.
 */
export const CONTROL_DESCRIPTION: Record<ControlKind, string> = {
  neg_w: 'D = −W (zero reference heads)',
  random: 'a random D with the norm of W_ref − W in each layer',
};

/** A standard normal draw (Box–Muller) from a uniform generator. */
function normal(rand: () => number): number {
  let u = 0;
  while (u === 0) u = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/**
 * The reference heads that make D = W_ref' − W a control: 'neg_w' gives zero heads (D = −W); 'random' gives
 * W + R with R Gaussian, scaled per layer to the norm of the real D (so ‖D‖ matches in visual, text and both).
 */
export function controlHeads(proxy: BundleHeads, reference: BundleHeads, kind: ControlKind, seed = 0): BundleHeads {
  if (kind === 'neg_w') {
    return { ...reference, visualProjection: new Float32Array(proxy.visualProjection.length), textProjection: new Float32Array(proxy.textProjection.length) };
  }
  const rand = rngFor(seed, 'random-direction');
  const shifted = (w: Float32Array, ref: Float32Array): Float32Array => {
    const r = Float64Array.from(w, () => normal(rand));
    let dn = 0;
    for (let i = 0; i < w.length; i++) dn += (ref[i]! - w[i]!) ** 2;
    let rn = 0;
    for (const v of r) rn += v * v;
    const scale = Math.sqrt(dn) / Math.sqrt(rn);
    return Float32Array.from(w, (v, i) => v + scale * r[i]!);
  };
  return {
    ...reference,
    visualProjection: shifted(proxy.visualProjection, reference.visualProjection),
    textProjection: shifted(proxy.textProjection, reference.textProjection),
  };
}

export interface ControlBundleOptions {
  /** The proxy checkpoint the control is for (the random direction is drawn around its heads). */
  proxy: string | Bundle;
  /** The real reference: its encoders, preprocessing and vocabulary are the control's. */
  reference: string | Bundle;
  kind: ControlKind;
  /** Seed of the random direction (ignored by neg_w). */
  seed?: number;
  /** The control bundle's folder (created; files already there are replaced). */
  out: string;
}

/**
 * Write a control reference as a `mimic-clip/1` bundle folder. The result is a pure function of the two bundles,
 * the kind and the seed, so writing it again gives the same bytes (and the same bundle hash: a score run against
 * it resumes). It has no check file: the reference's check outputs were computed with the reference's heads.
 */
export async function writeControlBundle(o: ControlBundleOptions): Promise<Bundle> {
  const proxy = typeof o.proxy === 'string' ? await loadBundle(o.proxy, { hash: true }) : o.proxy;
  const reference = typeof o.reference === 'string' ? await loadBundle(o.reference, { hash: true }) : o.reference;
  assertCompatible(proxy, reference);
  const seed = o.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new MimicError('E_USAGE', `control seed must be a non-negative integer, got ${seed}`);
  const heads = controlHeads(proxy.heads, reference.heads, o.kind, seed);
  await mkdir(o.out, { recursive: true });

  const vocabName = reference.manifest.text.vocab;
  for (const [from, name] of [[reference.paths.visual, VISUAL_FILE], [reference.paths.textual, TEXTUAL_FILE], [reference.paths.vocab, vocabName]] as const) {
    await linkOrCopy(from, join(o.out, name));
  }
  const { dv, dt, p } = heads;
  await writeSafetensors(join(o.out, HEADS_FILE), {
    logit_scale: { dtype: 'F32', shape: [], data: Float32Array.of(heads.logitScale) },
    text_projection: { dtype: 'F32', shape: [dt, p], data: heads.textProjection },
    visual_projection: { dtype: 'F32', shape: [dv, p], data: heads.visualProjection },
  }, { control: o.kind });
  const manifest: BundleManifest = {
    format: reference.manifest.format,
    name: `control-${o.kind}-${proxy.manifest.name}`,
    image: reference.manifest.image,
    text: reference.manifest.text,
    source: {
      kind: 'control',
      control: o.kind,
      direction: CONTROL_DESCRIPTION[o.kind],
      ...(o.kind === 'random' ? { seed } : {}),
      proxy: { name: proxy.manifest.name, hash: proxy.hash },
      reference: { name: reference.manifest.name, hash: reference.hash },
      writer: 'grad-mimic src/demo/controls.ts',
    },
  };
  await writeFileAtomic(join(o.out, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  return loadBundle(o.out);
}

/** A hard link when the file system allows it (the encoders are the bulk of a bundle), else a copy; atomic. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  const [a, b] = await Promise.all([stat(from), stat(to).catch(() => undefined)]);
  if (b && a.dev === b.dev && a.ino === b.ino) return;
  const temp = tempPathFor(to);
  try {
    try {
      await link(from, temp);
    } catch {
      await copyFile(from, temp);
    }
    await rename(temp, to);
    releaseTemp(temp);
  } catch (e) {
    await rm(temp, { force: true });
    releaseTemp(temp);
    throw new MimicError('E_IO', `cannot write ${to}: ${errorMessage(e)}`, { file: to, hint: 'check that the folder is writable', cause: e });
  }
}
