/**
 * A small safetensors reader (and writer): 8-byte little-endian header length N, N bytes of JSON
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}`), then the raw
 * little-endian tensor bytes, offsets relative to the end of the header. Floating-point tensors come back as
 * Float32Array whatever their stored precision (the heads are small and the math runs in float32 or float64),
 * integers in their own typed array. Every inconsistency is an E_BUNDLE error naming the file.
 */
import { readFile } from 'node:fs/promises';
import { MimicError } from '../errors.js';
import { writeFileAtomic } from '../atomic-file.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface SafetensorsTensor {
  name: string;
  /** The dtype stored in the file (the data may have been widened to float32). */
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
}

export interface SafetensorsFile {
  file: string;
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

const BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** A header larger than this is not a real safetensors header (the reference implementation caps it at 100 MB). */
const MAX_HEADER = 100_000_000;

export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw new MimicError('E_BUNDLE', `cannot read ${file}: ${(e as Error).message}`, { file, cause: e });
  }
  return parseSafetensors(buf, file);
}

export function parseSafetensors(buf: Uint8Array, file: string): SafetensorsFile {
  const bad = (why: string): MimicError =>
    new MimicError('E_BUNDLE', `${file} is not a valid safetensors file: ${why}`, {
      file,
      hint: 'write it again with the exporter (scripts/export_bundle.py) or the safetensors library',
    });
  if (buf.byteLength < 8) throw bad(`it has ${buf.byteLength} bytes, fewer than the 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n > MAX_HEADER || 8 + n > buf.byteLength) {
    throw bad(`the header claims ${n} bytes but the file has ${buf.byteLength - 8} after the length`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    throw bad(`the header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('the header is not an object');
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  let metadata: Record<string, string> = {};
  const spans: Array<[number, number, string]> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) throw bad('__metadata__ is not an object');
      metadata = Object.fromEntries(Object.entries((raw ?? {}) as object).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== 'object' || info === null) throw bad(`tensor ${name} has no description`);
    const dtype = info.dtype as SafetensorsDtype;
    if (typeof dtype !== 'string' || !(dtype in BYTES)) throw bad(`tensor ${name} has unsupported dtype ${String(dtype)}`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw bad(`tensor ${name} has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end < begin || end - begin !== count * BYTES[dtype]) {
      throw bad(`tensor ${name} (${dtype} ${JSON.stringify(shape)}) needs ${count * BYTES[dtype]} bytes but its ` +
        `offsets span ${end - begin}`);
    }
    if (end > dataLen) throw bad(`tensor ${name} ends at byte ${end} of a data section of ${dataLen} bytes (truncated?)`);
    spans.push([begin, end, name]);
    tensors.set(name, {
      name,
      dtype,
      shape: shape as number[],
      data: decode(dtype, buf.subarray(dataStart + begin, dataStart + end), count),
    });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) throw bad(`tensors ${spans[i - 1]![2]} and ${spans[i]![2]} overlap`);
  }
  return { file, tensors, metadata };
}

function decode(dtype: SafetensorsDtype, bytes: Uint8Array, count: number): SafetensorsTensor['data'] {
  // Copy into an aligned buffer: the data section need not be aligned to the element size.
  const copy = new Uint8Array(bytes);
  const dv = new DataView(copy.buffer);
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    }
    case 'F64': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(count);
      const f = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < count; i++) {
        f.setUint32(0, dv.getUint16(i * 2, true) << 16);
        out[i] = f.getFloat32(0);
      }
      return out;
    }
    case 'I64': {
      const out = new BigInt64Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getBigInt64(i * 8, true);
      return out;
    }
    case 'I32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(i * 4, true);
      return out;
    }
    case 'I16': {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt16(i * 2, true);
      return out;
    }
    case 'I8':
      return new Int8Array(copy.buffer);
    case 'U8':
    case 'BOOL':
      return copy;
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** A float tensor by name, with its shape checked; errors name the file. */
export function floatTensor(st: SafetensorsFile, name: string, shape?: number[]): SafetensorsTensor & { data: Float32Array } {
  const t = st.tensors.get(name);
  if (!t) {
    throw new MimicError('E_BUNDLE', `${st.file} has no tensor "${name}" (it has: ${[...st.tensors.keys()].join(', ') || 'none'})`, {
      file: st.file,
    });
  }
  if (!(t.data instanceof Float32Array)) {
    throw new MimicError('E_BUNDLE', `${st.file}: tensor "${name}" is ${t.dtype}, expected a float type`, { file: st.file });
  }
  if (shape && (shape.length !== t.shape.length || shape.some((d, i) => d >= 0 && d !== t.shape[i]))) {
    throw new MimicError('E_BUNDLE', `${st.file}: tensor "${name}" has shape [${t.shape.join(',')}], expected ` +
      `[${shape.map((d) => (d < 0 ? '?' : d)).join(',')}]`, { file: st.file });
  }
  return t as SafetensorsTensor & { data: Float32Array };
}

/** A tensor to write: `data` holds its little-endian bytes (any typed array; raw bytes for F16/BF16). */
export interface SafetensorsInput {
  dtype: SafetensorsDtype;
  shape: number[];
  data: ArrayBufferView;
}

/**
 * The bytes of a safetensors file: `__metadata__` first, then the tensors in the order given, the header padded
 * with spaces to a multiple of 8 bytes so that every tensor's data stays aligned for zero-copy readers (as the
 * reference writer and scripts/safetensors_io.py do). Typed arrays are written in the machine's byte order,
 * which is little-endian on every platform Node supports.
 */
export function encodeSafetensors(tensors: Record<string, SafetensorsInput>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const blobs: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new MimicError('E_USAGE', 'safetensors: "__metadata__" cannot name a tensor');
    if (!(t.dtype in BYTES)) throw new MimicError('E_USAGE', `safetensors: tensor ${name} has unsupported dtype ${String(t.dtype)}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new MimicError('E_USAGE', `safetensors: tensor ${name} has an invalid shape ${JSON.stringify(t.shape)}`);
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (bytes.length !== count * BYTES[t.dtype]) {
      throw new MimicError('E_USAGE', `safetensors: tensor ${name} (${t.dtype} [${t.shape.join(',')}]) needs ` +
        `${count * BYTES[t.dtype]} bytes, its data has ${bytes.length}`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    blobs.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.from(json, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(head.length));
  return Buffer.concat([length, head, ...blobs]);
}

/** Write a safetensors file atomically (a temporary file in the same folder, then a rename). */
export async function writeSafetensors(file: string, tensors: Record<string, SafetensorsInput>, metadata?: Record<string, string>): Promise<void> {
  await writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
