/**
 * An fp16 copy of a float32 encoder with the same float32 inputs and outputs (DESIGN §8): weights, constants and
 * activations become float16, a Cast follows each float input and precedes each float output. The rest of the
 * pipeline (the per-sample-gradient graph, the score math) never sees an fp16 value.
 *
 * Every float32 tensor in the graph comes from an input, an initializer, a Constant / ConstantOfShape or a Cast,
 * so converting those is enough for the graph to stay consistently typed; ops whose float inputs must stay float32
 * whatever the data type (Resize scales, ...) are refused rather than guessed at.
 */
import { MimicError } from '../../errors.js';
import { attribute } from './builder.js';
import { graphInputs } from './merge.js';
import { AttributeType, DataType, type AttributeProto, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from './proto.js';

/** Largest finite float16. */
export const FLOAT16_MAX = 65504;

/** Ops with an input that must be float32 whatever T is: converting them blindly would give a graph onnxruntime refuses. */
const REFUSED_OPS = new Set(['Resize', 'Upsample', 'RoiAlign', 'RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'EyeLike', 'Bernoulli', 'Multinomial']);

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bits → float16 bits, rounding to nearest even (as numpy's astype(float16) does). */
export function toHalfBits(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0); // Inf / NaN (quiet)
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → Inf
  if (e <= 0) {
    if (e < -10) return sign; // underflows to ±0
    // Subnormal half: shift the mantissa (with its implicit 1) right, round to nearest even.
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into the exponent: still correct
  return sign | h;
}

/** float16 bits → number. */
export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

interface Conversion {
  /** Finite weights beyond float16's range, saturated to ±65504. */
  saturated: number;
  tensors: number;
}

function floatValues(t: TensorProto, what: string): Float32Array {
  if (t.rawData) {
    if (t.rawData.byteLength % 4 !== 0) throw new MimicError('E_ONNX', `${what}: tensor "${t.name}" has ${t.rawData.byteLength} raw bytes, not a float32 count`);
    const copy = new Uint8Array(t.rawData); // aligned (the raw bytes are a view into the file at any offset)
    return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  }
  if (t.dataLocation === 1) {
    throw new MimicError('E_ONNX', `${what}: tensor "${t.name}" keeps its data in an external file`, {
      hint: 'inline the external data first (inlineExternalData), then convert',
    });
  }
  return Float32Array.from(t.floatData ?? []);
}

function convertTensor(t: TensorProto, c: Conversion, what: string): void {
  if (t.dataType !== DataType.FLOAT) return;
  const values = floatValues(t, what);
  const half = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    let v = values[i]!;
    // Finite values beyond the range saturate (and are counted); ±Inf (e.g. an attention mask) stays as it is.
    if (Number.isFinite(v) && Math.abs(v) > FLOAT16_MAX) {
      v = Math.sign(v) * FLOAT16_MAX;
      c.saturated++;
    }
    half[i] = toHalfBits(v);
  }
  const bytes = new Uint8Array(half.buffer);
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) {
    for (let i = 0; i < bytes.length; i += 2) [bytes[i], bytes[i + 1]] = [bytes[i + 1]!, bytes[i]!];
  }
  t.dataType = DataType.FLOAT16;
  t.rawData = bytes;
  delete t.floatData;
  c.tensors++;
}

function convertAttribute(n: NodeProto, a: AttributeProto, c: Conversion, what: string): AttributeProto {
  if (a.t) convertTensor(a.t, c, what);
  for (const t of a.tensors ?? []) convertTensor(t, c, what);
  if (a.g) convertGraph(a.g, c, what, false);
  for (const g of a.graphs ?? []) convertGraph(g, c, what, false);
  if (n.opType === 'Constant' && (n.domain ?? '') === '' && (a.name === 'value_float' || a.name === 'value_floats')) {
    // Constant's float attributes always make float32: restate them as an fp16 tensor.
    const values = a.name === 'value_float' ? [a.f ?? 0] : (a.floats ?? []);
    const t: TensorProto = { name: '', dims: a.name === 'value_float' ? [] : [values.length], dataType: DataType.FLOAT, floatData: values };
    convertTensor(t, c, what);
    return { name: 'value', type: AttributeType.TENSOR, t };
  }
  if (n.opType === 'Cast' && a.name === 'to' && Number(a.i) === DataType.FLOAT) return { ...a, i: DataType.FLOAT16 };
  return a;
}

function convertGraph(g: GraphProto, c: Conversion, what: string, top: boolean): void {
  for (const n of g.node) {
    if ((n.domain ?? '') === '' && REFUSED_OPS.has(n.opType)) {
      throw new MimicError('E_ONNX', `${what}: cannot convert to float16: it has a ${n.opType} node (${n.name ?? 'unnamed'}), whose float inputs or outputs do not follow the data`, {
        hint: 'run this encoder in float32 (--precision fp32)',
      });
    }
    n.attribute = n.attribute.map((a) => convertAttribute(n, a, c, what));
  }
  for (const t of g.initializer) convertTensor(t, c, what);
  const retype = (list: GraphProto['valueInfo']) => {
    for (const v of list) if (v.type?.tensorType?.elemType === DataType.FLOAT) v.type.tensorType.elemType = DataType.FLOAT16;
  };
  retype(g.valueInfo);
  // A subgraph's inputs and outputs are internal values; the top graph's keep float32 (casts below).
  if (!top) {
    retype(g.input);
    retype(g.output);
  }
}

function fresh(g: GraphProto, base: string): string {
  const used = new Set<string>();
  const visit = (x: GraphProto): void => {
    for (const v of [...x.input, ...x.output, ...x.valueInfo]) used.add(v.name);
    for (const t of x.initializer) used.add(t.name);
    for (const n of x.node) {
      for (const s of [...n.input, ...n.output]) used.add(s);
      for (const a of n.attribute) {
        if (a.g) visit(a.g);
        for (const sg of a.graphs ?? []) visit(sg);
      }
    }
  };
  visit(g);
  let name = base;
  for (let k = 1; used.has(name); k++) name = `${base}_${k}`;
  return name;
}

/** Replaces uses of `from` by `to` in node inputs, subgraphs included (they may capture outer values). */
function replaceUses(g: GraphProto, from: string, to: string): void {
  for (const n of g.node) {
    n.input = n.input.map((s) => (s === from ? to : s));
    for (const a of n.attribute) {
      if (a.g) replaceUses(a.g, from, to);
      for (const sg of a.graphs ?? []) replaceUses(sg, from, to);
    }
  }
}

export interface Float16Result {
  model: ModelProto;
  /** Float tensors converted (initializers and constants). */
  tensors: number;
  /** Weights whose magnitude exceeded 65504 and were saturated (0 for any sane encoder). */
  saturated: number;
}

/**
 * Converts a decoded float32 model to float16 in place, keeping its float32 inputs and outputs. `what` names the
 * model in errors.
 */
export function toFloat16(model: ModelProto, what = 'the model'): Float16Result {
  const g = model.graph;
  const c: Conversion = { saturated: 0, tensors: 0 };
  convertGraph(g, c, what, true);
  const pre: NodeProto[] = [];
  for (const input of graphInputs(g)) {
    if (input.type?.tensorType?.elemType !== DataType.FLOAT) continue;
    const half = fresh(g, `${input.name}/fp16`);
    replaceUses(g, input.name, half);
    pre.push({ input: [input.name], output: [half], name: fresh(g, `${input.name}/to_fp16`), opType: 'Cast', attribute: [attribute('to', DataType.FLOAT16)] });
  }
  const post: NodeProto[] = [];
  for (const output of g.output) {
    if (output.type?.tensorType?.elemType !== DataType.FLOAT) continue;
    const half = fresh(g, `${output.name}/fp16`);
    // The producer (or a graph input passed straight through) now writes the fp16 value.
    for (const n of g.node) n.output = n.output.map((s) => (s === output.name ? half : s));
    replaceUses(g, output.name, half);
    post.push({ input: [half], output: [output.name], name: fresh(g, `${output.name}/to_fp32`), opType: 'Cast', attribute: [attribute('to', DataType.FLOAT)] });
  }
  g.node.unshift(...pre);
  g.node.push(...post);
  return { model, tensors: c.tensors, saturated: c.saturated };
}
