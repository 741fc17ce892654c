/**
 * The per-sample-gradient graph (DESIGN §5) as ONNX: pooled features in, B-length score vectors out. The proxy
 * heads, the direction D = W_ref − W and the logit scale are initializers; everything per batch is built from
 * B×B Gram matrices (the closed form documented in reference.ts), never [B,B,P] tensors.
 *
 * Numerical care: 1 − p_ii is summed from the off-diagonal probabilities and the loss uses log1p there, so nearly
 * converged batches keep their small losses; each sample's gradient is computed scaled to O(1) and scaled back,
 * so tiny gradients do not underflow; D and the 1/‖D‖ factors are computed in float64.
 */
import { DEFAULTS } from '../defaults.js';
import { MimicError } from '../errors.js';
import { GraphBuilder } from '../model/onnx/builder.js';
import { Ops, type Precision } from '../model/onnx/ops.js';
import { DataType } from '../model/onnx/proto.js';
import { NORM_EPS } from './reference.js';
import { MIMIC_LAYERS } from './types.js';

/** The proxy and reference heads, row-major float32 as stored in a bundle's heads.safetensors. */
export interface GradGraphHeads {
  /** Wv, [dv, p]. */
  visualProjection: Float32Array;
  /** Wt, [dt, p]. */
  textProjection: Float32Array;
  refVisualProjection: Float32Array;
  refTextProjection: Float32Array;
  /** Log logit scale of the proxy. */
  logitScale: number;
  dv: number;
  dt: number;
  p: number;
}

export interface GradGraphOptions {
  /** Default-domain opset (13 or later). Match the encoders' when the graph is to be fused with them. */
  opset?: number;
  /**
   * What the graph computes in (inputs and outputs stay float32). float64 costs little next to the encoders and
   * keeps full float32 accuracy where the towers' terms cancel in `both`; float32 halves the graph's memory.
   */
  precision?: Precision;
}

export const GRAD_GRAPH_DEFAULT_OPSET = 17;
export const GRAD_GRAPH_INPUTS = { image: 'image_features', text: 'text_features' } as const;

/** Output names, in the score file's column order. */
export const GRAD_GRAPH_OUTPUTS = [
  'loss',
  'clip_sim',
  ...MIMIC_LAYERS.flatMap((l) => [`grad_norm_${l}`, `mimic_proj_${l}`, `mimic_cos_${l}`]),
] as const;
export type GradGraphOutput = (typeof GRAD_GRAPH_OUTPUTS)[number];

/** Marks the graph in its metadata, so tools can recognise (and version) it. */
export const GRAD_GRAPH_FORMAT = 'mimic-grad/1';

