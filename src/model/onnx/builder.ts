/**
 * Builds ONNX graphs in code: declare inputs, add initializers and nodes (each returns the names of its outputs),
 * mark outputs, and encode. Names are made unique by the builder so that graph code can stay readable.
 */
import {
  AttributeType,
  DataType,
  encodeModel,
  type AttributeProto,
  type DataTypeCode,
  type Dimension,
  type GraphProto,
  type Int64,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.js';
import { littleEndianBytes } from './wire.js';

/** A dimension: a number for a fixed size, a string for a symbolic one (e.g. 'B'). */
export type Dim = number | string;

/** Attribute values. Integral numbers are INT, others FLOAT; wrap to force a type (`{ float: 1 }`). */
export type AttrValue =
  | number
  | string
  | number[]
  | { float: number }
  | { floats: number[] }
  | { ints: Int64[] }
  | { tensor: TensorProto }
  | { graph: GraphProto };

export interface NodeOptions {
  /** Output names (default: generated), or how many outputs to generate names for (default 1). */
  outputs?: string[] | number;
  name?: string;
  domain?: string;
}

export interface BuilderOptions {
  /** Default-domain opset version. */
  opset: number;
  name?: string;
  /** Prefix of generated names, so graphs built separately can later be merged without collisions. */
  prefix?: string;
}

/** The IR version that first supports an opset (onnx/helper.py's VERSION_TABLE). */
export function irVersionForOpset(opset: number): number {
  if (opset <= 8) return 3;
  if (opset <= 9) return 4;
  if (opset <= 10) return 5;
  if (opset <= 11) return 6;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

export function valueInfo(name: string, elemType: DataTypeCode, dims: Dim[] | undefined): ValueInfoProto {
  const shape: Dimension[] | undefined = dims?.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType, shape } } };
}

type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;

function dataTypeOf(a: TypedArray): DataTypeCode {
  if (a instanceof Float32Array) return DataType.FLOAT;
  if (a instanceof Float64Array) return DataType.DOUBLE;
  if (a instanceof Int32Array) return DataType.INT32;
  if (a instanceof BigInt64Array) return DataType.INT64;
  if (a instanceof Uint8Array) return DataType.UINT8;
  return DataType.INT8;
}

/** A TensorProto holding a copy of `data` as raw little-endian bytes. */
export function tensor(name: string, data: TypedArray, dims: number[]): TensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new RangeError(`tensor ${name}: ${data.length} values for dims [${dims.join(', ')}]`);
  return { name, dims, dataType: dataTypeOf(data), rawData: littleEndianBytes(data.slice()) };
}

export function attribute(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'number') {
    return Number.isInteger(v) ? { name, type: AttributeType.INT, i: v } : { name, type: AttributeType.FLOAT, f: v };
  }
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) {
    return v.every(Number.isInteger)
      ? { name, type: AttributeType.INTS, ints: v }
      : { name, type: AttributeType.FLOATS, floats: v };
  }
  if ('float' in v) return { name, type: AttributeType.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: AttributeType.FLOATS, floats: v.floats };
  if ('ints' in v) return { name, type: AttributeType.INTS, ints: v.ints };
  if ('tensor' in v) return { name, type: AttributeType.TENSOR, t: v.tensor };
  return { name, type: AttributeType.GRAPH, g: v.graph };
}

export class GraphBuilder {
  readonly opset: number;
  private readonly graph: GraphProto;
  private readonly prefix: string;
  private readonly used = new Set<string>();
  private readonly opsetImports = new Map<string, number>();
  private counter = 0;

  constructor(opts: BuilderOptions) {
    this.opset = opts.opset;
    this.prefix = opts.prefix ?? '';
    this.graph = { name: opts.name ?? 'graph', node: [], initializer: [], input: [], output: [], valueInfo: [] };
  }

  /** A fresh name starting with `base` (made unique with a counter when taken). */
  fresh(base: string): string {
    let name = this.prefix + base;
    while (this.used.has(name)) name = `${this.prefix}${base}_${++this.counter}`;
    this.used.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new Error(`graph name "${name}" is already used`);
    this.used.add(name);
    return name;
  }

  input(name: string, elemType: DataTypeCode, dims: Dim[]): string {
    this.graph.input.push(valueInfo(this.claim(name), elemType, dims));
    return name;
  }

  /** Marks an existing value as a graph output (an Identity renames it when `name` differs). */
  output(value: string, name: string, elemType: DataTypeCode, dims: Dim[]): string {
    let out = value;
    if (value !== name) [out] = this.node('Identity', [value], {}, { outputs: [name] }) as [string];
    this.graph.output.push(valueInfo(out, elemType, dims));
    return out;
  }

  initializer(name: string, data: TypedArray, dims: number[]): string {
    const n = this.fresh(name);
    this.graph.initializer.push(tensor(n, data, dims));
    return n;
  }

  /** A float32 constant (scalar unless dims are given), as an initializer. */
  constant(values: number | number[], dims?: number[], name = 'const'): string {
    const arr = Float32Array.from(Array.isArray(values) ? values : [values]);
    return this.initializer(name, arr, dims ?? (Array.isArray(values) ? [values.length] : []));
  }

  /** An int64 constant (1-D), e.g. the axes input of ReduceSum. */
  int64s(values: number[], name = 'axes'): string {
    return this.initializer(name, BigInt64Array.from(values.map(BigInt)), [values.length]);
  }

  /** Adds a node and returns its output names. */
  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: NodeOptions = {}): string[] {
    const outs =
      Array.isArray(opts.outputs)
        ? opts.outputs.map((o) => this.claim(o))
        : Array.from({ length: opts.outputs ?? 1 }, (_, k) => this.fresh(`${op}_${this.graph.node.length}${k ? `_${k}` : ''}`));
    const node: NodeProto = {
      input: inputs,
      output: outs,
      name: opts.name ?? this.fresh(`n${this.graph.node.length}_${op}`),
      opType: op,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    };
    if (opts.domain) {
      node.domain = opts.domain;
      if (!this.opsetImports.has(opts.domain)) throw new Error(`declare opset of domain ${opts.domain} with useDomain`);
    }
    this.graph.node.push(node);
    return outs;
  }

  /** Single-output shorthand for `node`. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.node(op, inputs, attrs, name ? { outputs: [name] } : {})[0]!;
  }

  useDomain(domain: string, version: number): void {
    this.opsetImports.set(domain, version);
  }

  toGraph(): GraphProto {
    return this.graph;
  }

  toModel(meta: { producerName?: string; producerVersion?: string; docString?: string; metadata?: Record<string, string> } = {}): ModelProto {
    return {
      irVersion: irVersionForOpset(this.opset),
      opsetImport: [{ domain: '', version: this.opset }, ...[...this.opsetImports].map(([domain, version]) => ({ domain, version }))],
      producerName: meta.producerName,
      producerVersion: meta.producerVersion,
      docString: meta.docString,
      graph: this.graph,
      metadataProps: meta.metadata ? Object.entries(meta.metadata).map(([key, value]) => ({ key, value })) : undefined,
    };
  }

  encode(meta?: Parameters<GraphBuilder['toModel']>[0]): Uint8Array {
    return encodeModel(this.toModel(meta));
  }
}
