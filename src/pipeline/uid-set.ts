/**
 * `--uids FILE`: the samples to score. Uids are 128-bit numbers (32 hex digits); they are kept as one sorted
 * array of 16-byte keys and looked up by binary search: 16 bytes a uid (100 M uids in 1.6 GB), where a Set of
 * strings would take ~6× that. Text files (one uid per line) and DataComp `.npy` subsets are both read.
 */
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { MimicError } from '../errors.js';

const HEX32 = /^[0-9a-fA-F]{32}$/;

export class UidSet {
  private constructor(
    /** 16 bytes per uid, big-endian (so byte order is numeric order), sorted, no duplicates. */
    private readonly keys: Uint8Array,
    readonly size: number,
    /** sha256 of the sorted keys: the run's identity does not depend on the file's order or format. */
    readonly hash: string,
  ) {}

  static fromHex(uids: Iterable<string>, file = '(uids)'): UidSet {
    const list: string[] = [];
    let line = 0;
    for (const raw of uids) {
      line++;
      const u = raw.trim();
      if (u === '' || u.startsWith('#')) continue;
      if (!HEX32.test(u)) {
        throw new MimicError('E_USAGE', `line ${line} is not a 32-hex-digit uid: ${JSON.stringify(u.slice(0, 40))}`, {
          file,
          hint: 'a uid file has one uid per line (or pass a DataComp .npy subset)',
        });
      }
      list.push(u.toLowerCase());
    }
    const keys = new Uint8Array(list.length * 16);
    list.forEach((u, i) => keys.set(Buffer.from(u, 'hex'), i * 16));
    return UidSet.fromKeys(keys);
  }

  /** From big-endian 16-byte keys in any order (duplicates dropped). */
  static fromKeys(keys: Uint8Array): UidSet {
    const n = keys.length / 16;
    const order = Array.from({ length: n }, (_, i) => i);
    const buf = Buffer.from(keys.buffer, keys.byteOffset, keys.byteLength);
    // Ascending, as `has` searches: Buffer#compare(target, tStart, tEnd, sStart, sEnd) orders source against target.
    order.sort((a, b) => buf.compare(buf, b * 16, b * 16 + 16, a * 16, a * 16 + 16));
    const sorted = new Uint8Array(n * 16);
    let m = 0;
    for (const i of order) {
      if (m > 0 && buf.compare(sorted, (m - 1) * 16, m * 16, i * 16, i * 16 + 16) === 0) continue;
      sorted.set(keys.subarray(i * 16, i * 16 + 16), m * 16);
      m++;
    }
    const packed = sorted.subarray(0, m * 16);
    return new UidSet(packed, m, createHash('sha256').update(packed).digest('hex'));
  }

  has(uid: string | null | undefined): boolean {
    if (!uid || !HEX32.test(uid)) return false;
    const key = Buffer.from(uid, 'hex');
    const keys = Buffer.from(this.keys.buffer, this.keys.byteOffset, this.keys.byteLength);
    let lo = 0;
    let hi = this.size - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = keys.compare(key, 0, 16, mid * 16, mid * 16 + 16);
      if (c === 0) return true;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }
}

/** Read a uid list: `.npy` as DataComp writes it ([('f0','<u8'),('f1','<u8')], f0 the high half), else text. */
export async function readUidFile(file: string): Promise<UidSet> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new MimicError('E_USAGE', `cannot read the uid file: ${(e as Error).message}`, { file });
  }
  if (bytes.subarray(0, 6).equals(Buffer.from('\x93NUMPY', 'latin1'))) return UidSet.fromKeys(npyToKeys(bytes, file));
  return UidSet.fromHex(bytes.toString('utf8').split('\n'), file);
}

function npyToKeys(bytes: Buffer, file: string): Uint8Array {
  const major = bytes[6]!;
  const headerLen = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = bytes.toString('latin1', start, start + headerLen);
  if (!/'descr':\s*\[\s*\('f0',\s*'<u8'\),\s*\('f1',\s*'<u8'\)\s*\]/.test(header) || /'fortran_order':\s*True/.test(header)) {
    throw new MimicError('E_USAGE', `the .npy file is not a DataComp uid subset (header ${header.trim()})`, {
      file,
      hint: "expected dtype [('f0','<u8'),('f1','<u8')], as DataComp's subset files have",
    });
  }
  const body = bytes.subarray(start + headerLen);
  if (body.length % 16 !== 0) throw new MimicError('E_USAGE', 'the .npy file is truncated', { file });
  const keys = new Uint8Array(body.length);
  for (let i = 0; i < body.length; i += 16) {
    // f0 (high 64 bits) then f1 (low), each little-endian: reverse each half into one big-endian key.
    for (let j = 0; j < 8; j++) {
      keys[i + j] = body[i + 7 - j]!;
      keys[i + 8 + j] = body[i + 15 - j]!;
    }
  }
  return keys;
}
