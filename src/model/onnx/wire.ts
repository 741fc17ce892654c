/**
 * Protocol-buffers wire format, the subset ONNX files use: varints (int32/int64/enum), 32- and 64-bit fixed
 * values, length-delimited fields (strings, bytes, nested messages, packed repeated scalars).
 *
 * The writer keeps large byte fields (weights) as references and copies them once, into the final buffer, so an
 * encoder model of a few hundred MB is re-encoded without holding it three times.
 */

export const WIRE = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

/** Byte fields at least this long are kept by reference instead of copied into the scratch buffer. */
const BY_REFERENCE = 1 << 16;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private buf = new Uint8Array(256);
  private pos = 0;
  private flushed = 0;

  /** Bytes written so far. */
  get length(): number {
    return this.flushed + this.pos;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  private flush(): void {
    if (this.pos === 0) return;
    this.parts.push(this.buf.subarray(0, this.pos));
    this.flushed += this.pos;
    this.buf = new Uint8Array(256);
    this.pos = 0;
  }

  /** An unsigned varint of a non-negative safe integer. */
  private rawVarint(v: number): void {
    this.reserve(10);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  /** A varint of an int64: negative values take ten bytes of two's complement, as protobuf requires. */
  private int64Varint(v: number | bigint): void {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new RangeError(`${v} is not an integer that int64 fields can hold exactly`);
      if (v >= 0) return this.rawVarint(v);
      v = BigInt(v);
    }
    let u = BigInt.asUintN(64, v);
    this.reserve(10);
    while (u >= 0x80n) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  private tag(field: number, wire: number): void {
    this.rawVarint(field * 8 + wire);
  }

  int64(field: number, v: number | bigint): this {
    this.tag(field, WIRE.varint);
    this.int64Varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, WIRE.fixed32);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat32(this.pos, v, true);
    this.pos += 4;
    return this;
  }

  bytes(field: number, v: Uint8Array): this {
    this.tag(field, WIRE.bytes);
    this.rawVarint(v.length);
    if (v.length >= BY_REFERENCE) {
      this.flush();
      this.parts.push(v);
      this.flushed += v.length;
    } else {
      this.reserve(v.length);
      this.buf.set(v, this.pos);
      this.pos += v.length;
    }
    return this;
  }

  string(field: number, v: string): this {
    return this.bytes(field, utf8Encoder.encode(v));
  }

  /** A nested message, written by `body` into a writer of its own. */
  message(field: number, body: (w: ProtoWriter) => void): this {
    const child = new ProtoWriter();
    body(child);
    this.tag(field, WIRE.bytes);
    this.rawVarint(child.length);
    child.flush();
    this.flush();
    for (const p of child.parts) this.parts.push(p);
    this.flushed += child.flushed;
    return this;
  }

  /** A field copied as it was read (its tag and payload), for fields this toolkit does not interpret. */
  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  packedInt64(field: number, values: ArrayLike<number | bigint>): this {
    if (values.length === 0) return this;
    return this.message(field, (w) => {
      for (let i = 0; i < values.length; i++) w.int64Varint(values[i]!);
    });
  }

  packedFloat(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this;
    const f = new Float32Array(values.length);
    f.set(Array.from(values));
    return this.bytes(field, littleEndianBytes(f));
  }

  packedDouble(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this;
    const f = new Float64Array(values.length);
    f.set(Array.from(values));
    return this.bytes(field, littleEndianBytes(f));
  }

  /** The encoded message as one buffer (the single copy of any large byte field). */
  finish(): Uint8Array {
    this.flush();
    if (this.parts.length === 1) return this.parts[0]!;
    const out = new Uint8Array(this.flushed);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** The bytes of a typed array in little-endian order (the order of ONNX raw_data and of every supported host). */
export function littleEndianBytes(a: ArrayBufferView): Uint8Array {
  if (!HOST_LITTLE_ENDIAN) throw new Error('big-endian hosts are not supported');
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface Field {
  field: number;
  wire: number;
  /** Varint fields: the value as a number when it is a safe integer, else a bigint (signed int64 semantics). */
  int?: number | bigint;
  /** fixed32 / fixed64 / length-delimited payload (a view into the message, not a copy). */
  data?: Uint8Array;
  /** The field's bytes as they appear in the message, tag included, for copying unknown fields through. */
  raw: Uint8Array;
}

export class ProtoDecodeError extends Error {}

/** Iterates the fields of one message. Payloads are views into `buf`. */
export function* readFields(buf: Uint8Array): Generator<Field> {
  let pos = 0;
  const varint = (): bigint | number => {
    let lo = 0;
    let shift = 0;
    // Fast path: up to 7 bytes fit a double exactly.
    while (pos < buf.length && shift < 49) {
      const byte = buf[pos++]!;
      lo += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return lo;
      shift += 7;
    }
    let big = BigInt(lo);
    let bshift = BigInt(shift);
    while (pos < buf.length) {
      const byte = buf[pos++]!;
      big |= BigInt(byte & 0x7f) << bshift;
      if (byte < 0x80) return big;
      bshift += 7n;
      if (bshift > 70n) break;
    }
    throw new ProtoDecodeError('malformed or truncated varint');
  };
  while (pos < buf.length) {
    const start = pos;
    const key = varint();
    const k = typeof key === 'bigint' ? Number(key) : key;
    const field = Math.floor(k / 8);
    const wire = k % 8;
    if (field === 0) throw new ProtoDecodeError('field number 0');
    let f: Field;
    switch (wire) {
      case WIRE.varint: {
        f = { field, wire, int: toSignedInt64(varint()), raw: buf };
        break;
      }
      case WIRE.fixed64:
      case WIRE.fixed32: {
        const n = wire === WIRE.fixed64 ? 8 : 4;
        if (pos + n > buf.length) throw new ProtoDecodeError('truncated fixed-width field');
        f = { field, wire, data: buf.subarray(pos, pos + n), raw: buf };
        pos += n;
        break;
      }
      case WIRE.bytes: {
        const lenV = varint();
        const len = typeof lenV === 'bigint' ? Number(lenV) : lenV;
        if (len > buf.length - pos) throw new ProtoDecodeError(`field ${field} runs past the end of its message`);
        f = { field, wire, data: buf.subarray(pos, pos + len), raw: buf };
        pos += len;
        break;
      }
      default:
        throw new ProtoDecodeError(`unsupported wire type ${wire} (field ${field})`);
    }
    f.raw = buf.subarray(start, pos);
    yield f;
  }
}

/** A varint's value read as int64: values ≥ 2^63 are negative; safe integers come back as numbers. */
function toSignedInt64(v: number | bigint): number | bigint {
  if (typeof v === 'number') return v;
  const s = BigInt.asIntN(64, v);
  return s >= BigInt(Number.MIN_SAFE_INTEGER) && s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s;
}

export function fieldString(f: Field): string {
  if (!f.data) throw new ProtoDecodeError(`field ${f.field} is not length-delimited`);
  return utf8Decoder.decode(f.data);
}

export function fieldInt(f: Field): number {
  if (f.int === undefined) throw new ProtoDecodeError(`field ${f.field} is not a varint`);
  if (typeof f.int === 'bigint') throw new ProtoDecodeError(`field ${f.field} holds ${f.int}, beyond 2^53`);
  return f.int;
}

export function fieldFloat(f: Field): number {
  if (!f.data || f.data.length !== 4) throw new ProtoDecodeError(`field ${f.field} is not a float`);
  return new DataView(f.data.buffer, f.data.byteOffset, 4).getFloat32(0, true);
}

/** A repeated int64 field's values from one occurrence, packed or not. */
export function fieldInt64s(f: Field): Array<number | bigint> {
  if (f.wire === WIRE.varint) return [f.int!];
  const out: Array<number | bigint> = [];
  const payload = f.data!;
  let pos = 0;
  while (pos < payload.length) {
    let lo = 0;
    let shift = 0;
    let big: bigint | undefined;
    for (;;) {
      if (pos >= payload.length) throw new ProtoDecodeError('truncated packed varint');
      const byte = payload[pos++]!;
      if (big === undefined && shift < 49) lo += (byte & 0x7f) * 2 ** shift;
      else {
        big ??= BigInt(lo);
        big |= BigInt(byte & 0x7f) << BigInt(shift);
      }
      if (byte < 0x80) break;
      shift += 7;
      if (shift > 70) throw new ProtoDecodeError('malformed packed varint');
    }
    out.push(toSignedInt64(big ?? lo));
  }
  return out;
}

export function fieldFloats(f: Field): number[] {
  if (f.wire === WIRE.fixed32) return [fieldFloat(f)];
  const d = f.data!;
  if (d.length % 4 !== 0) throw new ProtoDecodeError(`packed floats of ${d.length} bytes`);
  const view = new DataView(d.buffer, d.byteOffset, d.length);
  return Array.from({ length: d.length / 4 }, (_, i) => view.getFloat32(4 * i, true));
}

export function fieldDoubles(f: Field): number[] {
  const d = f.data!;
  if (d.length % 8 !== 0) throw new ProtoDecodeError(`packed doubles of ${d.length} bytes`);
  const view = new DataView(d.buffer, d.byteOffset, d.length);
  return Array.from({ length: d.length / 8 }, (_, i) => view.getFloat64(8 * i, true));
}

