/**
 * The declared inputs and outputs of an ONNX file, read straight from its protobuf without loading the weights:
 * a bundle is validated before any session exists (a ViT-B/32 tower is 350 MB, and sessions are created later
 * for the chosen device). Length-delimited fields are skipped by seeking, so only the graph's small fields are
 * read. A file whose structure runs past its end, or that is not protobuf, is an E_ONNX error naming it.
 *
 * Wire format facts used (onnx.proto3): ModelProto.ir_version = 1, opset_import = 8 {domain 1, version 2},
 * producer_name = 2, graph = 7; GraphProto.initializer = 5, input = 11, output = 12; TensorProto.name = 8,
 * data_location = 14 (1 = external); ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type = 1
 * {elem_type 1, shape 2}; TensorShapeProto.dim = 1 {dim_value 1, dim_param 2}.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { MimicError } from '../errors.js';

export type OnnxElemType =
  | 'float32' | 'uint8' | 'int8' | 'uint16' | 'int16' | 'int32' | 'int64' | 'string' | 'bool' | 'float16'
  | 'float64' | 'uint32' | 'uint64' | 'bfloat16' | `type${number}`;

const ELEM: Record<number, OnnxElemType> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool',
  10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16',
};

export interface OnnxValueInfo {
  name: string;
  /** undefined for non-tensor values (sequences, maps). */
  type?: OnnxElemType;
  /** Each axis: a size, a symbolic name, or null when neither is set; undefined when the shape is unknown. */
  shape?: Array<number | string | null>;
}

export interface OnnxSignature {
  file: string;
  irVersion: number;
  producer: string;
  opsets: Array<{ domain: string; version: number }>;
  /** Graph inputs that are not initializers (the values a caller must feed). */
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** Whether some weights live in external data files beside the model. */
  externalData: boolean;
}

interface Field {
  num: number;
  wire: number;
  /** varint value (wire 0), or the payload's start (wire 2). */
  value: number;
  start: number;
  end: number;
}

class Corrupt extends Error {}

/** Positional reads through a window cache: the small fields of a graph are read in few syscalls. */
class Reader {
  private buf = Buffer.alloc(0);
  private bufPos = 0;
  constructor(private readonly fh: FileHandle, readonly size: number) {}

  async bytes(pos: number, len: number): Promise<Buffer> {
    if (pos < 0 || pos + len > this.size) throw new Corrupt(`a field at byte ${pos} runs past the end of the file`);
    if (pos >= this.bufPos && pos + len <= this.bufPos + this.buf.length) {
      return this.buf.subarray(pos - this.bufPos, pos - this.bufPos + len);
    }
    const want = Math.min(Math.max(len, 1 << 16), this.size - pos);
    const b = Buffer.alloc(want);
    const { bytesRead } = await this.fh.read(b, 0, want, pos);
    if (bytesRead < len) throw new Corrupt(`short read at byte ${pos}`);
    this.buf = b.subarray(0, bytesRead);
    this.bufPos = pos;
    return this.buf.subarray(0, len);
  }

  async varint(pos: number): Promise<[number, number]> {
    const b = await this.bytes(pos, Math.min(10, this.size - pos));
    let v = 0;
    let mul = 1;
    for (let i = 0; i < b.length; i++) {
      const byte = b[i]!;
      v += (byte & 0x7f) * mul;
      mul *= 128;
      if ((byte & 0x80) === 0) return [v, pos + i + 1];
    }
    throw new Corrupt(`an unterminated varint at byte ${pos}`);
  }

  /** The fields of the message occupying [start, end). */
  async *fields(start: number, end: number): AsyncGenerator<Field> {
    let pos = start;
    while (pos < end) {
      const [tag, p1] = await this.varint(pos);
      const num = Math.floor(tag / 8);
      const wire = tag % 8;
      if (num === 0) throw new Corrupt(`field number 0 at byte ${pos}`);
      let value: number;
      let next: number;
      switch (wire) {
        case 0:
          [value, next] = await this.varint(p1);
          break;
        case 1:
          value = p1;
          next = p1 + 8;
          break;
        case 2: {
          const [len, p2] = await this.varint(p1);
          value = p2;
          next = p2 + len;
          break;
        }
        case 5:
          value = p1;
          next = p1 + 4;
          break;
        default:
          throw new Corrupt(`wire type ${wire} at byte ${pos}`);
      }
      if (next > end) throw new Corrupt(`field ${num} at byte ${pos} runs past the end of its message (truncated?)`);
      yield { num, wire, value, start: wire === 2 ? value : p1, end: next };
      pos = next;
    }
  }

