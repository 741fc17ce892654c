/**
 * Per-sample scores of a pool with a proxy and a reference bundle, in memory, for the quality evaluation: the
 * proxy's encoders give the features, the gradient graph gives loss, CLIP score and mimic scores (DESIGN §5), the
 * reference's encoders give its own CLIP score. It also scores two controls that say whether the direction
 * W_ref − W carries information (DESIGN §4): D = −W (a "reference" with zero heads) and a random D with the
 * norm of the real one in each layer (a reference W + R, ‖R_layer‖ = ‖D_layer‖).
 *
 * Batches follow `mimic score`'s rules: B samples in shard order, never across shards; a shard's last, partial
 * batch takes its missing negatives from the tail of the shard's previous batch (scored as negatives only).
 */
import { DEFAULTS } from '../defaults.js';
import { MimicError, errorMessage } from '../errors.js';
import { preprocessInto } from '../image/preprocess.js';
import { buildGradGraph } from '../mimic/grad-graph.js';
import { GradSession, type BatchScores } from '../mimic/grad-session.js';
import { gradGraphHeads } from '../mimic/export.js';
import { MIMIC_LAYERS } from '../mimic/types.js';
import { loadBundle, type Bundle, type BundleHeads } from '../model/bundle.js';
import { openEncoders, type Encoders } from '../model/encoders.js';
import { assertCompatible } from '../model/lineage.js';
import { loadClipTokenizer } from '../text/tokenizer.js';
import { openShard } from '../wds/shard-reader.js';
import { rngFor } from './random.js';

export type DirectionKind = 'reference' | 'neg_w' | 'random';

/** Control columns are the mimic columns with this suffix, e.g. `mimic_proj_visual:neg_w`. */
export const CONTROL_SUFFIX: Record<Exclude<DirectionKind, 'reference'>, string> = { neg_w: ':neg_w', random: ':random' };

export interface DemoScoreOptions {
  /** Bundle folders, or bundles already loaded. */
  proxy: string | Bundle;
  reference: string | Bundle;
  /** Local shard paths, in order. */
  shards: readonly string[];
  batchSize?: number;
  /** Also score the controls D = −W and a random D (default true). */
  controls?: boolean;
  /** Seed of the random direction. */
  seed?: number;
  /** onnxruntime intra-op threads for the encoders (default: the library's). */
  intraOpThreads?: number;
  onProgress?: (rows: number) => void;
}

export interface DemoScores {
  shard: string[];
  row: number[];
  key: string[];
  uid: (string | null)[];
  /** 'ok', or why the row could not be scored (its values are NaN). */
  status: string[];
  /** Score-file columns (loss, clip_sim, ref_clip_sim, grad_norm_L, mimic_proj_L, mimic_cos_L) and controls. */
  columns: Record<string, Float32Array>;
}

function uidOf(meta: Buffer | undefined): string | null {
  if (!meta) return null;
  try {
    const u = (JSON.parse(meta.toString('utf8')) as { uid?: unknown }).uid;
    return typeof u === 'string' ? u : null;
  } catch {
    return null;
  }
}

/** A standard normal draw (Box–Muller) from a uniform generator. */
function normal(rand: () => number): number {
  let u = 0;
  while (u === 0) u = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

function norm(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s);
}

/**
 * The reference heads that make D = W_ref' − W a control: 'neg_w' gives zero heads (D = −W); 'random' gives
 * W + R with R Gaussian, scaled per layer to the norm of the real D (so ‖D‖ matches in visual, text and both).
 */
