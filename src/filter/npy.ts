/**
 * DataComp's subset file: NPY v1.0, dtype [('f0','<u8'),('f1','<u8')], one record per kept uid, each uid as
 * `divmod(int(uid, 16), 2**64)` and the array sorted (the resharder binary-searches it). A uid is held as four
 * uint32 words, most significant first, so that sorting the words sorts the 128-bit numbers.
 */
import { AtomicFile } from '../atomic-file.js';
import type { ExternalSorter } from './extsort.js';

const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[65 + i] = 10 + i;
  HEX[97 + i] = 10 + i;
}

/** Two ASCII hex digits (first byte high) → their value 0..255, or −1. */
const HEX2 = new Int16Array(65536).fill(-1);
for (let a = 0; a < 128; a++) for (let b = 0; b < 128; b++) if (HEX[a] >= 0 && HEX[b] >= 0) HEX2[(a << 8) | b] = (HEX[a] << 4) | HEX[b];

/**
 * Parse a uid's hex text (1–32 hex digits, either case, as Python's int(uid, 16) takes them without a sign,
 * prefix, underscores or spaces) from UTF-8 bytes into out[off..off+4). False when it is not such a number.
 */
export function parseUidBytes(bytes: Uint8Array, out: Uint32Array | number[], off = 0): boolean {
  return parseUidRange(bytes, 0, bytes.length, out, off);
}

/** parseUidBytes of bytes[start..end), without making a view (the filter calls it once per kept row). */
export function parseUidRange(bytes: Uint8Array, start: number, end: number, out: Uint32Array | number[], off = 0): boolean {
  const len = end - start;
  if (len === 32) {
    // The usual DataComp uid: two digits per table lookup, eight per word, accumulated in a local.
    for (let w = 0; w < 4; w++) {
      let v = 0;
      for (let j = start + 8 * w, e = j + 8; j < e; j += 2) {
        const d = HEX2[(bytes[j] << 8) | bytes[j + 1]];
        if (d < 0) return false;
        v = (v << 8) | d;
      }
      out[off + w] = v >>> 0;
    }
    return true;
  }
  if (len <= 0 || len > 32) return false;
  out[off] = out[off + 1] = out[off + 2] = out[off + 3] = 0;
  // Digit j from the right goes to word 3 - (j >> 3), nibble j & 7.
  for (let j = 0; j < len; j++) {
    const c = bytes[end - 1 - j];
    const d = c < 128 ? HEX[c] : -1;
    if (d < 0) return false;
    const w = off + 3 - (j >> 3);
    out[w] = (out[w] | (d << ((j & 7) * 4))) >>> 0;
  }
  return true;
}

export function parseUid(uid: string, out: Uint32Array | number[], off = 0): boolean {
  return parseUidBytes(new TextEncoder().encode(uid), out, off);
}

/** The 32-hex text of four words (for messages and tests). */
export function uidHex(words: ArrayLike<number>, off = 0): string {
  let s = '';
  for (let k = 0; k < 4; k++) s += (words[off + k] >>> 0).toString(16).padStart(8, '0');
  return s;
}

/** The NPY v1.0 header for `count` records of DataComp's uid dtype, padded to a multiple of 64 bytes. */
export function npyHeader(count: number): Uint8Array {
  const dict = `{'descr': [('f0', '<u8'), ('f1', '<u8')], 'fortran_order': False, 'shape': (${count},), }`;
  const pre = 10; // magic (6) + version (2) + header length (2)
  let total = pre + dict.length + 1;
  total = Math.ceil(total / 64) * 64;
  const hlen = total - pre;
  if (hlen > 0xffff) throw new Error('npy header too long');
  const out = new Uint8Array(total);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, hlen & 0xff, hlen >> 8]);
  const text = dict.padEnd(hlen - 1, ' ') + '\n';
  for (let i = 0; i < text.length; i++) out[pre + i] = text.charCodeAt(i);
  return out;
}

/**
 * Write the sorter's uid records (stride ≥ 4, uid in the first four words) as a DataComp .npy, atomically.
 * Returns the number of records and how many were equal to the one before (duplicate uids are kept, as
 * np.save of DataComp's sorted array keeps them).
 */
export function writeUidNpy(path: string, sorter: ExternalSorter): { uids: number; duplicates: number } {
  const f = AtomicFile.open(path);
  try {
    f.write(npyHeader(sorter.count));
    const s = sorter.stride;
    let prev0 = -1, prev1 = -1, prev2 = -1, prev3 = -1;
    let dup = 0;
    let n = 0;
    const out = new Uint32Array(4 * 16384);
    for (const chunk of sorter.sorted()) {
      let o = 0;
      for (let p = 0; p < chunk.length; p += s) {
        const w0 = chunk[p], w1 = chunk[p + 1], w2 = chunk[p + 2], w3 = chunk[p + 3];
        if (w0 === prev0 && w1 === prev1 && w2 === prev2 && w3 === prev3) dup++;
        prev0 = w0; prev1 = w1; prev2 = w2; prev3 = w3;
        // f0 = high 64 bits, f1 = low 64 bits, each little-endian: low word first.
        out[o] = w1;
        out[o + 1] = w0;
        out[o + 2] = w3;
        out[o + 3] = w2;
        o += 4;
        n++;
        if (o === out.length) {
          f.write(new Uint8Array(out.buffer, 0, o * 4));
          o = 0;
        }
      }
      if (o > 0) f.write(new Uint8Array(out.buffer, 0, o * 4));
    }
    if (n !== sorter.count) throw new Error(`sorter returned ${n} of ${sorter.count} records`);
    f.commit();
    return { uids: n, duplicates: dup };
  } catch (e) {
    f.abort();
    throw e;
  }
}
