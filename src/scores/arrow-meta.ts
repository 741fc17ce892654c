/**
 * The few flatbuffer tables of an Arrow IPC file that the score reader needs, read in place: the footer
 * (schema fields and their types, schema metadata, record batch blocks) and a record batch message header
 * (row count, field nodes, buffers, compression). apache-arrow's Footer.decode builds a whole Schema of
 * DataType objects per call, which was most of the cost of opening a small score file; the filter opens
 * thousands of them. Field numbers follow Arrow's Schema.fbs, Message.fbs and File.fbs.
 *
 * Every read goes through a DataView, so a corrupt offset throws a RangeError, which the reader reports as a
 * corrupt footer or header naming the file.
 */

/** Arrow's Type union (Schema.fbs); the numbers match apache-arrow's `Type` enum for the flat types. */
export const FB_TYPE = {
  Int: 2,
  FloatingPoint: 3,
  Binary: 4,
  Utf8: 5,
  Bool: 6,
  Decimal: 7,
  Date: 8,
  Time: 9,
  Timestamp: 10,
  Interval: 11,
  FixedSizeBinary: 15,
  Duration: 18,
} as const;

export interface FieldMeta {
  name: string;
  /** Type union tag (FB_TYPE); −1 for a dictionary-encoded field. */
  typeId: number;
  /** Int: bit width; FloatingPoint: precision (0 half, 1 single, 2 double). */
  bitWidth: number;
  isSigned: boolean;
  precision: number;
  /** Child fields (nested types). */
  children: number;
}

export interface FooterMeta {
  fields: FieldMeta[];
  metadata: Record<string, string>;
  /** Record batch blocks: where each message starts, its header length. */
  blocks: { offset: number; metaDataLength: number }[];
}

export interface RecordBatchMeta {
  length: number;
  bodyLength: number;
  nodes: { length: number; nullCount: number }[];
  /** Buffers: offset (in the body) and length, two numbers each. */
  buffers: number[];
  compressed: boolean;
}

const MESSAGE_RECORD_BATCH = 3;
const utf8 = new TextDecoder();

/** Flatbuffer access over one byte range. */
class Fb {
  readonly dv: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  root(): number {
    return this.dv.getUint32(0, true);
  }

  /** Position of field `i` of the table at `t`, or 0 when absent. */
  field(t: number, i: number): number {
    const vt = t - this.dv.getInt32(t, true);
    const vtSize = this.dv.getUint16(vt, true);
    const at = 4 + 2 * i;
    if (at + 2 > vtSize) return 0;
    const o = this.dv.getUint16(vt + at, true);
    return o === 0 ? 0 : t + o;
  }

  /** Follow the offset stored at position p (to a table, vector or string). */
  deref(p: number): number {
    return p + this.dv.getUint32(p, true);
  }

  table(t: number, i: number): number {
    const p = this.field(t, i);
    return p === 0 ? 0 : this.deref(p);
  }

  /** Vector field i of table t: [position of element 0, length]; [0, 0] when absent. */
  vector(t: number, i: number): [number, number] {
    const p = this.field(t, i);
    if (p === 0) return [0, 0];
    const v = this.deref(p);
    const n = this.dv.getUint32(v, true);
    if (v + 4 + n > this.bytes.byteLength) throw new RangeError('vector runs past the end');
    return [v + 4, n];
  }

  string(t: number, i: number): string | null {
    const p = this.field(t, i);
    if (p === 0) return null;
    const s = this.deref(p);
    const n = this.dv.getUint32(s, true);
    if (s + 4 + n > this.bytes.byteLength) throw new RangeError('string runs past the end');
    return utf8.decode(this.bytes.subarray(s + 4, s + 4 + n));
  }

  u8(t: number, i: number, dflt: number): number {
    const p = this.field(t, i);
    return p === 0 ? dflt : this.dv.getUint8(p);
  }

  i16(t: number, i: number, dflt: number): number {
    const p = this.field(t, i);
    return p === 0 ? dflt : this.dv.getInt16(p, true);
  }