export function buildGradGraph(heads: GradGraphHeads, opts: GradGraphOptions = {}): Uint8Array {
  checkHeads(heads);
  const { dv, dt, p } = heads;
  const g = new GraphBuilder({ opset: opts.opset ?? GRAD_GRAPH_DEFAULT_OPSET, name: 'mimic_grad' });
  const precision = opts.precision ?? DEFAULTS.gradGraph.precision;
  const o = new Ops(g, precision);
  const fromInput = (name: string): string => (precision === 'float32' ? name : o.cast(name, o.floatCode));

  const h = fromInput(g.input(GRAD_GRAPH_INPUTS.image, DataType.FLOAT, ['B', dv]));
  const t = fromInput(g.input(GRAD_GRAPH_INPUTS.text, DataType.FLOAT, ['B', dt]));
  const wv = g.initializer('visual_projection', o.array(heads.visualProjection), [dv, p]);
  const wt = g.initializer('text_projection', o.array(heads.textProjection), [dt, p]);
  const dirV = direction(heads.refVisualProjection, heads.visualProjection);
  const dirT = direction(heads.refTextProjection, heads.textProjection);
  const dvName = g.initializer('direction_visual', o.array(dirV.d), [dv, p]);
  const dtName = g.initializer('direction_text', o.array(dirT.d), [dt, p]);

  const scale = Math.exp(heads.logitScale);
  const half = o.scalar(0.5 * scale);

  // Embeddings, as torch's F.normalize (norm floored at 1e-12).
  const u = o.matmul(h, wv);
  const v = o.matmul(t, wt);
  const nx = o.max(o.sqrt(o.sum(o.mul(u, u), 1, true)), o.scalar(NORM_EPS)); // [B,1]
  const ny = o.max(o.sqrt(o.sum(o.mul(v, v), 1, true)), o.scalar(NORM_EPS));
  const x = o.div(u, nx);
  const y = o.div(v, ny);

  const a = o.gemm(x, y, { transB: true }); // A_ij = x_i·y_j
  const s = o.mul(a, o.scalar(scale));
  const eye = o.eyeLike(s);
  const off = o.sub(o.scalar(1), eye);
  const pRow = o.mul(o.softmax(s, 1), off); // p_ij, zero diagonal
  const qCol = o.mul(o.softmax(s, 0), off); // q_ki (column softmax), zero diagonal
  const sigmaRow = o.sum(pRow, 1); // 1 − p_ii, without the cancellation
  const sigmaCol = o.sum(qCol, 0);

  // Loss: −log1p(−σ) while p_ii > ½ (small losses keep their digits), log-sum-exp form otherwise.
  const diagS = o.sum(o.mul(s, eye), 1);
  const ce = (sigma: string, axis: number): string => {
    const lse = o.sub(o.reduce('ReduceLogSumExp', s, [axis]), diagS);
    return o.where(o.less(sigma, o.scalar(0.5)), o.neg(log1p(o, o.neg(sigma))), lse);
  };
  emit(o, o.mul(o.add(ce(sigmaRow, 1), ce(sigmaCol, 0)), o.scalar(0.5)), 'loss');
  emit(o, o.sum(o.mul(x, y), 1), 'clip_sim');

  // Coefficients of ∂L_i/∂x_k: for k ≠ i it is c_ki y_i with c_ki = ½e^s q_ki (visual; ½e^s p_ik for text), and
  // ∂L_i/∂x_i = ½e^s (Σ_j p_ij y_j − σ_i y_i), σ_i = σr_i + σc_i. Sample i's coefficients are all divided by
  // γ_i = ½e^s σ_i (≥ each of them), and its scores multiplied back by γ_i at the end: a nearly converged
  // sample's gradient (1e-20 at logit scale 100) would otherwise underflow in ‖G_i‖², and no product with a
  // scalar factor sits next to a MatMul, which onnxruntime would fuse into FusedMatMul with a float32 alpha.
  const sigma = o.add(sigmaRow, sigmaCol);
  const sigmaSafe = o.where(o.greater(sigma, o.scalar(0)), sigma, o.scalar(1));
  const pScaled = o.div(pRow, o.unsqueeze(sigmaSafe, [1])); // row i / σ_i
  const qScaled = o.div(qCol, o.unsqueeze(sigmaSafe, [0])); // column i / σ_i
  const selfDiag = o.mul(eye, o.unsqueeze(o.div(sigma, sigmaSafe), [1])); // 1 on the diagonal (0 if σ_i = 0)
  const gx = o.matmul(o.sub(pScaled, selfDiag), y); // (Σ_j p_ij y_j − σ_i y_i)/σ_i
  const gy = o.gemm(o.sub(qScaled, selfDiag), x, { transA: true }); // (Σ_k q_ki x_k − σ_i x_i)/σ_i
  const aT = o.transpose(a, [1, 0]);
  const pScaledT = o.transpose(pScaled, [1, 0]);

  const vis = tower(o, { h, dir: dvName, own: x, n: nx, other: y, self: gx, c: qScaled, a });
  const txt = tower(o, { h: t, dir: dtName, own: y, n: ny, other: x, self: gy, c: pScaledT, a: aT });
  const both = { dot: o.add(vis.dot, txt.dot), norm2: o.add(vis.norm2, txt.norm2) };
  const gamma = o.mul(sigma, half);
  const dNormBoth = Math.hypot(dirV.norm, dirT.norm);
  layerOutputs(o, 'visual', vis, gamma, dirV.norm);
  layerOutputs(o, 'text', txt, gamma, dirT.norm);
  layerOutputs(o, 'both', both, gamma, dNormBoth);

  return g.encode({
    producerName: 'grad-mimic',
    docString: 'Per-sample gradients of the CLIP loss at the projection heads, projected on W_ref − W (DESIGN §5)',
    metadata: {
      format: GRAD_GRAPH_FORMAT,
      precision,
      dv: String(dv),
      dt: String(dt),
      p: String(p),
      logit_scale: String(heads.logitScale),
      direction_norm_visual: String(dirV.norm),
      direction_norm_text: String(dirT.norm),
    },
  });
}

interface TowerInputs {
  /** Pooled features H [B,D]. */
  h: string;
  /** Direction D [D,P]. */
  dir: string;
  /** This tower's embeddings [B,P] and their pre-normalisation norms [B,1]. */
  own: string;
  n: string;
  /** The other tower's embeddings [B,P]. */
  other: string;
  /** Rows ∂L_i/∂x_i [B,P]. */
  self: string;
  /** C[k,i] = c_ki, zero diagonal [B,B]. */
  c: string;
  /** A[k,i] = x_k·y_i [B,B]. */
  a: string;
}

