/**
 * One ONNX model holding the image encoder, the text encoder and the per-sample-gradient graph, for users who want
 * a single artifact (`mimic graph export --fused`). The score pipeline runs them as separate sessions (DESIGN §5).
 */
import { MimicError } from '../errors.js';
import { inlineExternalData, externalTensors, parseModel, serializeModel } from '../model/onnx/io.js';
import { assertRenamable, defaultOpset, graphInputs, mergeOpsets, prefixNodeNames, renameValues } from '../model/onnx/merge.js';
import type { ModelProto } from '../model/onnx/proto.js';
import { withUint8Input, type Uint8InputOptions } from '../model/onnx/uint8-input.js';
import { irVersionForOpset } from '../model/onnx/builder.js';
import { buildGradGraph, GRAD_GRAPH_INPUTS, type GradGraphHeads, type GradGraphOptions } from './grad-graph.js';

/** An encoder's ONNX bytes, with the folder its external data files lie in (if it has any). */
export type OnnxSource = Uint8Array | { bytes: Uint8Array; baseDir?: string; file?: string };

export interface FuseOptions {
  /** Give the fused model uint8 pixels normalised inside the graph (see withUint8Input). */
  uint8Pixels?: Uint8InputOptions;
  /** Options for the gradient graph when it is built here from heads (the opset follows the encoders'). */
  gradGraph?: Omit<GradGraphOptions, 'opset'>;
}

/** Names of the fused model's inputs: those of the bundle's encoders (DESIGN §4). */
export const FUSED_INPUTS = { pixels: 'pixel_values', tokens: 'input_ids' } as const;

/**
 * Fuses the encoders and the gradient graph. `grad` is either a built graph (its opset must equal the encoders')
 * or the heads to build it from at the encoders' opset. Returns the model's bytes; a model over protobuf's 2 GiB
 * limit, an encoder with external data and no baseDir, or mismatched opsets are E_ONNX errors.
 */
export function fuseBundleGraph(visual: OnnxSource, textual: OnnxSource, grad: Uint8Array | GradGraphHeads, opts: FuseOptions = {}): Uint8Array {
  const vis = load(visual, 'the image encoder');
  const txt = load(textual, 'the text encoder');
  const encoderOpsets = mergeOpsets([
    { what: 'the image encoder', model: vis },
    { what: 'the text encoder', model: txt },
  ]);
  const opset = defaultOpset(vis) || defaultOpset(txt);
  const gradModel =
    grad instanceof Uint8Array
      ? parseModel(grad, 'the gradient graph')
      : parseModel(buildGradGraph(grad, { ...opts.gradGraph, opset }), 'the gradient graph');
  if (defaultOpset(gradModel) !== opset) {
    throw new MimicError('E_ONNX', `the gradient graph uses opset ${defaultOpset(gradModel)} but the encoders use ${opset}`, {
      hint: `build it with buildGradGraph(heads, { opset: ${opset} }), or pass the heads and let fuseBundleGraph build it`,
    });
  }
  if (opts.uint8Pixels) withUint8Input(vis, opts.uint8Pixels);

  const visIn = single(graphInputs(vis.graph), 'inputs', 'the image encoder');
  const visOut = pickOutput(vis, 'image_features', 'the image encoder');
  const txtIn = single(graphInputs(txt.graph), 'inputs', 'the text encoder');
  const txtOut = pickOutput(txt, 'text_features', 'the text encoder');
  const featureName = { [GRAD_GRAPH_INPUTS.image]: visOut.name, [GRAD_GRAPH_INPUTS.text]: txtOut.name };

  // Each part's names get a prefix; the model's inputs keep the bundle's names and the outputs the graph's.
  const visualNames = (n: string): string => (n === visIn.name ? FUSED_INPUTS.pixels : `visual/${n}`);
  const textNames = (n: string): string => (n === txtIn.name ? FUSED_INPUTS.tokens : `text/${n}`);
  const gradOutputs = new Set(gradModel.graph.output.map((o) => o.name));
  const gradNames = (n: string): string => {
    if (n === GRAD_GRAPH_INPUTS.image) return visualNames(featureName[n]);
    if (n === GRAD_GRAPH_INPUTS.text) return textNames(featureName[n]);
    return gradOutputs.has(n) ? n : `grad/${n}`;
  };
  renameValues(vis.graph, visualNames);
  renameValues(txt.graph, textNames);
  renameValues(gradModel.graph, gradNames);
  prefixNodeNames(vis.graph, 'visual/');
  prefixNodeNames(txt.graph, 'text/');
  prefixNodeNames(gradModel.graph, 'grad/');

  const opsetImport = mergeOpsets([
    { what: 'the encoders', model: { ...vis, opsetImport: encoderOpsets } },
    { what: 'the gradient graph', model: gradModel },
  ]);
  const fused: ModelProto = {
    irVersion: Math.max(vis.irVersion, txt.irVersion, gradModel.irVersion, irVersionForOpset(opset)),
    opsetImport,
    producerName: 'grad-mimic',
    docString: 'CLIP image and text encoders with the per-sample-gradient graph (mimic scores), fused',
    graph: {
      name: 'mimic_fused',
      node: [...vis.graph.node, ...txt.graph.node, ...gradModel.graph.node],
      initializer: [...vis.graph.initializer, ...txt.graph.initializer, ...gradModel.graph.initializer],
      input: [visIn, txtIn],
      output: gradModel.graph.output,
      valueInfo: [...vis.graph.valueInfo, ...txt.graph.valueInfo, ...gradModel.graph.valueInfo],
    },
    metadataProps: [...(gradModel.metadataProps ?? []), { key: 'fused', value: 'visual+textual+grad' }],
  };
  return serializeModel(fused, 'the fused model');
}

function load(src: OnnxSource, what: string): ModelProto {
  const { bytes, baseDir, file } = src instanceof Uint8Array ? { bytes: src, baseDir: undefined, file: undefined } : src;
  const model = parseModel(bytes, file ?? what);
  assertRenamable(model, file ?? what);
  if (externalTensors(model.graph).length > 0) {
    if (baseDir === undefined) {
      throw new MimicError('E_ONNX', `${file ?? what} keeps its weights in external data files`, {
        file,
        hint: 'pass { bytes, baseDir } with the folder that holds the .onnx file and its data files',
      });
    }
    inlineExternalData(model, baseDir, file ?? what);
  }
  return model;
}

/** The output named `name` (the bundle's convention), or the only output. */
function pickOutput(model: ModelProto, name: string, what: string): ModelProto['graph']['output'][number] {
  return model.graph.output.find((o) => o.name === name) ?? single(model.graph.output, 'outputs', what);
}

function single<T>(list: T[], what: string, model: string): T {
  if (list.length !== 1) throw new MimicError('E_ONNX', `${model} has ${list.length} ${what}, expected exactly one`);
  return list[0]!;
}
