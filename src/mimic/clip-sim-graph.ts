/**
 * The reference model's CLIP score, x_i·y_i with x = normalize(H W_v), y = normalize(T W_t): the number
 * DataComp's CLIP-score filter uses. A graph of its own (not the gradient graph with D = 0) so that it costs two
 * matmuls and no B×B work, and runs on whatever device the reference encoders use.
 */
import { GraphBuilder } from '../model/onnx/builder.js';
import { Ops } from '../model/onnx/ops.js';
import { DataType } from '../model/onnx/proto.js';
import { GRAD_GRAPH_DEFAULT_OPSET, GRAD_GRAPH_INPUTS } from './grad-graph.js';
import { NORM_EPS } from './reference.js';

export const CLIP_SIM_OUTPUT = 'clip_sim';

export function buildClipSimGraph(heads: {
  visualProjection: Float32Array;
  textProjection: Float32Array;
  dv: number;
  dt: number;
  p: number;
}): Uint8Array {
  const { dv, dt, p } = heads;
  const g = new GraphBuilder({ opset: GRAD_GRAPH_DEFAULT_OPSET, name: 'clip_sim' });
  const o = new Ops(g, 'float32');
  const h = g.input(GRAD_GRAPH_INPUTS.image, DataType.FLOAT, ['B', dv]);
  const t = g.input(GRAD_GRAPH_INPUTS.text, DataType.FLOAT, ['B', dt]);
  const u = o.matmul(h, g.initializer('visual_projection', heads.visualProjection, [dv, p]));
  const v = o.matmul(t, g.initializer('text_projection', heads.textProjection, [dt, p]));
  // As torch's F.normalize: the norm is floored at 1e-12.
  const norm = (z: string): string => o.max(o.sqrt(o.sum(o.mul(z, z), 1)), o.scalar(NORM_EPS));
  const sim = o.div(o.sum(o.mul(u, v), 1), o.mul(norm(u), norm(v)));
  g.output(sim, CLIP_SIM_OUTPUT, DataType.FLOAT, ['B']);
  return g.encode({ producerName: 'grad-mimic', docString: 'CLIP score x_i·y_i of pooled features' });
}
