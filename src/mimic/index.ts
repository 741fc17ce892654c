/** The mimic score: float64 reference, the per-sample-gradient ONNX graph, its session, and model export. */
export { mimicFromFeatures, NORM_EPS } from './reference.js';
export { readGoldenFile, type GoldenCase } from './golden.js';
export { MIMIC_LAYERS, type MimicLayer, type MimicFeaturesInput, type MimicScores, type LayerScores } from './types.js';
export {
  buildGradGraph,
  GRAD_GRAPH_DEFAULT_OPSET,
  GRAD_GRAPH_FORMAT,
  GRAD_GRAPH_INPUTS,
  GRAD_GRAPH_OUTPUTS,
  type GradGraphHeads,
  type GradGraphOptions,
  type GradGraphOutput,
} from './grad-graph.js';
export { GradSession, defaultSessionOptions, scoresFromOutputs, type BatchScores, type GradSessionOptions } from './grad-session.js';
export { fuseBundleGraph, FUSED_INPUTS, type FuseOptions, type OnnxSource } from './fused.js';
export { exportGradGraph, exportFusedModel, gradGraphHeads, writeModel, type FusedExportOptions } from './export.js';
