/**
 * ONNX's protobuf messages (onnx/onnx.proto, IR version 8–10) as plain objects, with a decoder and an encoder.
 * Only the fields a graph builder or a model merger needs are interpreted; every other field is kept as raw bytes
 * in `unknown` and written back unchanged, so a decode/encode round trip loses nothing.
 */
import {
  ProtoDecodeError,
  ProtoWriter,
  WIRE,
  fieldDoubles,
  fieldFloat,
  fieldFloats,
  fieldInt,
  fieldInt64s,
  fieldString,
  readFields,
  type Field,
} from './wire.js';

/** TensorProto.DataType. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType] | number;

/** AttributeProto.AttributeType. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
} as const;

export type Int64 = number | bigint;

export interface StringStringEntry {
  key: string;
  value: string;
}

export interface TensorProto {
  name: string;
  dims: Int64[];
  dataType: DataTypeCode;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: Int64[];
  doubleData?: number[];
  uint64Data?: Int64[];
  stringData?: Uint8Array[];
  /** location / offset / length (/ checksum) of data kept in a file beside the model. */
  externalData?: StringStringEntry[];
  /** 0 = DEFAULT (data in this message), 1 = EXTERNAL. */
  dataLocation?: number;
  docString?: string;
  unknown?: Uint8Array[];
}

export interface Dimension {
  dimValue?: Int64;
  dimParam?: string;
  denotation?: string;
}

export interface TypeProto {
  /** Set for tensor types; any other kind (sequence, map, optional, ...) stays in `unknown`. */
  tensorType?: { elemType: DataTypeCode; shape?: Dimension[] };
  denotation?: string;
  unknown?: Uint8Array[];
}

export interface ValueInfoProto {
  name: string;
  type?: TypeProto;
  docString?: string;
  unknown?: Uint8Array[];
}

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  refAttrName?: string;
  docString?: string;
  unknown?: Uint8Array[];
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  opType: string;
  domain?: string;
  attribute: AttributeProto[];
  docString?: string;
  unknown?: Uint8Array[];
}

export interface GraphProto {
  name?: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
  docString?: string;
  /** Sparse initializers, quantization annotations, ... (kept verbatim). */
  unknown?: Uint8Array[];
}

export interface OpsetId {
  domain: string;
  version: number;
}

