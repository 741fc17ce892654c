/**
 * Makes an image encoder take uint8 pixels and normalise them inside the graph (DESIGN §8): onnxruntime-node
 * copies every input from the host, and uint8 moves a quarter of float32's bytes to a GPU.
 *
 * The prepended ops are torchvision's arithmetic, each step rounded to float32 (Cast, x/255, −mean, /std), so
 * the encoder sees exactly the floats the CPU preprocessing (src/image/normalize.ts) would have given it.
 */
import { MimicError } from '../../errors.js';
import { attribute, tensor } from './builder.js';
import { detachInput, pixelInputOf, rewriteEncoder } from './pixel-input.js';
import { DataType, type Dimension, type ModelProto, type NodeProto } from './proto.js';

export interface Uint8InputOptions {
  /** Per-channel mean and std of the [0, 1] pixels (the bundle's image.mean / image.std). */
  mean: [number, number, number] | number[];
  std: [number, number, number] | number[];
  /** Layout of the uint8 input: NHWC ([B,S,S,3], as decoders write pixels) or NCHW ([B,3,S,S]). */
  layout: 'NHWC' | 'NCHW';
}

/**
 * The encoder with a uint8 pixel input of the same name. Given bytes, returns the new model's bytes; given a
 * decoded model, rewrites it in place and returns it.
 */
export function withUint8Input(model: Uint8Array, opts: Uint8InputOptions): Uint8Array;
export function withUint8Input(model: ModelProto, opts: Uint8InputOptions): ModelProto;
export function withUint8Input(model: Uint8Array | ModelProto, opts: Uint8InputOptions): Uint8Array | ModelProto {
  return rewriteEncoder(model, (m) => rewrite(m, opts));
}

function rewrite(model: ModelProto, opts: Uint8InputOptions): ModelProto {
  const fail = (why: string): never => {
    throw new MimicError('E_ONNX', `cannot give the image encoder a uint8 input: ${why}`);
  };
  if (opts.mean.length !== 3 || opts.std.length !== 3) fail('mean and std need 3 values each');
  if (opts.std.some((s) => !(s > 0))) fail('std values must be positive');
  const { input, tensorType: tt, shape } = pixelInputOf(model, fail);
  // The encoder now reads `normalized`; the input's name becomes the uint8 input.
  const { normalized, fresh } = detachInput(model, input);
  const name = input.name;

  const f = Math.fround;
  const consts = {
    k255: fresh('255'),
    mean: fresh('mean'),
    std: fresh('std'),
  };
  model.graph.initializer.push(
    tensor(consts.k255, Float32Array.of(255), []),
    tensor(consts.mean, Float32Array.from(opts.mean.map(f)), [1, 3, 1, 1]),
    tensor(consts.std, Float32Array.from(opts.std.map(f)), [1, 3, 1, 1]),
  );
  const v = { cast: fresh('float'), chw: fresh('nchw'), unit: fresh('unit'), centred: fresh('centred') };
  const node = (op: string, ins: string[], out: string, attrs: NodeProto['attribute'] = []): NodeProto => ({
    input: ins,
    output: [out],
    name: fresh(op),
    opType: op,
    attribute: attrs,
  });
  const pre: NodeProto[] = [node('Cast', [name], v.cast, [attribute('to', DataType.FLOAT)])];
  let chw = v.cast;
  if (opts.layout === 'NHWC') {
    pre.push(node('Transpose', [v.cast], v.chw, [attribute('perm', [0, 3, 1, 2])]));
    chw = v.chw;
  }
  pre.push(node('Div', [chw, consts.k255], v.unit), node('Sub', [v.unit, consts.mean], v.centred), node('Div', [v.centred, consts.std], normalized));
  model.graph.node.unshift(...pre);

  const [b, c, h, w] = shape as [Dimension, Dimension, Dimension, Dimension];
  tt.elemType = DataType.UINT8;
  tt.shape = opts.layout === 'NHWC' ? [b, h, w, c] : [b, c, h, w];
  return model;
}
