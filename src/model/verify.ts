/**
 * Proof that a bundle reproduces the model it was exported from: run its ONNX encoders on the fixed inputs in its
 * check file and compare features and embeddings (made with the bundle's heads) with the source model's outputs
 * stored beside them. This catches a mis-exported graph, a transposed square head and a runtime that computes
 * something else, none of which a shape check can see.
 */
import { MimicError } from '../errors.js';
import type { Bundle } from './bundle.js';
import { openEncoders, type Encoders } from './encoders.js';
import { matmul, maxRelError, normalizeRows } from './linalg.js';
import { floatTensor, readSafetensors } from './safetensors.js';
import type { SessionOptions } from './session.js';
import { pooledLength } from './text-length.js';

/** Float32 through another runtime agrees to ~1e-6; this leaves room for other CPUs and the CUDA EP. */
export const VERIFY_RTOL = 1e-4;

export interface VerifyReport {
  bundle: string;
  file: string;
  samples: number;
  provider: string;
  rtol: number;
  /** max |ours − source| / max |source| per output. */
  errors: { imageFeatures: number; textFeatures: number; imageEmbeds: number; textEmbeds: number };
  /**
   * Text lengths the check captions ran at: the context for the batch, and, when the encoders cut ids after the
   * end token, each caption alone at its own length (textFeatures' error covers every run).
   */
  textLengths: number[];
  ok: boolean;
}

export interface VerifyOptions extends SessionOptions {
  /** Reuse open encoders instead of creating sessions. */
  encoders?: Encoders;
  rtol?: number;
}

export async function verifyBundle(bundle: Bundle, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const file = bundle.paths.check;
  if (!file) {
    throw new MimicError('E_BUNDLE', `${bundle.paths.manifest} names no check file, so the bundle cannot be verified`, {
      file: bundle.paths.manifest,
      hint: 'bundles written by scripts/export_bundle.py carry check.safetensors',
    });
  }
  const st = await readSafetensors(file);
  const { dv, dt, p } = bundle.heads;
  const s = bundle.manifest.image.size;
  const L = bundle.manifest.text.context_length;
  const pixels = floatTensor(st, 'pixel_values', [-1, 3, s, s]);
  const n = pixels.shape[0]!;
  const ids = st.tensors.get('input_ids');
  if (!ids || !(ids.data instanceof BigInt64Array) || ids.shape.join(',') !== `${n},${L}`) {
    throw new MimicError('E_BUNDLE', `${file}: input_ids must be I64 [${n},${L}]`, { file });
  }
  const want = {
    imageFeatures: floatTensor(st, 'image_features', [n, dv]).data,
    textFeatures: floatTensor(st, 'text_features', [n, dt]).data,
    imageEmbeds: floatTensor(st, 'image_embeds', [n, p]).data,
    textEmbeds: floatTensor(st, 'text_embeds', [n, p]).data,
  };
  const enc = opts.encoders ?? await openEncoders(bundle, opts);
  try {
    const hi = await enc.imageFeatures(pixels.data, n);
    const ht = await enc.textFeatures(ids.data, n);
    // The batch holds a full-length caption, so it runs uncut; alone, each caption is cut to its own length.
    const textLengths = [enc.textLength.trimmed ? pooledLength(ids.data, n, L) : L];
    let cutError = 0;
    if (enc.textLength.trimmed) {
      for (let b = 0; b < n; b++) {
        const row = ids.data.slice(b * L, (b + 1) * L);
        textLengths.push(pooledLength(row, 1, L));
        const f = await enc.textFeatures(row, 1);
        cutError = Math.max(cutError, maxRelError(f, want.textFeatures.subarray(b * dt, (b + 1) * dt)));
      }
    }
    const x = normalizeRows(matmul(hi, n, dv, bundle.heads.visualProjection, p), n, p);
    const y = normalizeRows(matmul(ht, n, dt, bundle.heads.textProjection, p), n, p);
    const errors = {
      imageFeatures: maxRelError(hi, want.imageFeatures),
      textFeatures: Math.max(maxRelError(ht, want.textFeatures), cutError),
      imageEmbeds: maxRelError(x, want.imageEmbeds),
      textEmbeds: maxRelError(y, want.textEmbeds),
    };
    const rtol = opts.rtol ?? VERIFY_RTOL;
    return {
      bundle: bundle.dir,
      file,
      samples: n,
      provider: enc.provider,
      rtol,
      errors,
      textLengths,
      ok: Object.values(errors).every((e) => e <= rtol),
    };
  } finally {
    if (!opts.encoders) await enc.release();
  }
}
