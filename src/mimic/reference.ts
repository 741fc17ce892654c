/**
 * The mimic score in float64 plain JS, by the closed form of DESIGN §5. It is the oracle the ONNX gradient graph
 * is tested against, and a library function for programs that already hold features (e.g. from another runtime).
 *
 * Notation (one tower; the text tower swaps X↔Y and S↔Sᵀ): u_k = h_k W, n_k = ‖u_k‖, x_k = u_k/n_k,
 * S = e^s X Yᵀ, p = row softmax of S, q = column softmax, A_ki = x_k·y_i.
 * ∂L_i/∂x_i = g_i = ½e^s (Σ_{j≠i} p_ij y_j − (σr_i + σc_i) y_i) with σr_i = Σ_{j≠i} p_ij, σc_i = Σ_{k≠i} q_ki,
 * ∂L_i/∂x_k = c_ki y_i for k ≠ i, c_ki = ½e^s q_ki. With J_k = (I − x_k x_kᵀ)/n_k and a_ik = J_k ∂L_i/∂x_k:
 *   ⟨G_i, D⟩ = ρ_i·e_i + Σ_{k≠i} c_ki (y_i·ẽ_k),       ρ_i = J_i g_i, e_k = h_k D, ẽ_k = J_k e_k
 *   ‖G_i‖²   = K_ii‖ρ_i‖² + 2 Σ_l c_li K_il (ρ_i·y_i − (ρ_i·x_l) A_li)/n_l
 *            + w_iᵀ K (w_i − 2 z_i) + t_iᵀ (K∘X Xᵀ) t_i
 * where K = H Hᵀ, w_ki = c_ki/n_k, z_ki = w_ki A_ki², t_ki = w_ki A_ki (columns i of B×B matrices).
 * The diagonal of the column term is folded into g_i, and 1 − p_ii is summed from the off-diagonal
 * probabilities, so that nearly converged batches (p ≈ I) lose no digits to cancellation.
 */
import { MimicError } from '../errors.js';
import {
  colDots,
  frobeniusSquared,
  fromRows,
  get,
  map,
  matmul,
  matmulT,
  rowDots,
  subtract,
  zeros,
  type Mat,
} from './matrix.js';
import type { LayerScores, MimicFeaturesInput, MimicScores } from './types.js';

/** torch.nn.functional.normalize's floor on the norm: keeps a zero embedding finite (its scores are not). */
export const NORM_EPS = 1e-12;

/** What one tower's head contributes for every sample: ⟨G_i, D⟩ and ‖G_i‖². */
interface TowerTerms {
  dot: Float64Array;
  norm2: Float64Array;
}

export function mimicFromFeatures(input: MimicFeaturesInput): MimicScores {
  const m = readInput(input);
  const b = m.h.rows;
  const scale = Math.exp(input.logitScale);

  const u = matmul(m.h, m.wv);
  const v = matmul(m.t, m.wt);
  const nx = rowNorms(u);
  const ny = rowNorms(v);
  const x = map(u, (val, i) => val / nx[i]!);
  const y = map(v, (val, i) => val / ny[i]!);

  const a = matmulT(x, y); // A_ij = x_i·y_j
  const s = map(a, (val) => scale * val);
  const p = softmaxRows(s);
  const q = softmaxRows(transposeMat(s)); // q_T[i][k] = column softmax q_ki
  const sigmaRow = offDiagonalRowSums(p);
  const sigmaCol = offDiagonalRowSums(q);

  const loss = new Array<number>(b);
  const clipSim = new Array<number>(b);
  for (let i = 0; i < b; i++) {
    loss[i] = 0.5 * (crossEntropy(s, i, sigmaRow[i]!, false) + crossEntropy(s, i, sigmaCol[i]!, true));
    clipSim[i] = get(a, i, i);
  }

  const half = 0.5 * scale;
  const sigma = sigmaRow.map((v2, i) => v2 + sigmaCol[i]!);
  // Visual tower: g_i = ½e^s(Σ_{j≠i} p_ij y_j − σ_i y_i), c_ki = ½e^s q_ki.
  const gx = selfGradient(p, y, sigma, half);
  const cx = map(q, (val, i, k) => (i === k ? 0 : half * val)); // stored [i][k]; transposed below
  const visual = towerTerms(m.h, m.dv, x, nx, y, gx, transposeMat(cx), a);
  // Text tower: the same with X↔Y and S↔Sᵀ, so p and q trade places.
  const gy = selfGradient(q, x, sigma, half);
  const cy = map(p, (val, i, k) => (i === k ? 0 : half * val));
  const text = towerTerms(m.t, m.dt, y, ny, x, gy, transposeMat(cy), transposeMat(a));

  const dNormV = Math.sqrt(frobeniusSquared(m.dv));
  const dNormT = Math.sqrt(frobeniusSquared(m.dt));
  const dNormBoth = Math.sqrt(dNormV * dNormV + dNormT * dNormT);
  const both: TowerTerms = {
    dot: visual.dot.map((d, i) => d + text.dot[i]!),
    norm2: visual.norm2.map((n2, i) => n2 + text.norm2[i]!),
  };
  return {
    loss,
    clipSim,
    visual: layerScores(visual, dNormV),
    text: layerScores(text, dNormT),
    both: layerScores(both, dNormBoth),
  };
}