/** ⟨G_i, D⟩ and ‖G_i‖² of one head, both [B]. Formulas: reference.ts. */
function tower(o: Ops, t: TowerInputs): { dot: string; norm2: string } {
  const projectOut = (vec: string): string =>
    o.div(o.sub(vec, o.mul(t.own, o.sum(o.mul(t.own, vec), 1, true))), t.n); // J_k v_k
  const e = o.matmul(t.h, t.dir);
  const eTilde = projectOut(e);
  const rho = projectOut(t.self);

  // ⟨G_i, D⟩ = ρ_i·e_i + Σ_k c_ki (ẽ_k·y_i)
  const mT = o.gemm(eTilde, t.other, { transB: true }); // [k,i] = ẽ_k·y_i
  const dot = o.add(o.sum(o.mul(rho, e), 1), o.sum(o.mul(t.c, mT), 0));

  const k = o.gemm(t.h, t.h, { transB: true });
  const kDiag = o.sum(o.mul(t.h, t.h), 1);
  const xg = o.gemm(t.own, t.own, { transB: true });
  const rhoRho = o.sum(o.mul(rho, rho), 1);
  const rhoY = o.unsqueeze(o.sum(o.mul(rho, t.other), 1), [0]); // [1,B]: indexed by i along columns
  const qT = o.gemm(t.own, rho, { transB: true }); // [l,i] = x_l·ρ_i
  // Σ_l c_li K_li (ρ_i·y_i − (x_l·ρ_i) A_li) / n_l
  const cross = o.sum(o.div(o.mul(o.mul(t.c, k), o.sub(rhoY, o.mul(qT, t.a))), t.n), 0);
  const w = o.div(t.c, t.n); // w_ki = c_ki / n_k
  const tw = o.mul(w, t.a); // t_ki = w_ki A_ki
  const wMinus2z = o.sub(w, o.mul(o.mul(tw, t.a), o.scalar(2)));
  const quadA = o.sum(o.mul(w, o.matmul(k, wMinus2z)), 0);
  const quadB = o.sum(o.mul(tw, o.matmul(o.mul(k, xg), tw)), 0);
  const norm2 = o.add(o.add(o.mul(kDiag, rhoRho), o.mul(cross, o.scalar(2))), o.add(quadA, quadB));
  return { dot, norm2 };
}

/** Scores of one layer from its per-sample ⟨G̃_i, D⟩ and ‖G̃_i‖², where G_i = γ_i G̃_i. */
function layerOutputs(o: Ops, layer: string, terms: { dot: string; norm2: string }, gamma: string, dNorm: number): void {
  const zero = o.scalar(0);
  const scaledNorm = o.sqrt(o.max(terms.norm2, zero)); // rounding can leave a zero norm slightly negative
  emit(o, o.mul(gamma, scaledNorm), `grad_norm_${layer}`);
  const invD = dNorm > 0 ? 1 / dNorm : 0; // a zero direction scores 0
  const scaledProj = o.mul(o.sub(zero, terms.dot), o.scalar(invD));
  emit(o, o.mul(gamma, scaledProj), `mimic_proj_${layer}`);
  const positive = o.greater(scaledNorm, zero);
  const safeNorm = o.where(positive, scaledNorm, o.scalar(1));
  emit(o, o.where(positive, o.div(scaledProj, safeNorm), zero), `mimic_cos_${layer}`);
}

/** A float32 [B] graph output. */
function emit(o: Ops, value: string, name: GradGraphOutput): void {
  const v = o.precision === 'float32' ? value : o.cast(value, DataType.FLOAT);
  o.g.output(v, name, DataType.FLOAT, ['B']);
}

/** log1p(z) for float32 by Goldberg's correction: log(1+z)·z/((1+z)−1), and z where 1+z rounds to 1. */
function log1p(o: Ops, z: string): string {
  const u = o.add(o.scalar(1), z);
  const d = o.sub(u, o.scalar(1));
  const exact = o.equal(d, o.scalar(0));
  const safeD = o.where(exact, o.scalar(1), d);
  return o.where(exact, z, o.mul(o.log(u), o.div(z, safeD)));
}

/** D = W_ref − W and ‖D‖_F in float64 (exact for float32 heads), rounded once if the graph is float32. */
function direction(ref: Float32Array, w: Float32Array): { d: Float64Array; norm: number } {
  const d = new Float64Array(w.length);
  let sq = 0;
  for (let i = 0; i < w.length; i++) {
    const v = ref[i]! - w[i]!;
    d[i] = v;
    sq += v * v;
  }
  return { d, norm: Math.sqrt(sq) };
}

function checkHeads(h: GradGraphHeads): void {
  const problems: string[] = [];
  for (const [k, v] of Object.entries({ dv: h.dv, dt: h.dt, p: h.p })) {
    if (!Number.isInteger(v) || v <= 0) problems.push(`${k} = ${v} is not a positive integer`);
  }
  const want = { visualProjection: h.dv * h.p, refVisualProjection: h.dv * h.p, textProjection: h.dt * h.p, refTextProjection: h.dt * h.p };
  for (const [k, n] of Object.entries(want)) {
    const arr = h[k as keyof typeof want];
    if (!(arr instanceof Float32Array)) problems.push(`${k} is not a Float32Array`);
    else if (arr.length !== n) problems.push(`${k} has ${arr.length} values, expected ${n}`);
    else if (!arr.every(Number.isFinite)) problems.push(`${k} holds non-finite values`);
  }
  if (!Number.isFinite(h.logitScale)) problems.push(`logitScale = ${h.logitScale} is not finite`);
  if (problems.length > 0) {
    throw new MimicError('E_BUNDLE', `cannot build the gradient graph: ${problems.join('; ')}`, {
      hint: 'proxy and reference heads must be float32 [Dv,P] and [Dt,P] of equal shapes',
    });
  }
}
