/**
 * The mimic score the slow, obvious way: every a_ik = J_k ∂L_i/∂x_k as a P-vector ([B,B,P]), every G_i as a full
 * [D,P] matrix, then ⟨G_i, D⟩ and ‖G_i‖² entry by entry. Only for checking the closed form on small batches.
 */
import type { LayerScores, MimicFeaturesInput, MimicScores } from '../../src/mimic/types.js';

type M = number[][];
const mm = (a: M, b: M): M => a.map((row) => b[0]!.map((_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const dot = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i]!, 0);
const norm = (a: number[]): number => Math.sqrt(dot(a, a));

export function bruteForceScores(input: MimicFeaturesInput): MimicScores {
  const { imageFeatures: h, textFeatures: t } = input;
  const b = h.length;
  const e = Math.exp(input.logitScale);
  const u = mm(h, input.visualProjection);
  const v = mm(t, input.textProjection);
  const x = u.map((r) => r.map((val) => val / norm(r)));
  const y = v.map((r) => r.map((val) => val / norm(r)));
  const s = x.map((xi) => y.map((yj) => e * dot(xi, yj)));
  const softmax = (row: number[]): number[] => {
    const m = Math.max(...row);
    const ex = row.map((val) => Math.exp(val - m));
    const z = ex.reduce((acc, val) => acc + val, 0);
    return ex.map((val) => val / z);
  };
  const p = s.map(softmax); // p[i][j]
  const sT = s[0]!.map((_, j) => s.map((row) => row[j]!));
  const q = sT.map(softmax); // q[i][k] = column softmax q_ki
  const loss = p.map((_, i) => 0.5 * (-Math.log(p[i]![i]!) - Math.log(q[i]![i]!)));

  // dLdx[i][k] = ∂L_i/∂x_k straight from the chain rule through both cross-entropies (no folding of terms).
  const dLdx: M[] = [];
  const dLdy: M[] = [];
  for (let i = 0; i < b; i++) {
    const gx: M = Array.from({ length: b }, () => new Array<number>(x[0]!.length).fill(0));
    const gy: M = Array.from({ length: b }, () => new Array<number>(y[0]!.length).fill(0));
    for (let j = 0; j < b; j++) {
      // row term ½CE(S[i,:], i): ∂/∂S_ij = ½(p_ij − δ_ij)
      const rij = 0.5 * (p[i]![j]! - (i === j ? 1 : 0)) * e;
      // column term ½CE(S[:,i], i): ∂/∂S_ji = ½(q_ji − δ_ji)
      const cji = 0.5 * (q[i]![j]! - (i === j ? 1 : 0)) * e;
      for (let d = 0; d < gx[0]!.length; d++) {
        gx[i]![d]! += rij * y[j]![d]!;
        gy[j]![d]! += rij * x[i]![d]!;
        gx[j]![d]! += cji * y[i]![d]!;
        gy[i]![d]! += cji * x[j]![d]!;
      }
    }
    dLdx.push(gx);
    dLdy.push(gy);
  }
  const tower = (feat: M, w: M, ref: M, un: M, emb: M, grads: M[]): { dot: number[]; norm2: number[] } => {
    const dir = ref.map((row, r) => row.map((val, c) => val - w[r]![c]!));
    const dots: number[] = [];
    const norms2: number[] = [];
    for (let i = 0; i < b; i++) {
      const g: M = w.map((row) => row.map(() => 0));
      for (let k = 0; k < b; k++) {
        const nk = norm(un[k]!);
        const gk = grads[i]![k]!;
        const xg = dot(emb[k]!, gk);
        const a = gk.map((val, c) => (val - emb[k]![c]! * xg) / nk); // J_k ∂L_i/∂x_k
        for (let r = 0; r < g.length; r++) for (let c = 0; c < a.length; c++) g[r]![c]! += feat[k]![r]! * a[c]!;
      }
      let d = 0;
      let n2 = 0;
      for (let r = 0; r < g.length; r++) {
        for (let c = 0; c < g[0]!.length; c++) {
          d += g[r]![c]! * dir[r]![c]!;
          n2 += g[r]![c]! ** 2;
        }
      }
      dots.push(d);
      norms2.push(n2);
    }
    return { dot: dots, norm2: norms2 };
  };
  const vis = tower(h, input.visualProjection, input.refVisualProjection, u, x, dLdx);
  const txt = tower(t, input.textProjection, input.refTextProjection, v, y, dLdy);
  const frob = (a: M, bb: M): number => a.reduce((acc, row, r) => acc + row.reduce((s2, val, c) => s2 + (val - bb[r]![c]!) ** 2, 0), 0);
  const dv = Math.sqrt(frob(input.refVisualProjection, input.visualProjection));
  const dt = Math.sqrt(frob(input.refTextProjection, input.textProjection));
  const layer = (terms: { dot: number[]; norm2: number[] }, dn: number): LayerScores => {
    const gradNorm = terms.norm2.map(Math.sqrt);
    return {
      gradNorm,
      mimicProj: terms.dot.map((d) => (dn > 0 ? -d / dn : 0)),
      mimicCos: terms.dot.map((d, i) => (dn > 0 && gradNorm[i]! > 0 ? -d / (gradNorm[i]! * dn) : 0)),
    };
  };
  return {
    loss,
    clipSim: x.map((xi, i) => dot(xi, y[i]!)),
    visual: layer(vis, dv),
    text: layer(txt, dt),
    both: layer(
      { dot: vis.dot.map((d, i) => d + txt.dot[i]!), norm2: vis.norm2.map((n2, i) => n2 + txt.norm2[i]!) },
      Math.hypot(dv, dt),
    ),
  };
}