function layerScores(terms: TowerTerms, dNorm: number): LayerScores {
  const b = terms.dot.length;
  const gradNorm = new Array<number>(b);
  const mimicProj = new Array<number>(b);
  const mimicCos = new Array<number>(b);
  for (let i = 0; i < b; i++) {
    const g = Math.sqrt(Math.max(terms.norm2[i]!, 0)); // rounding can leave a zero norm slightly negative
    gradNorm[i] = g;
    // 0 − dot rather than −dot: a zero gradient scores +0, not −0.
    mimicProj[i] = dNorm > 0 ? (0 - terms.dot[i]!) / dNorm : 0;
    mimicCos[i] = dNorm > 0 && g > 0 ? (0 - terms.dot[i]!) / (g * dNorm) : 0;
  }
  return { gradNorm, mimicProj, mimicCos };
}

/**
 * One tower's ⟨G_i, D⟩ and ‖G_i‖² from B×B Gram matrices. `own` are this tower's embeddings (x), `other` the
 * other tower's (y), `g` the rows ∂L_i/∂x_i, `c` the off-diagonal coefficients c_ki (zero diagonal) and
 * `a` the cosine matrix A_ki = x_k·y_i.
 */
function towerTerms(h: Mat, dir: Mat, own: Mat, n: Float64Array, other: Mat, g: Mat, c: Mat, a: Mat): TowerTerms {
  const b = h.rows;
  const e = matmul(h, dir);
  const eTilde = projectOut(e, own, n);
  const rho = projectOut(g, own, n);

  // ⟨G_i, D⟩ = ρ_i·e_i + Σ_k c_ki (y_i·ẽ_k)
  const rhoE = rowDots(rho, e);
  const m = matmulT(other, eTilde); // M_ik = y_i·ẽ_k
  const dot = new Float64Array(b);
  for (let i = 0; i < b; i++) {
    let s = rhoE[i]!;
    for (let k = 0; k < b; k++) s += get(c, k, i) * get(m, i, k);
    dot[i] = s;
  }

  const k = matmulT(h, h);
  const xg = matmulT(own, own);
  const rhoY = rowDots(rho, other);
  const rhoRho = rowDots(rho, rho);
  const qm = matmulT(rho, own); // Q_il = ρ_i·x_l
  const w = map(c, (val, kk) => val / n[kk]!);
  const wMinus2z = map(w, (val, kk, i) => val - 2 * val * get(a, kk, i) ** 2);
  const t = map(w, (val, kk, i) => val * get(a, kk, i));
  const quadA = colDots(w, matmul(k, wMinus2z));
  const kx = map(k, (val, i, j) => val * get(xg, i, j));
  const quadB = colDots(t, matmul(kx, t));

  const norm2 = new Float64Array(b);
  for (let i = 0; i < b; i++) {
    let cross = 0;
    for (let l = 0; l < b; l++) {
      const cli = get(c, l, i);
      if (cli === 0) continue;
      cross += (cli * get(k, i, l) * (rhoY[i]! - get(qm, i, l) * get(a, l, i))) / n[l]!;
    }
    norm2[i] = get(k, i, i) * rhoRho[i]! + 2 * cross + quadA[i]! + quadB[i]!;
  }
  return { dot, norm2 };
}

