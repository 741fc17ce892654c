/**
 * Does a proxy/reference pair make sense for mimic scores? The score projects a gradient on D = W_ref − W, which
 * only means something when both models share a lineage (same initialisation or backbone, hence the same feature
 * basis); two independently initialised towers give a direction that is noise (DESIGN §4). Evidence, cheapest
 * first: equal head shapes and preprocessing (else nothing can run), the heads' relative distance ‖D‖/‖W‖ and
 * cosine, and — given pool samples — how the two models' features agree: linear CKA (similar representations up to
 * rotation) and feature alignment (the same basis, which is what D needs).
 */
import { MimicError } from '../errors.js';
import { centerColumns, dot, norm, type Matrix } from './linalg.js';
import { bundleHash, type Bundle } from './bundle.js';

export type LayerName = 'visual' | 'text' | 'both';

export interface LayerLineage {
  layer: LayerName;
  /** Shape of W as [rows, cols] ('both' stacks visual over text). */
  shape: [number, number];
  normW: number;
  normRef: number;
  /** ‖W_ref − W‖. */
  normD: number;
  /** ‖W_ref − W‖ / ‖W‖: ≈ √2 for two independent draws of the same scale, small for a fine-tuned proxy. */
  relDistance: number;
  /** cos(W, W_ref) over all entries: ≈ 0 when unrelated, → 1 as the proxy nears the reference. */
  cosine: number;
}

export interface FeatureAgreement {
  tower: 'visual' | 'text';
  samples: number;
  /** Linear CKA of the two models' features on the same samples (0..1, invariant to rotations). */
  cka: number;
  /** Mean over samples of cos(centred proxy feature, centred reference feature): needs the same basis. */
  alignment: number;
}

export type LineageLevel = 'identical' | 'shares-lineage' | 'weak' | 'unrelated';

export interface LineageVerdict {
  level: LineageLevel;
  /** One plain-language sentence. */
  message: string;
}

export interface PairCheck {
  proxy: { dir: string; name: string };
  reference: { dir: string; name: string };
  heads: { dv: number; dt: number; p: number };
  logitScale: { proxy: number; reference: number };
  layers: LayerLineage[];
  features?: FeatureAgreement[];
  verdict: LineageVerdict;
}

/** Thresholds on the heads' cosine (and on feature alignment when measured). */
export const LINEAGE_THRESHOLDS = { shares: 0.5, weak: 0.1 } as const;

/** Compare two loaded bundles; throws E_BUNDLE when they cannot be used together at all. */
export async function checkPair(proxy: Bundle, reference: Bundle, features?: FeatureAgreement[]): Promise<PairCheck> {
  assertCompatible(proxy, reference);
  const vocabs = await Promise.all([bundleHash(proxy.dir, [proxy.paths.vocab]), bundleHash(reference.dir, [reference.paths.vocab])]);
  if (vocabs[0] !== vocabs[1]) {
    throw incompatible(proxy, reference, `their tokenizer vocabularies differ (${proxy.paths.vocab} vs ${reference.paths.vocab})`);
  }
  const a = proxy.heads;
  const b = reference.heads;
  const layers: LayerLineage[] = [
    layerStats('visual', [a.dv, a.p], [a.visualProjection], [b.visualProjection]),
    layerStats('text', [a.dt, a.p], [a.textProjection], [b.textProjection]),
    layerStats('both', [a.dv + a.dt, a.p], [a.visualProjection, a.textProjection], [b.visualProjection, b.textProjection]),
  ];
  return {
    proxy: { dir: proxy.dir, name: proxy.manifest.name },
    reference: { dir: reference.dir, name: reference.manifest.name },
    heads: { dv: a.dv, dt: a.dt, p: a.p },
    logitScale: { proxy: a.logitScale, reference: b.logitScale },
    layers,
    ...(features ? { features } : {}),
    verdict: lineageVerdict(layers, features),
  };
}

function incompatible(proxy: Bundle, reference: Bundle, why: string): MimicError {
  return new MimicError('E_BUNDLE', `proxy ${proxy.dir} and reference ${reference.dir} cannot be paired: ${why}`, {
    file: proxy.paths.manifest,
    hint: 'mimic scores need a proxy and a reference of the same architecture, preprocessing and tokenizer ' +
      '(e.g. the proxy fine-tuned from the reference)',
  });
}

export function assertCompatible(proxy: Bundle, reference: Bundle): void {
  const a = proxy.heads;
  const b = reference.heads;
  if (a.dv !== b.dv || a.dt !== b.dt || a.p !== b.p) {
    throw incompatible(proxy, reference, `head shapes differ: proxy visual_projection [${a.dv},${a.p}] text_projection ` +
      `[${a.dt},${a.p}], reference [${b.dv},${b.p}] and [${b.dt},${b.p}]`);
  }
  const pi = proxy.manifest.image;
  const ri = reference.manifest.image;
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  for (const k of ['size', 'mean', 'std', 'resize', 'interpolation'] as const) {
    if (!same(pi[k], ri[k])) {
      throw incompatible(proxy, reference, `image preprocessing differs: image.${k} is ${JSON.stringify(pi[k])} vs ${JSON.stringify(ri[k])}`);
    }
  }
  const pt = proxy.manifest.text;
  const rt = reference.manifest.text;
  for (const k of ['tokenizer', 'context_length', 'pad_id'] as const) {
    if (pt[k] !== rt[k]) {
      throw incompatible(proxy, reference, `tokenization differs: text.${k} is ${JSON.stringify(pt[k])} vs ${JSON.stringify(rt[k])}`);
    }
  }
}

