/**
 * An image encoder that takes the decoded image itself, uint8 [B,H,W,3] of one fixed source size (e.g. the
 * 256×256 JPEGs img2dataset writes by default), and does CLIP's resize, centre crop and normalisation in its
 * graph: the CPU then only decodes (DESIGN §8: decode alone is about half the CPU cost of decode + resize).
 * Images of another size in the same batch arrive resized on the CPU, S×S in the frame's top-left corner, marked
 * in a second input (`RESIZED_MASK_INPUT`, bool [B]): those rows skip the graph's resize.
 *
 * The resize is ONNX Resize (opset 18) with PIL's choices: cubic a = −0.5, half-pixel centres, the kernel widened
 * by the scale when shrinking (antialias) and renormalised at the borders (exclude_outside), the result rounded
 * and clipped to 0..255 as PIL's 8-bit output is, then torchvision's float32 ToTensor/Normalize steps. It is not
 * bit-exact: PIL rounds its horizontal pass to 8 bits before the vertical one and works in 22-bit fixed point,
 * ONNX Resize runs both passes in float. The difference is measured in test/model/resize-input.test.ts.
 * Opt-in only: the default pipeline resizes on the CPU (bit-exact PIL when enlarging, libvips when shrinking).
 */
import { MimicError } from '../../errors.js';
import { attribute, tensor } from './builder.js';
import { defaultOpset } from './merge.js';
import { detachInput, pixelInputOf, rewriteEncoder } from './pixel-input.js';
import { DataType, type Dimension, type ModelProto, type NodeProto } from './proto.js';

export interface ResizingInputOptions {
  mean: [number, number, number] | number[];
  std: [number, number, number] | number[];
  /** The one source size every image of a batch has. */
  from: { width: number; height: number };
  /** S: the encoder's square input side. */
  size: number;
  /** CLIP's rule ('shortest': shorter side to S, longer side int(S·long/short), centre crop) or both sides to S. */
  resize: 'shortest' | 'squash';
}

/** The second input: true for the rows the CPU already resized to S×S (top-left of the H×W frame). */
export const RESIZED_MASK_INPUT = 'pixels_resized_on_cpu';

/** Ops whose signature changed at opset 18 (axes moved to an input): a model using them cannot simply be moved to 18. */
const CHANGED_AT_18 = /^Reduce(L1|L2|LogSum|LogSumExp|Max|Mean|Min|Prod|SumSquare)$/;

/** torchvision's Resize + CenterCrop geometry (src/image/spec.ts has the same rule for the CPU path). */
export function resizeCropGeometry(width: number, height: number, size: number, mode: 'shortest' | 'squash'): { h: number; w: number; top: number; left: number } {
  if (mode === 'squash') return { h: size, w: size, top: 0, left: 0 };
  const [w, h] = width <= height ? [size, Math.trunc((size * height) / width)] : [Math.trunc((size * width) / height), size];
  const half = (x: number) => {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  };
  return { h, w, top: half((h - size) / 2), left: half((w - size) / 2) };
}

export function withResizingUint8Input(model: Uint8Array, opts: ResizingInputOptions): Uint8Array;
export function withResizingUint8Input(model: ModelProto, opts: ResizingInputOptions): ModelProto;
export function withResizingUint8Input(model: Uint8Array | ModelProto, opts: ResizingInputOptions): Uint8Array | ModelProto {
  return rewriteEncoder(model, (m) => rewrite(m, opts));
}