export interface ModelProto {
  irVersion: number;
  opsetImport: OpsetId[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: Int64;
  docString?: string;
  graph: GraphProto;
  metadataProps?: StringStringEntry[];
  /** Training info, model-local functions, ... (kept verbatim). */
  unknown?: Uint8Array[];
}

// ---------------------------------------------------------------------------------------------- decoding

function keepUnknown(into: { unknown?: Uint8Array[] }, f: Field): void {
  (into.unknown ??= []).push(f.raw);
}

function decodeEntry(buf: Uint8Array): StringStringEntry {
  const e: StringStringEntry = { key: '', value: '' };
  for (const f of readFields(buf)) {
    if (f.field === 1) e.key = fieldString(f);
    else if (f.field === 2) e.value = fieldString(f);
  }
  return e;
}

export function decodeTensor(buf: Uint8Array): TensorProto {
  const t: TensorProto = { name: '', dims: [], dataType: DataType.UNDEFINED };
  for (const f of readFields(buf)) {
    switch (f.field) {
      case 1: t.dims.push(...fieldInt64s(f)); break;
      case 2: t.dataType = fieldInt(f); break;
      case 4: (t.floatData ??= []).push(...fieldFloats(f)); break;
      case 5: (t.int32Data ??= []).push(...fieldInt64s(f).map(Number)); break;
      case 6: (t.stringData ??= []).push(f.data!); break;
      case 7: (t.int64Data ??= []).push(...fieldInt64s(f)); break;
      case 8: t.name = fieldString(f); break;
      case 9: t.rawData = f.data!; break;
      case 10: (t.doubleData ??= []).push(...fieldDoubles(f)); break;
      case 11: (t.uint64Data ??= []).push(...fieldInt64s(f)); break;
      case 12: t.docString = fieldString(f); break;
      case 13: (t.externalData ??= []).push(decodeEntry(f.data!)); break;
      case 14: t.dataLocation = fieldInt(f); break;
      default: keepUnknown(t, f);
    }
  }
  return t;
}

function decodeDimension(buf: Uint8Array): Dimension {
  const d: Dimension = {};
  for (const f of readFields(buf)) {
    if (f.field === 1) d.dimValue = f.int!;
    else if (f.field === 2) d.dimParam = fieldString(f);
    else if (f.field === 3) d.denotation = fieldString(f);
  }
  return d;
}

function decodeType(buf: Uint8Array): TypeProto {
  const t: TypeProto = {};
  for (const f of readFields(buf)) {
    if (f.field === 1) {
      const tt: NonNullable<TypeProto['tensorType']> = { elemType: 0 };
      for (const g of readFields(f.data!)) {
        if (g.field === 1) tt.elemType = fieldInt(g);
        else if (g.field === 2) {
          tt.shape = [];
          for (const h of readFields(g.data!)) if (h.field === 1) tt.shape.push(decodeDimension(h.data!));
        }
      }
      t.tensorType = tt;
    } else if (f.field === 6) t.denotation = fieldString(f);
    else keepUnknown(t, f);
  }
  return t;
}

function decodeValueInfo(buf: Uint8Array): ValueInfoProto {
  const v: ValueInfoProto = { name: '' };
  for (const f of readFields(buf)) {
    if (f.field === 1) v.name = fieldString(f);
    else if (f.field === 2) v.type = decodeType(f.data!);
    else if (f.field === 3) v.docString = fieldString(f);
    else keepUnknown(v, f);
  }
  return v;
}

function decodeAttribute(buf: Uint8Array): AttributeProto {
  const a: AttributeProto = { name: '', type: AttributeType.UNDEFINED };
  for (const f of readFields(buf)) {
    switch (f.field) {
      case 1: a.name = fieldString(f); break;
      case 2: a.f = fieldFloat(f); break;
      case 3: a.i = f.int!; break;
      case 4: a.s = f.data!; break;
      case 5: a.t = decodeTensor(f.data!); break;
      case 6: a.g = decodeGraph(f.data!); break;
      case 7: (a.floats ??= []).push(...fieldFloats(f)); break;
      case 8: (a.ints ??= []).push(...fieldInt64s(f)); break;
      case 9: (a.strings ??= []).push(f.data!); break;
      case 10: (a.tensors ??= []).push(decodeTensor(f.data!)); break;
      case 11: (a.graphs ??= []).push(decodeGraph(f.data!)); break;
      case 13: a.docString = fieldString(f); break;
      case 20: a.type = fieldInt(f); break;
      case 21: a.refAttrName = fieldString(f); break;
      default: keepUnknown(a, f);
    }
  }
  return a;
}

function decodeNode(buf: Uint8Array): NodeProto {
  const n: NodeProto = { input: [], output: [], opType: '', attribute: [] };
  for (const f of readFields(buf)) {
    switch (f.field) {
      case 1: n.input.push(fieldString(f)); break;
      case 2: n.output.push(fieldString(f)); break;
      case 3: n.name = fieldString(f); break;
      case 4: n.opType = fieldString(f); break;
      case 5: n.attribute.push(decodeAttribute(f.data!)); break;
      case 6: n.docString = fieldString(f); break;
      case 7: n.domain = fieldString(f); break;
      default: keepUnknown(n, f);
    }
  }
  return n;
}

export function decodeGraph(buf: Uint8Array): GraphProto {
  const g: GraphProto = { node: [], initializer: [], input: [], output: [], valueInfo: [] };
  for (const f of readFields(buf)) {
    switch (f.field) {
      case 1: g.node.push(decodeNode(f.data!)); break;
      case 2: g.name = fieldString(f); break;
      case 5: g.initializer.push(decodeTensor(f.data!)); break;
      case 10: g.docString = fieldString(f); break;
      case 11: g.input.push(decodeValueInfo(f.data!)); break;
      case 12: g.output.push(decodeValueInfo(f.data!)); break;
      case 13: g.valueInfo.push(decodeValueInfo(f.data!)); break;
      default: keepUnknown(g, f);
    }
  }
  return g;
}

/** Decodes a ModelProto. Tensor payloads stay views into `buf`. Throws ProtoDecodeError on malformed input. */
export function decodeModel(buf: Uint8Array): ModelProto {
  const m: ModelProto = { irVersion: 0, opsetImport: [], graph: emptyGraph() };
  let sawGraph = false;
  for (const f of readFields(buf)) {
    switch (f.field) {
      case 1: m.irVersion = fieldInt(f); break;
      case 2: m.producerName = fieldString(f); break;
      case 3: m.producerVersion = fieldString(f); break;
      case 4: m.domain = fieldString(f); break;
      case 5: m.modelVersion = f.int!; break;
      case 6: m.docString = fieldString(f); break;
      case 7: m.graph = decodeGraph(f.data!); sawGraph = true; break;
      case 8: {
        const o: OpsetId = { domain: '', version: 0 };
        for (const g of readFields(f.data!)) {
          if (g.field === 1) o.domain = fieldString(g);
          else if (g.field === 2) o.version = fieldInt(g);
        }
        m.opsetImport.push(o);
        break;
      }
      case 14: (m.metadataProps ??= []).push(decodeEntry(f.data!)); break;
      default: keepUnknown(m, f);
    }
  }
  if (!sawGraph) throw new ProtoDecodeError('the model has no graph');
  if (m.irVersion === 0) throw new ProtoDecodeError('the model has no ir_version');
  return m;
}

export function emptyGraph(): GraphProto {
  return { node: [], initializer: [], input: [], output: [], valueInfo: [] };
}

// ---------------------------------------------------------------------------------------------- encoding

function writeUnknown(w: ProtoWriter, m: { unknown?: Uint8Array[] }): void {
  for (const raw of m.unknown ?? []) w.raw(raw);
}

function writeEntry(w: ProtoWriter, field: number, e: StringStringEntry): void {
  w.message(field, (x) => x.string(1, e.key).string(2, e.value));
}

export function writeTensor(w: ProtoWriter, t: TensorProto): void {
  w.packedInt64(1, t.dims);
  w.int64(2, t.dataType);
  if (t.floatData) w.packedFloat(4, t.floatData);
  if (t.int32Data) w.packedInt64(5, t.int32Data);
  for (const s of t.stringData ?? []) w.bytes(6, s);
  if (t.int64Data) w.packedInt64(7, t.int64Data);
  if (t.name) w.string(8, t.name);
  if (t.rawData) w.bytes(9, t.rawData);
  if (t.doubleData) w.packedDouble(10, t.doubleData);
  if (t.uint64Data) w.packedInt64(11, t.uint64Data);
  if (t.docString !== undefined) w.string(12, t.docString);
  for (const e of t.externalData ?? []) writeEntry(w, 13, e);
  if (t.dataLocation) w.int64(14, t.dataLocation);
  writeUnknown(w, t);
}

function writeType(w: ProtoWriter, t: TypeProto): void {
  if (t.tensorType) {
    const tt = t.tensorType;
    w.message(1, (x) => {
      x.int64(1, tt.elemType);
      if (tt.shape) {
        x.message(2, (s) => {
          for (const d of tt.shape!) {
            s.message(1, (dm) => {
              if (d.dimValue !== undefined) dm.int64(1, d.dimValue);
              if (d.dimParam !== undefined) dm.string(2, d.dimParam);
              if (d.denotation !== undefined) dm.string(3, d.denotation);
            });
          }
        });
      }
    });
  }
  if (t.denotation !== undefined) w.string(6, t.denotation);
  writeUnknown(w, t);
}

function writeValueInfo(w: ProtoWriter, v: ValueInfoProto): void {
  w.string(1, v.name);
  if (v.type) w.message(2, (x) => writeType(x, v.type!));
  if (v.docString !== undefined) w.string(3, v.docString);
  writeUnknown(w, v);
}

function writeAttribute(w: ProtoWriter, a: AttributeProto): void {
  w.string(1, a.name);
  if (a.f !== undefined) w.float(2, a.f);
  if (a.i !== undefined) w.int64(3, a.i);
  if (a.s !== undefined) w.bytes(4, a.s);
  if (a.t) w.message(5, (x) => writeTensor(x, a.t!));
  if (a.g) w.message(6, (x) => writeGraph(x, a.g!));
  if (a.floats) for (const v of a.floats) w.float(7, v); // unpacked, as onnx's own helper writes them
  if (a.ints) for (const v of a.ints) w.int64(8, v);
  for (const s of a.strings ?? []) w.bytes(9, s);
  for (const t of a.tensors ?? []) w.message(10, (x) => writeTensor(x, t));
  for (const g of a.graphs ?? []) w.message(11, (x) => writeGraph(x, g));
  if (a.docString !== undefined) w.string(13, a.docString);
  w.int64(20, a.type);
  if (a.refAttrName !== undefined) w.string(21, a.refAttrName);
  writeUnknown(w, a);
}

function writeNode(w: ProtoWriter, n: NodeProto): void {
  for (const i of n.input) w.string(1, i);
  for (const o of n.output) w.string(2, o);
  if (n.name !== undefined) w.string(3, n.name);
  w.string(4, n.opType);
  for (const a of n.attribute) w.message(5, (x) => writeAttribute(x, a));
  if (n.docString !== undefined) w.string(6, n.docString);
  if (n.domain !== undefined) w.string(7, n.domain);
  writeUnknown(w, n);
}

export function writeGraph(w: ProtoWriter, g: GraphProto): void {
  for (const n of g.node) w.message(1, (x) => writeNode(x, n));
  if (g.name !== undefined) w.string(2, g.name);
  for (const t of g.initializer) w.message(5, (x) => writeTensor(x, t));
  if (g.docString !== undefined) w.string(10, g.docString);
  for (const v of g.input) w.message(11, (x) => writeValueInfo(x, v));
  for (const v of g.output) w.message(12, (x) => writeValueInfo(x, v));
  for (const v of g.valueInfo) w.message(13, (x) => writeValueInfo(x, v));
  writeUnknown(w, g);
}

/** protobuf (and so onnxruntime) refuses messages of 2 GiB or more. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

export class ModelTooLargeError extends Error {
  constructor(readonly bytes: number) {
    super(`the model would be ${bytes} bytes, over protobuf's limit of ${PROTOBUF_LIMIT} bytes (2 GiB)`);
  }
}

export function encodeModel(m: ModelProto): Uint8Array {
  const w = new ProtoWriter();
  w.int64(1, m.irVersion);
  if (m.producerName !== undefined) w.string(2, m.producerName);
  if (m.producerVersion !== undefined) w.string(3, m.producerVersion);
  if (m.domain !== undefined) w.string(4, m.domain);
  if (m.modelVersion !== undefined) w.int64(5, m.modelVersion);
  if (m.docString !== undefined) w.string(6, m.docString);
  w.message(7, (x) => writeGraph(x, m.graph));
  for (const o of m.opsetImport) {
    w.message(8, (x) => {
      x.string(1, o.domain); // always present, as onnx writes it
      x.int64(2, o.version);
    });
  }
  for (const e of m.metadataProps ?? []) writeEntry(w, 14, e);
  writeUnknown(w, m);
  if (w.length > PROTOBUF_LIMIT) throw new ModelTooLargeError(w.length);
  return w.finish();
}

export { ProtoDecodeError, WIRE };