/** Rows v_k ↦ J_k v_k = (v_k − x_k (x_k·v_k))/n_k. */
function projectOut(v: Mat, x: Mat, n: Float64Array): Mat {
  const xv = rowDots(x, v);
  return map(v, (val, k, j) => (val - get(x, k, j) * xv[k]!) / n[k]!);
}

/** Rows ½e^s (Σ_{j≠i} prob_ij other_j − σ_i other_i). */
function selfGradient(prob: Mat, other: Mat, sigma: Float64Array, half: number): Mat {
  const off = map(prob, (val, i, j) => (i === j ? -sigma[i]! : val));
  return map(matmul(off, other), (val) => half * val);
}

function softmaxRows(s: Mat): Mat {
  const out = zeros(s.rows, s.cols);
  for (let i = 0; i < s.rows; i++) {
    let max = -Infinity;
    for (let j = 0; j < s.cols; j++) max = Math.max(max, get(s, i, j));
    let sum = 0;
    for (let j = 0; j < s.cols; j++) sum += (out.data[i * s.cols + j] = Math.exp(get(s, i, j) - max));
    for (let j = 0; j < s.cols; j++) out.data[i * s.cols + j]! /= sum;
  }
  return out;
}

function offDiagonalRowSums(p: Mat): Float64Array {
  const out = new Float64Array(p.rows);
  for (let i = 0; i < p.rows; i++) for (let j = 0; j < p.cols; j++) if (i !== j) out[i]! += get(p, i, j);
  return out;
}

/**
 * CE(S[i,:], i) (or of column i): −log(1 − σ) by log1p while p_ii > ½, where σ carries all the digits of a small
 * loss; otherwise the log-sum-exp form, whose two terms are both non-negative.
 */
function crossEntropy(s: Mat, i: number, sigma: number, column: boolean): number {
  if (sigma < 0.5) return -Math.log1p(-sigma);
  const at = (j: number): number => (column ? get(s, j, i) : get(s, i, j));
  let max = -Infinity;
  for (let j = 0; j < s.rows; j++) max = Math.max(max, at(j));
  let sum = 0;
  for (let j = 0; j < s.rows; j++) sum += Math.exp(at(j) - max);
  return max - at(i) + Math.log(sum);
}

function rowNorms(u: Mat): Float64Array {
  const out = new Float64Array(u.rows);
  for (let i = 0; i < u.rows; i++) {
    let s = 0;
    for (let j = 0; j < u.cols; j++) s += get(u, i, j) ** 2;
    out[i] = Math.max(Math.sqrt(s), NORM_EPS);
  }
  return out;
}

function transposeMat(a: Mat): Mat {
  return map(zeros(a.cols, a.rows), (_, i, j) => get(a, j, i));
}

interface Checked {
  h: Mat;
  t: Mat;
  wv: Mat;
  wt: Mat;
  dv: Mat;
  dt: Mat;
}

function readInput(input: MimicFeaturesInput): Checked {
  try {
    if (!Number.isFinite(input.logitScale)) throw new RangeError('logitScale is not a finite number');
    const wv = fromRows(input.visualProjection, 'visualProjection');
    const wt = fromRows(input.textProjection, 'textProjection', wv.cols);
    const h = fromRows(input.imageFeatures, 'imageFeatures', wv.rows);
    const t = fromRows(input.textFeatures, 'textFeatures', wt.rows);
    if (h.rows !== t.rows) throw new RangeError(`${h.rows} image feature rows but ${t.rows} text feature rows`);
    if (h.rows === 0) throw new RangeError('the batch is empty');
    const refV = fromRows(input.refVisualProjection, 'refVisualProjection', wv.cols);
    const refT = fromRows(input.refTextProjection, 'refTextProjection', wt.cols);
    if (refV.rows !== wv.rows || refT.rows !== wt.rows) {
      throw new RangeError(
        `reference heads are ${refV.rows}x${refV.cols} and ${refT.rows}x${refT.cols}, ` +
          `proxy heads ${wv.rows}x${wv.cols} and ${wt.rows}x${wt.cols}`,
      );
    }
    return { h, t, wv, wt, dv: subtract(refV, wv), dt: subtract(refT, wt) };
  } catch (e) {
    if (e instanceof RangeError) {
      throw new MimicError('E_USAGE', `mimicFromFeatures: ${e.message}`, {
        hint: 'features are [B][D] and heads [D][P], with equal P and equal proxy/reference head shapes',
      });
    }
    throw e;
  }
}