export function controlHeads(proxy: BundleHeads, reference: BundleHeads, kind: Exclude<DirectionKind, 'reference'>, seed = 0): BundleHeads {
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

/** Normalised embeddings' row-wise dot products: the CLIP score of each pair under one model. */
function clipScores(img: Float32Array, txt: Float32Array, heads: BundleHeads, b: number): Float32Array {
  const { dv, dt, p } = heads;
  const out = new Float32Array(b);
  const u = new Float64Array(p);
  const v = new Float64Array(p);
  for (let i = 0; i < b; i++) {
    u.fill(0);
    v.fill(0);
    for (let k = 0; k < dv; k++) {
      const h = img[i * dv + k]!;
      for (let j = 0; j < p; j++) u[j]! += h * heads.visualProjection[k * p + j]!;
    }
    for (let k = 0; k < dt; k++) {
      const t = txt[i * dt + k]!;
      for (let j = 0; j < p; j++) v[j]! += t * heads.textProjection[k * p + j]!;
    }
    let uu = 0;
    let vv = 0;
    let uv = 0;
    for (let j = 0; j < p; j++) {
      uu += u[j]! * u[j]!;
      vv += v[j]! * v[j]!;
      uv += u[j]! * v[j]!;
    }
    out[i] = uv / (Math.max(Math.sqrt(uu), 1e-12) * Math.max(Math.sqrt(vv), 1e-12));
  }
  return out;
}

export async function scoreDemoPool(opts: DemoScoreOptions): Promise<DemoScores> {
  const proxy = typeof opts.proxy === 'string' ? await loadBundle(opts.proxy, { hash: false }) : opts.proxy;
  const reference = typeof opts.reference === 'string' ? await loadBundle(opts.reference, { hash: false }) : opts.reference;
  assertCompatible(proxy, reference);
  const B = opts.batchSize ?? DEFAULTS.score.batchSize;
  if (!Number.isInteger(B) || B < 2) throw new MimicError('E_USAGE', `batch size ${B} must be an integer ≥ 2`);
  const withControls = opts.controls ?? true;
  const spec = proxy.manifest.image;
  const S = spec.size;
  const L = proxy.manifest.text.context_length;
  const padId = proxy.manifest.text.pad_id;
  const { dv, dt } = proxy.heads;
  const tokenizer = await loadClipTokenizer(proxy.paths.vocab);

  const kinds: DirectionKind[] = withControls ? ['reference', 'neg_w', 'random'] : ['reference'];
  const sessionOpts = { device: 'cpu', ...(opts.intraOpThreads ? { intraOpThreads: opts.intraOpThreads } : {}) };
  const encP = await openEncoders(proxy, sessionOpts);
  let encR: Encoders | undefined;
  const grads = new Map<DirectionKind, GradSession>();
  try {
    encR = await openEncoders(reference, sessionOpts);
    for (const kind of kinds) {
      const ref = kind === 'reference' ? reference.heads : controlHeads(proxy.heads, reference.heads, kind, opts.seed ?? 0);
      grads.set(kind, await GradSession.create(buildGradGraph(gradGraphHeads(proxy.heads, ref))));
    }

    const out: DemoScores = { shard: [], row: [], key: [], uid: [], status: [], columns: {} };
    // Values by output row: a failed row gets NaN at once, an ok one its values when its batch is scored.
    const values: Record<string, number[]> = {};
    const put = (name: string, row: number, v: number) => {
      (values[name] ??= [])[row] = v;
    };
    const layerColumns = (suffix: string) =>
      MIMIC_LAYERS.flatMap((l) => [`grad_norm_${l}${suffix}`, `mimic_proj_${l}${suffix}`, `mimic_cos_${l}${suffix}`]);
    const allColumns = ['loss', 'clip_sim', 'ref_clip_sim', ...layerColumns(''),
      ...(withControls ? [...layerColumns(CONTROL_SUFFIX.neg_w), ...layerColumns(CONTROL_SUFFIX.random)] : [])];

    for (const shard of opts.shards) {
      const opened = await openShard(shard);
      // Rows of this shard that decode, waiting for their batch; the previous batch's features fill the last one.
      let pixels = new Float32Array(B * 3 * S * S);
      let ids = new BigInt64Array(B * L);
      let pending: number[] = []; // indices into out.* of the rows in the current batch
      let prev: { img: Float32Array; txt: Float32Array; b: number } | null = null;

      const flush = async () => {
        const b = pending.length;
        if (b === 0) return;
        const img = await encP.imageFeatures(pixels.subarray(0, b * 3 * S * S), b);
        const txt = await encP.textFeatures(ids.subarray(0, b * L), b);
        const refImg = await encR!.imageFeatures(pixels.subarray(0, b * 3 * S * S), b);
        const refTxt = await encR!.textFeatures(ids.subarray(0, b * L), b);
        // Fillers: the tail of the previous batch, prepended, so that the real rows keep B − 1 negatives.
        const fill = prev && b < B ? Math.min(B - b, prev.b) : 0;
        const cat = (a: Float32Array, tail: Float32Array | undefined, width: number): Float32Array => {
          if (fill === 0 || !tail) return a;
          const c = new Float32Array((fill + b) * width);
          c.set(tail.subarray((prev!.b - fill) * width, prev!.b * width), 0);
          c.set(a, fill * width);
          return c;
        };
        const gi = cat(img, prev?.img, dv);
        const gt = cat(txt, prev?.txt, dt);
        const results = new Map<DirectionKind, BatchScores>();
        for (const [kind, g] of grads) results.set(kind, await g.run(gi, gt, fill + b));
        const refSim = clipScores(refImg, refTxt, reference.heads, b);
        const main = results.get('reference')!;
        for (let j = 0; j < b; j++) {
          const at = fill + j;
          const row = pending[j]!;
          put('loss', row, main.loss[at]!);
          put('clip_sim', row, main.clipSim[at]!);
          put('ref_clip_sim', row, refSim[j]!);
          for (const [kind, r] of results) {
            const suffix = kind === 'reference' ? '' : CONTROL_SUFFIX[kind];
            for (const l of MIMIC_LAYERS) {
              put(`grad_norm_${l}${suffix}`, row, r[l].gradNorm[at]!);
              put(`mimic_proj_${l}${suffix}`, row, r[l].mimicProj[at]!);
              put(`mimic_cos_${l}${suffix}`, row, r[l].mimicCos[at]!);
            }
          }
        }
        prev = { img, txt, b };
        pending = [];
        pixels = new Float32Array(B * 3 * S * S);
        ids = new BigInt64Array(B * L);
        opts.onProgress?.(out.row.length);
      };
      for await (const sample of opened.samples) {
        const row = out.row.length;
        out.shard.push(shard);
        out.row.push(sample.row);
        out.key.push(sample.key);
        out.uid.push(uidOf(sample.files.get(DEFAULTS.wds.metadataKey)));
        const imageExt = DEFAULTS.wds.imageKeys.find((k) => sample.files.has(k));
        const caption = sample.files.get(DEFAULTS.wds.captionKey);
        let status = sample.problem?.status ?? (!imageExt ? 'no_image' : !caption ? 'no_caption' : 'ok');
        if (status === 'ok') {
          try {
            await preprocessInto(sample.files.get(imageExt!)!, spec, pixels, pending.length * 3 * S * S);
          } catch (e) {
            status = `decode_error: ${errorMessage(e)}`;
          }
        }
        out.status.push(status);
        if (status !== 'ok') {
          for (const c of allColumns) put(c, row, NaN);
          continue;
        }
        tokenizer.tokenizeInto(caption!.toString('utf8'), L, ids, pending.length * L, padId);
        pending.push(row);
        if (pending.length === B) await flush();
      }
      await flush();
    }
    for (const c of allColumns) out.columns[c] = Float32Array.from({ length: out.row.length }, (_, i) => values[c]?.[i] ?? NaN);
    return out;
  } finally {
    await encP.release();
    await encR?.release();
    for (const g of grads.values()) await g.release();
  }
}