  async string(f: Field): Promise<string> {
    return (await this.bytes(f.start, f.end - f.start)).toString('utf8');
  }
}

export async function readOnnxSignature(file: string): Promise<OnnxSignature> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw new MimicError('E_ONNX', `cannot open ${file}: ${(e as Error).message}`, { file, cause: e });
  }
  try {
    const size = (await fh.stat()).size;
    return await parse(new Reader(fh, size), file);
  } catch (e) {
    if (e instanceof Corrupt) {
      throw new MimicError('E_ONNX', `${file} is not a valid ONNX model: ${e.message}`, {
        file,
        hint: 'the file is truncated or corrupt: copy or export it again',
      });
    }
    throw e;
  } finally {
    await fh.close();
  }
}

async function parse(r: Reader, file: string): Promise<OnnxSignature> {
  const sig: OnnxSignature = { file, irVersion: 0, producer: '', opsets: [], inputs: [], outputs: [], externalData: false };
  let graph: Field | undefined;
  for await (const f of r.fields(0, r.size)) {
    if (f.num === 1 && f.wire === 0) sig.irVersion = f.value;
    else if (f.num === 2 && f.wire === 2) sig.producer = await r.string(f);
    else if (f.num === 7 && f.wire === 2) graph = f;
    else if (f.num === 8 && f.wire === 2) {
      const op = { domain: '', version: 0 };
      for await (const g of r.fields(f.start, f.end)) {
        if (g.num === 1 && g.wire === 2) op.domain = await r.string(g);
        else if (g.num === 2 && g.wire === 0) op.version = g.value;
      }
      sig.opsets.push(op);
    }
  }
  if (!graph || sig.irVersion === 0) throw new Corrupt(graph ? 'no IR version' : 'no graph');
  const initializers = new Set<string>();
  const inputs: OnnxValueInfo[] = [];
  for await (const f of r.fields(graph.start, graph.end)) {
    if (f.wire !== 2) continue;
    if (f.num === 5) {
      for await (const t of r.fields(f.start, f.end)) {
        if (t.num === 8 && t.wire === 2) initializers.add(await r.string(t));
        else if (t.num === 14 && t.wire === 0 && t.value === 1) sig.externalData = true;
      }
    } else if (f.num === 11) inputs.push(await valueInfo(r, f));
    else if (f.num === 12) sig.outputs.push(await valueInfo(r, f));
  }
  sig.inputs = inputs.filter((i) => !initializers.has(i.name));
  return sig;
}

async function valueInfo(r: Reader, f: Field): Promise<OnnxValueInfo> {
  const info: OnnxValueInfo = { name: '' };
  for await (const g of r.fields(f.start, f.end)) {
    if (g.num === 1 && g.wire === 2) info.name = await r.string(g);
    else if (g.num === 2 && g.wire === 2) {
      for await (const t of r.fields(g.start, g.end)) {
        if (t.num !== 1 || t.wire !== 2) continue;
        for await (const tt of r.fields(t.start, t.end)) {
          if (tt.num === 1 && tt.wire === 0) info.type = ELEM[tt.value] ?? `type${tt.value}`;
          else if (tt.num === 2 && tt.wire === 2) {
            info.shape = [];
            for await (const d of r.fields(tt.start, tt.end)) {
              if (d.num !== 1 || d.wire !== 2) continue;
              let dim: number | string | null = null;
              for await (const dd of r.fields(d.start, d.end)) {
                if (dd.num === 1 && dd.wire === 0) dim = dd.value;
                else if (dd.num === 2 && dd.wire === 2) dim = await r.string(dd);
              }
              info.shape.push(dim);
            }
          }
        }
      }
    }
  }
  return info;
}
