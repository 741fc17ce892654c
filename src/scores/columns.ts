/**
 * Plain columnar data shared by the score writer, the reader and the filter's exports: typed arrays plus an
 * Arrow-style validity bitmap (bit i of byte i>>3, least significant first; `null` = every row valid), so the
 * same buffers can go to and come from Arrow without copying.
 */
import type { ColumnType } from './schema.js';

export interface Utf8Column {
  type: 'utf8';
  length: number;
  /** length + 1 offsets into `bytes`. */
  offsets: Int32Array;
  bytes: Uint8Array;
  validity: Uint8Array | null;
  nullCount: number;
}

export interface Float32Column {
  type: 'float32';
  length: number;
  /** Null rows hold NaN (see the reader); `validity` tells a null from a NaN score. */
  values: Float32Array;
  validity: Uint8Array | null;
  nullCount: number;
}

export interface Int32Column {
  type: 'int32';
  length: number;
  values: Int32Array;
  validity: Uint8Array | null;
  nullCount: number;
}

export interface Uint32Column {
  type: 'uint32';
  length: number;
  values: Uint32Array;
  validity: Uint8Array | null;
  nullCount: number;
}

export type Column = Utf8Column | Float32Column | Int32Column | Uint32Column;

export function isValid(validity: Uint8Array | null, i: number): boolean {
  return validity === null || (validity[i >> 3] & (1 << (i & 7))) !== 0;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/** The string at row i, or null. */
export function utf8At(col: Utf8Column, i: number): string | null {
  if (!isValid(col.validity, i)) return null;
  return decoder.decode(col.bytes.subarray(col.offsets[i], col.offsets[i + 1]));
}

/** The raw UTF-8 bytes of row i (empty for null); no decoding, for writing straight to a text file. */
export function utf8BytesAt(col: Utf8Column, i: number): Uint8Array {
  return col.bytes.subarray(col.offsets[i], col.offsets[i + 1]);
}

/** Every value of a string column, decoded (for small columns and tests). */
export function utf8Values(col: Utf8Column): (string | null)[] {
  const out: (string | null)[] = new Array(col.length);
  for (let i = 0; i < col.length; i++) out[i] = utf8At(col, i);
  return out;
}

/** Count of set bits in the first n bits of a validity bitmap (n when there is no bitmap). */
export function countValid(validity: Uint8Array | null, n: number): number {
  if (validity === null) return n;
  let c = 0;
  for (let i = 0; i < n; i++) if (validity[i >> 3] & (1 << (i & 7))) c++;
  return c;
}

function grow<T extends Uint8Array | Int32Array | Uint32Array | Float32Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  let n = Math.max(16, a.length * 2);
  while (n < need) n *= 2;
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

/** A validity bitmap that grows; only materialised once the first null arrives. */
class ValidityBuilder {
  bits: Uint8Array | null = null;
  nullCount = 0;

  set(i: number, valid: boolean): void {
    if (valid) {
      if (this.bits !== null) {
        this.bits = grow(this.bits, (i >> 3) + 1);
        this.bits[i >> 3] |= 1 << (i & 7);
      }
      return;
    }
    if (this.bits === null) {
      // Everything before row i was valid.
      this.bits = new Uint8Array(Math.max(64, (i >> 3) + 1));
      for (let k = 0; k < i; k++) this.bits[k >> 3] |= 1 << (k & 7);
    }
    this.bits = grow(this.bits, (i >> 3) + 1);
    this.bits[i >> 3] &= ~(1 << (i & 7));
    this.nullCount++;
  }

  finish(length: number): Uint8Array | null {
    if (this.bits === null || this.nullCount === 0) return null;
    // Arrow wants the bitmap padded to whole bytes; trailing bits are ignored but must exist.
    const bytes = (length + 7) >> 3;
    return this.bits.length === bytes ? this.bits : this.bits.slice(0, bytes);
  }
}

const encoder = new TextEncoder();

export class Utf8Builder {
  private bytes = new Uint8Array(1024);
  private offsets = new Int32Array(256);
  private validity = new ValidityBuilder();
  length = 0;

  append(s: string | null | undefined): void {
    const i = this.length;
    this.offsets = grow(this.offsets, i + 2);
    const start = this.offsets[i];
    if (s === null || s === undefined) {
      this.validity.set(i, false);
      this.offsets[i + 1] = start;
    } else {
      // UTF-8 is at most 3 bytes per UTF-16 unit.
      this.bytes = grow(this.bytes, start + s.length * 3);
      const { written } = encoder.encodeInto(s, this.bytes.subarray(start));
      this.validity.set(i, true);
      this.offsets[i + 1] = start + written!;
    }
    this.length++;
  }

  /** The same string n times (a shard's name, an `ok` status): encoded once, copied n times. */
  appendRepeated(s: string | null, n: number): void {
    if (s === null) {
      for (let k = 0; k < n; k++) this.append(null);
      return;
    }
    const enc = encoder.encode(s);
    const i0 = this.length;
    this.offsets = grow(this.offsets, i0 + n + 1);
    let pos = this.offsets[i0];
    this.bytes = grow(this.bytes, pos + enc.length * n);
    for (let k = 0; k < n; k++) {
      this.bytes.set(enc, pos);
      pos += enc.length;
      this.offsets[i0 + k + 1] = pos;
      this.validity.set(i0 + k, true);
    }
    this.length += n;
  }

  finish(): Utf8Column {
    const n = this.length;
    const end = this.offsets[n];
    return {
      type: 'utf8',
      length: n,
      offsets: this.offsets.slice(0, n + 1),
      bytes: this.bytes.slice(0, end),
      validity: this.validity.finish(n),
      nullCount: this.validity.nullCount,
    };
  }
}

type NumericArray = Float32Array | Int32Array | Uint32Array;

export class NumericBuilder<T extends 'float32' | 'int32' | 'uint32'> {
  private values: NumericArray;
  private validity = new ValidityBuilder();
  length = 0;

  constructor(readonly type: T) {
    this.values = type === 'float32' ? new Float32Array(256) : type === 'int32' ? new Int32Array(256) : new Uint32Array(256);
  }

  append(v: number | null | undefined): void {
    const i = this.length;
    this.values = grow(this.values, i + 1);
    if (v === null || v === undefined) {
      this.validity.set(i, false);
      this.values[i] = this.type === 'float32' ? NaN : 0;
    } else {
      this.validity.set(i, true);
      this.values[i] = v;
    }
    this.length++;
  }

  /**
   * n values at once; `valid(k)` false makes row k null. Fast path for producers that already hold typed arrays.
   */
  appendArray(src: ArrayLike<number>, n: number, valid?: (k: number) => boolean): void {
    const i0 = this.length;
    this.values = grow(this.values, i0 + n);
    if (ArrayBuffer.isView(src) && !valid) {
      this.values.set((src as NumericArray).subarray(0, n), i0);
      for (let k = 0; k < n; k++) this.validity.set(i0 + k, true);
    } else {
      for (let k = 0; k < n; k++) {
        const ok = valid ? valid(k) : true;
        this.values[i0 + k] = ok ? src[k] : this.type === 'float32' ? NaN : 0;
        this.validity.set(i0 + k, ok);
      }
    }
    this.length += n;
  }

  finish(): Extract<Column, { type: T }> {
    const n = this.length;
    return {
      type: this.type,
      length: n,
      values: this.values.slice(0, n),
      validity: this.validity.finish(n),
      nullCount: this.validity.nullCount,
    } as unknown as Extract<Column, { type: T }>;
  }
}

export function builderFor(type: ColumnType): Utf8Builder | NumericBuilder<'float32' | 'int32' | 'uint32'> {
  return type === 'utf8' ? new Utf8Builder() : new NumericBuilder(type);
}
