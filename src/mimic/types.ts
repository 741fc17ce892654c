/**
 * The mimic score's inputs and outputs (DESIGN §5), shared by the float64 reference, the ONNX gradient graph and
 * the pipeline. Field names follow the golden file `heads-v1.json` in camelCase.
 */

/** One batch in plain JS arrays: the fields of a golden case's `inputs`, plus the log logit scale. */
export interface MimicFeaturesInput {
  /** Pooled image features H, [B][Dv]. */
  imageFeatures: number[][];
  /** Pooled text features T, [B][Dt]. */
  textFeatures: number[][];
  /** Proxy visual head Wv, [Dv][P]. */
  visualProjection: number[][];
  /** Proxy text head Wt, [Dt][P]. */
  textProjection: number[][];
  /** Reference visual head, same shape as `visualProjection`. */
  refVisualProjection: number[][];
  /** Reference text head, same shape as `textProjection`. */
  refTextProjection: number[][];
  /** Log logit scale s (logits are exp(s)·x·y). */
  logitScale: number;
}

/** Scores of one scored layer, one entry per sample. */
export interface LayerScores<V = number[]> {
  /** ‖G_i‖_F, the per-sample gradient's norm at this layer. */
  gradNorm: V;
  /** ⟨−G_i, D⟩/‖D‖: the paper's mimic score (0 where ‖D‖ = 0). */
  mimicProj: V;
  /** ⟨−G_i, D⟩/(‖G_i‖‖D‖), 0 where ‖G_i‖ = 0 or ‖D‖ = 0. */
  mimicCos: V;
}

/** Every per-sample quantity of DESIGN §5 for one batch. */
export interface MimicScores<V = number[]> {
  /** L_i = ½(CE(S[i,:], i) + CE(S[:,i], i)). */
  loss: V;
  /** x_i·y_i, the proxy's CLIP similarity. */
  clipSim: V;
  visual: LayerScores<V>;
  text: LayerScores<V>;
  /** [Wv, Wt] as one parameter vector. */
  both: LayerScores<V>;
}

/** The layers that are scored, in the order of the score file's columns. */
export const MIMIC_LAYERS = ['visual', 'text', 'both'] as const;
export type MimicLayer = (typeof MIMIC_LAYERS)[number];
