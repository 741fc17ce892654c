/**
 * Typed shorthands for the standard ops a numeric graph uses, over a GraphBuilder. They hide the opset
 * differences that matter here: reductions take `axes` as an input from opset 18 (ReduceSum from 13).
 */
import type { GraphBuilder } from './builder.js';
import { DataType } from './proto.js';

export const MIN_OPSET = 13;

/** The float type a graph computes in. */
export type Precision = 'float32' | 'float64';

export class Ops {
  /** The ONNX data type code of `precision` (FLOAT or DOUBLE). */
  readonly floatCode: number;

  constructor(
    readonly g: GraphBuilder,
    readonly precision: Precision = 'float32',
  ) {
    this.floatCode = precision === 'float64' ? DataType.DOUBLE : DataType.FLOAT;
    if (g.opset < MIN_OPSET) throw new RangeError(`opset ${g.opset} is below ${MIN_OPSET}, the oldest these ops support`);
  }

  private readonly scalars = new Map<number, string>();

  /** A scalar constant in the graph's precision, shared between uses. */
  scalar(v: number): string {
    const key = this.precision === 'float64' ? v : Math.fround(v);
    let name = this.scalars.get(key);
    if (!name) {
      name = this.g.initializer('c', this.array([v]), []);
      this.scalars.set(key, name);
    }
    return name;
  }

  /** Values as a typed array of the graph's precision (for initializers). */
  array(values: ArrayLike<number>): Float32Array | Float64Array {
    return this.precision === 'float64' ? Float64Array.from(values as ArrayLike<number>) : Float32Array.from(values as ArrayLike<number>);
  }

  add(a: string, b: string, name?: string): string { return this.g.op('Add', [a, b], {}, name); }
  sub(a: string, b: string, name?: string): string { return this.g.op('Sub', [a, b], {}, name); }
  mul(a: string, b: string, name?: string): string { return this.g.op('Mul', [a, b], {}, name); }
  div(a: string, b: string, name?: string): string { return this.g.op('Div', [a, b], {}, name); }
  max(a: string, b: string): string { return this.g.op('Max', [a, b]); }
  neg(a: string): string { return this.g.op('Neg', [a]); }
  exp(a: string): string { return this.g.op('Exp', [a]); }
  log(a: string): string { return this.g.op('Log', [a]); }
  sqrt(a: string): string { return this.g.op('Sqrt', [a]); }
  less(a: string, b: string): string { return this.g.op('Less', [a, b]); }
  greater(a: string, b: string): string { return this.g.op('Greater', [a, b]); }
  equal(a: string, b: string): string { return this.g.op('Equal', [a, b]); }
  where(cond: string, a: string, b: string, name?: string): string { return this.g.op('Where', [cond, a, b], {}, name); }
  matmul(a: string, b: string): string { return this.g.op('MatMul', [a, b]); }
  /** A·B for 2-D operands, with either side transposed (Gemm without C). */
  gemm(a: string, b: string, opts: { transA?: boolean; transB?: boolean } = {}): string {
    return this.g.op('Gemm', [a, b], { transA: opts.transA ? 1 : 0, transB: opts.transB ? 1 : 0 });
  }
  transpose(a: string, perm: number[]): string { return this.g.op('Transpose', [a], { perm }); }
  softmax(a: string, axis: number): string { return this.g.op('Softmax', [a], { axis }); }
  cast(a: string, to: number): string { return this.g.op('Cast', [a], { to }); }
  /** The identity matrix shaped like a 2-D input. */
  eyeLike(a: string): string { return this.g.op('EyeLike', [a]); }

  reduce(op: 'ReduceSum' | 'ReduceMax' | 'ReduceLogSumExp' | 'ReduceMean', a: string, axes: number[], keepdims = false, name?: string): string {
    const axesAsInput = op === 'ReduceSum' ? this.g.opset >= 13 : this.g.opset >= 18;
    const keep = keepdims ? 1 : 0;
    if (axesAsInput) return this.g.op(op, [a, this.g.int64s(axes)], { keepdims: keep }, name);
    return this.g.op(op, [a], { axes, keepdims: keep }, name);
  }

  sum(a: string, axis: number, keepdims = false, name?: string): string {
    return this.reduce('ReduceSum', a, [axis], keepdims, name);
  }

  unsqueeze(a: string, axes: number[]): string {
    return this.g.op('Unsqueeze', [a, this.g.int64s(axes)]);
  }
}