function layerStats(layer: LayerName, shape: [number, number], w: Float32Array[], ref: Float32Array[]): LayerLineage {
  let ww = 0;
  let rr = 0;
  let wr = 0;
  let dd = 0;
  for (let t = 0; t < w.length; t++) {
    const x = w[t]!;
    const y = ref[t]!;
    for (let i = 0; i < x.length; i++) {
      const a = x[i]!;
      const b = y[i]!;
      ww += a * a;
      rr += b * b;
      wr += a * b;
      dd += (b - a) * (b - a);
    }
  }
  const normW = Math.sqrt(ww);
  const normRef = Math.sqrt(rr);
  return {
    layer,
    shape,
    normW,
    normRef,
    normD: Math.sqrt(dd),
    relDistance: normW > 0 ? Math.sqrt(dd) / normW : Infinity,
    cosine: normW > 0 && normRef > 0 ? wr / (normW * normRef) : 0,
  };
}

export function lineageVerdict(layers: LayerLineage[], features?: FeatureAgreement[]): LineageVerdict {
  const both = layers.find((l) => l.layer === 'both') ?? layers[0]!;
  if (layers.every((l) => l.normD === 0)) {
    return {
      level: 'identical',
      message: 'proxy and reference heads are identical: the direction W_ref − W is zero and every mimic score is 0',
    };
  }
  const worstCos = Math.min(...layers.map((l) => l.cosine));
  const align = features?.length ? Math.min(...features.map((f) => f.alignment)) : undefined;
  const evidence = align === undefined ? worstCos : Math.min(worstCos, align);
  const t = LINEAGE_THRESHOLDS;
  const facts = `heads cosine ${both.cosine.toFixed(3)}, ‖W_ref−W‖/‖W‖ = ${both.relDistance.toFixed(3)}` +
    (align === undefined ? '' : `, feature alignment ${align.toFixed(3)}`);
  if (evidence >= t.shares) {
    return { level: 'shares-lineage', message: `shares lineage: mimic scores are meaningful (${facts})` };
  }
  if (evidence >= t.weak) {
    return {
      level: 'weak',
      message: `weakly related: the models have drifted far apart, so the direction W_ref − W is mostly noise; ` +
        `treat mimic scores with care (${facts})`,
    };
  }
  const ckaNote = features?.some((f) => f.cka >= 0.5 && f.alignment < t.weak)
    ? '; their features are similar up to a rotation (high CKA) but in different bases'
    : '';
  return {
    level: 'unrelated',
    message: `unrelated: the direction W_ref − W has no meaning for these models, so mimic scores would be noise ` +
      `(${facts})${ckaNote}`,
  };
}

/**
 * Linear CKA (Kornblith et al. 2019) between X [n,dx] and Y [n,dy], features of the same n samples:
 * ⟨K, L⟩ / (‖K‖ ‖L‖) with K = XcXcᵀ, L = YcYcᵀ on column-centred features; computed with n×n Gram matrices.
 */
export function linearCka(x: Matrix, y: Matrix, n: number, dx: number, dy: number): number {
  if (n < 2) throw new MimicError('E_USAGE', 'linear CKA needs at least two samples');
  const k = gram(centerColumns(x, n, dx), n, dx);
  const l = gram(centerColumns(y, n, dy), n, dy);
  const denom = norm(k) * norm(l);
  return denom > 0 ? dot(k, l) / denom : 0;
}

/**
 * Mean over samples of cos(x_i − mean x, y_i − mean y): near 1 only when both models put the same sample at the
 * same place in the same coordinates; near 0 for unrelated bases even when CKA is high. Needs dx = dy.
 */
export function featureAlignment(x: Matrix, y: Matrix, n: number, d: number): number {
  const xc = centerColumns(x, n, d);
  const yc = centerColumns(y, n, d);
  let total = 0;
  for (let i = 0; i < n; i++) {
    let xy = 0;
    let xx = 0;
    let yy = 0;
    for (let j = 0; j < d; j++) {
      const a = xc[i * d + j]!;
      const b = yc[i * d + j]!;
      xy += a * b;
      xx += a * a;
      yy += b * b;
    }
    total += xx > 0 && yy > 0 ? xy / Math.sqrt(xx * yy) : 0;
  }
  return total / n;
}

function gram(x: Float64Array, n: number, d: number): Float64Array {
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += x[i * d + t]! * x[j * d + t]!;
      g[i * n + j] = s;
      g[j * n + i] = s;
    }
  }
  return g;
}

export function featureAgreement(tower: 'visual' | 'text', proxy: Matrix, reference: Matrix, n: number, d: number): FeatureAgreement {
  return { tower, samples: n, cka: linearCka(proxy, reference, n, d, d), alignment: featureAlignment(proxy, reference, n, d) };
}