  i32(t: number, i: number, dflt: number): number {
    const p = this.field(t, i);
    return p === 0 ? dflt : this.dv.getInt32(p, true);
  }

  i64(t: number, i: number, dflt: number): number {
    const p = this.field(t, i);
    return p === 0 ? dflt : this.i64At(p);
  }

  /** A little-endian int64 at p as a number (exact below 2^53, which file offsets and lengths are). */
  i64At(p: number): number {
    const lo = this.dv.getUint32(p, true);
    const hi = this.dv.getInt32(p + 4, true);
    return hi * 4294967296 + lo;
  }
}

/** Parse an Arrow file footer (the flatbuffer between the last record batch and the trailer). */
export function parseFooter(bytes: Uint8Array): FooterMeta {
  const fb = new Fb(bytes);
  const footer = fb.root();
  const schema = fb.table(footer, 1);
  if (schema === 0) throw new RangeError('footer has no schema');
  const fields: FieldMeta[] = [];
  const [f0, nf] = fb.vector(schema, 1);
  for (let k = 0; k < nf; k++) {
    const f = fb.deref(f0 + 4 * k);
    const typeType = fb.u8(f, 2, 0);
    const type = fb.table(f, 3);
    const dictionary = fb.table(f, 4);
    const [, children] = fb.vector(f, 5);
    fields.push({
      name: fb.string(f, 0) ?? '',
      typeId: dictionary !== 0 ? -1 : typeType,
      bitWidth: typeType === FB_TYPE.Int && type !== 0 ? fb.i32(type, 0, 0) : 0,
      isSigned: typeType === FB_TYPE.Int && type !== 0 ? fb.u8(type, 1, 0) !== 0 : false,
      precision: typeType === FB_TYPE.FloatingPoint && type !== 0 ? fb.i16(type, 0, 0) : -1,
      children,
    });
  }
  const metadata: Record<string, string> = {};
  const [m0, nm] = fb.vector(schema, 2);
  for (let k = 0; k < nm; k++) {
    const kv = fb.deref(m0 + 4 * k);
    const key = fb.string(kv, 0);
    if (key !== null) metadata[key] = fb.string(kv, 1) ?? '';
  }
  const blocks: FooterMeta['blocks'] = [];
  const [b0, nb] = fb.vector(footer, 3);
  // Block is a 24-byte struct: offset (int64), metaDataLength (int32), padding, bodyLength (int64).
  if (b0 + 24 * nb > bytes.byteLength) throw new RangeError('record batch blocks run past the end');
  for (let k = 0; k < nb; k++) {
    const p = b0 + 24 * k;
    blocks.push({ offset: fb.i64At(p), metaDataLength: fb.dv.getInt32(p + 8, true) });
  }
  return { fields, metadata, blocks };
}

/** Parse a message flatbuffer that must hold a record batch header; null when it holds something else. */
export function parseRecordBatchMessage(bytes: Uint8Array): RecordBatchMeta | null {
  const fb = new Fb(bytes);
  const msg = fb.root();
  if (fb.u8(msg, 1, 0) !== MESSAGE_RECORD_BATCH) return null;
  const rb = fb.table(msg, 2);
  if (rb === 0) return null;
  const [n0, nn] = fb.vector(rb, 1);
  const [q0, nq] = fb.vector(rb, 2);
  // FieldNode and Buffer are 16-byte structs of two int64.
  if (n0 + 16 * nn > bytes.byteLength || q0 + 16 * nq > bytes.byteLength) throw new RangeError('record batch vectors run past the end');
  const nodes: RecordBatchMeta['nodes'] = [];
  for (let k = 0; k < nn; k++) nodes.push({ length: fb.i64At(n0 + 16 * k), nullCount: fb.i64At(n0 + 16 * k + 8) });
  const buffers: number[] = [];
  for (let k = 0; k < nq; k++) buffers.push(fb.i64At(q0 + 16 * k), fb.i64At(q0 + 16 * k + 8));
  return { length: fb.i64(rb, 0, 0), bodyLength: fb.i64(msg, 3, 0), nodes, buffers, compressed: fb.table(rb, 3) !== 0 };
}