function rewrite(model: ModelProto, opts: ResizingInputOptions): ModelProto {
  const fail = (why: string): never => {
    throw new MimicError('E_ONNX', `cannot give the image encoder a resizing uint8 input: ${why}`);
  };
  if (opts.mean.length !== 3 || opts.std.length !== 3 || opts.std.some((s) => !(s > 0))) fail('mean and std need 3 values each, std positive');
  const { width, height } = opts.from;
  if (![width, height, opts.size].every((v) => Number.isInteger(v) && v > 0)) fail('sizes must be positive integers');
  const { input, tensorType: tt, shape } = pixelInputOf(model, fail, '[B,3,S,S]');
  const dim = (i: number) => (shape[i]!.dimValue === undefined ? undefined : Number(shape[i]!.dimValue));
  if ((dim(2) !== undefined && dim(2) !== opts.size) || (dim(3) !== undefined && dim(3) !== opts.size)) fail(`input ${input.name} is not ${opts.size}×${opts.size}`);

  const opset = defaultOpset(model);
  if (opset < 18) {
    const visit = (nodes: NodeProto[]): void => {
      for (const n of nodes) {
        if ((n.domain ?? '') === '' && CHANGED_AT_18.test(n.opType)) fail(`it uses ${n.opType}, whose signature changed at opset 18 (Resize with antialias needs 18)`);
        for (const a of n.attribute) {
          if (a.g) visit(a.g.node);
          for (const g of a.graphs ?? []) visit(g.node);
        }
      }
    };
    visit(model.graph.node);
    const o = model.opsetImport.find((x) => x.domain === '' || x.domain === 'ai.onnx');
    if (o) o.version = 18;
    else model.opsetImport.push({ domain: '', version: 18 });
    model.irVersion = Math.max(model.irVersion, 8);
  }

  const { normalized, fresh, has } = detachInput(model, input);
  const name = input.name;

  const g = resizeCropGeometry(width, height, opts.size, opts.resize);
  const f = Math.fround;
  const c = {
    sizes: fresh('sizes'), k255: fresh('255'), zero: fresh('0'), mean: fresh('mean'), std: fresh('std'),
    starts: fresh('crop_starts'), ends: fresh('crop_ends'), axes: fresh('crop_axes'), origin: fresh('origin'), side: fresh('side'),
    maskShape: fresh('mask_shape'),
  };
  const needsCrop = g.h !== opts.size || g.w !== opts.size;
  model.graph.initializer.push(
    tensor(c.sizes, BigInt64Array.of(BigInt(g.h), BigInt(g.w)), [2]),
    tensor(c.k255, Float32Array.of(255), []),
    tensor(c.zero, Float32Array.of(0), []),
    tensor(c.mean, Float32Array.from(opts.mean.map(f)), [1, 3, 1, 1]),
    tensor(c.std, Float32Array.from(opts.std.map(f)), [1, 3, 1, 1]),
    tensor(c.axes, BigInt64Array.of(2n, 3n), [2]),
    tensor(c.origin, BigInt64Array.of(0n, 0n), [2]),
    tensor(c.side, BigInt64Array.of(BigInt(opts.size), BigInt(opts.size)), [2]),
    tensor(c.maskShape, BigInt64Array.of(-1n, 1n, 1n, 1n), [4]),
  );
  if (needsCrop) {
    model.graph.initializer.push(
      tensor(c.starts, BigInt64Array.of(BigInt(g.top), BigInt(g.left)), [2]),
      tensor(c.ends, BigInt64Array.of(BigInt(g.top + opts.size), BigInt(g.left + opts.size)), [2]),
    );
  }
  const node = (op: string, ins: string[], attrs: NodeProto['attribute'] = []): string => {
    const out = fresh(op.toLowerCase());
    pre.push({ input: ins, output: [out], name: fresh(op), opType: op, attribute: attrs });
    return out;
  };
  const pre: NodeProto[] = [];
  const frame = node('Transpose', [node('Cast', [name], [attribute('to', DataType.FLOAT)])], [attribute('perm', [0, 3, 1, 2])]);
  let x = frame;
  if (g.h !== height || g.w !== width) {
    x = node('Resize', [x, '', '', c.sizes], [
      attribute('mode', 'cubic'), attribute('cubic_coeff_a', { float: -0.5 }), attribute('coordinate_transformation_mode', 'half_pixel'),
      attribute('exclude_outside', 1), attribute('antialias', 1), attribute('axes', { ints: [2, 3] }),
    ]);
    // PIL's output is 8-bit: round and clip as it does (to nearest; PIL's ties go up, Round's to even: rare).
    x = node('Round', [x]);
    x = node('Clip', [x, c.zero, c.k255]);
  }
  if (needsCrop) x = node('Slice', [x, c.starts, c.ends, c.axes]);
  // Rows resized on the CPU: their S×S pixels, taken from the frame's corner as they are.
  const corner = node('Slice', [frame, c.origin, c.side, c.axes]);
  const mask = node('Reshape', [RESIZED_MASK_INPUT, c.maskShape]);
  x = node('Where', [mask, corner, x]);
  x = node('Div', [x, c.k255]);
  x = node('Sub', [x, c.mean]);
  pre.push({ input: [x, c.std], output: [normalized], name: fresh('Div'), opType: 'Div', attribute: [] });
  model.graph.node.unshift(...pre);

  const b = shape[0] as Dimension;
  tt.elemType = DataType.UINT8;
  tt.shape = [b, { dimValue: height }, { dimValue: width }, { dimValue: 3 }];
  if (has(RESIZED_MASK_INPUT)) fail(`the encoder already has a value named ${RESIZED_MASK_INPUT}`);
  const at = model.graph.input.indexOf(input);
  model.graph.input.splice(at + 1, 0, { name: RESIZED_MASK_INPUT, type: { tensorType: { elemType: DataType.BOOL, shape: [{ ...b }] } } });
  return model;
}
