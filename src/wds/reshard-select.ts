/**
 * The samples `mimic reshard` keeps, read from what `mimic filter` (or DataComp) writes: a DataComp `.npy` subset
 * or a text file of uids, a text file of sample keys, or the filter's table of selected rows (Arrow or Parquet,
 * with `shard` and `row` columns). Every id becomes a 128-bit key held as four uint32 words, most significant
 * first, in one sorted array — 16 bytes an id, duplicates kept, since an id listed twice is written twice (as
 * DataComp's resharder does) — and a sample's count is found by binary search.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { RecordBatchReader } from 'apache-arrow';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { MimicError, errorMessage } from '../errors.js';

/** What the ids name: a json `uid`, a sample key, or a (shard, row) position. */
export type SelectionKind = 'uid' | 'key' | 'row';

/** A sorted multiset of 128-bit keys (4 words each). */
export class KeyMultiset {
  private constructor(
    /** Sorted, 4 words per key, word 0 most significant. */
    private readonly words: Uint32Array,
    /** Keys, counting repeats. */
    readonly size: number,
    /** Distinct keys. */
    readonly distinct: number,
    /** sha256 of the sorted keys: the selection's identity, whatever the file's order or format. */
    readonly hash: string,
  ) {}

  /** From `n` keys of 4 words each, in any order (the array is sorted in place). */
  static fromWords(words: Uint32Array, n: number): KeyMultiset {
    const w = words.subarray(0, n * 4);
    if (!isSorted(w, n)) radixSort(w, n);
    let distinct = 0;
    for (let i = 0; i < n; i++) if (i === 0 || compareAt(w, i - 1, w, i) !== 0) distinct++;
    const hash = createHash('sha256').update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength)).digest('hex');
    return new KeyMultiset(w, n, distinct, hash);
  }

  /** How many times the key (4 words at key[off..off+4)) is listed. */
  count(key: ArrayLike<number>, off = 0): number {
    const lo = this.bound(key, off, false);
    if (lo === this.size || compareKey(this.words, lo, key, off) !== 0) return 0;
    return this.bound(key, off, true) - lo;
  }

  /** First index whose key is ≥ key (or > key when `upper`). */
  private bound(key: ArrayLike<number>, off: number, upper: boolean): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareKey(this.words, mid, key, off);
      if (c < 0 || (upper && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function compareKey(words: Uint32Array, i: number, key: ArrayLike<number>, off: number): number {
  for (let j = 0; j < 4; j++) {
    const a = words[i * 4 + j]!;
    const b = key[off + j]!;
    if (a !== b) return a < b ? -1 : 1;
  }
  return 0;
}

function compareAt(a: Uint32Array, i: number, b: Uint32Array, j: number): number {
  return compareKey(a, i, b, j * 4);
}

function isSorted(w: Uint32Array, n: number): boolean {
  for (let i = 1; i < n; i++) if (compareAt(w, i - 1, w, i) > 0) return false;
  return true;
}

/** LSD radix sort of 4-word records, 16 bits a pass: linear time at any size, one scratch copy. */
function radixSort(w: Uint32Array, n: number): void {
  let src: Uint32Array = w;
  let dst: Uint32Array = new Uint32Array(w.length);
  const counts = new Uint32Array(65537);
  for (let pass = 0; pass < 8; pass++) {
    const word = 3 - (pass >> 1);
    const shift = (pass & 1) * 16;
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[((src[i * 4 + word]! >>> shift) & 0xffff) + 1]!++;
    if (counts.includes(n)) continue; // every key in one bucket: the order stays
    for (let k = 1; k <= 65536; k++) counts[k]! += counts[k - 1]!;
    for (let i = 0; i < n; i++) {
      const o = i * 4;
      const d = counts[(src[o + word]! >>> shift) & 0xffff]!++ * 4;
      dst[d] = src[o]!;
      dst[d + 1] = src[o + 1]!;
      dst[d + 2] = src[o + 2]!;
      dst[d + 3] = src[o + 3]!;
    }
    [src, dst] = [dst, src];
  }
  if (src !== w) w.set(src);
}

/** A growable array of 4-word keys. */
class KeyList {
  words = new Uint32Array(4 * 1024);
  n = 0;
  push(a: number, b: number, c: number, d: number): void {
    if ((this.n + 1) * 4 > this.words.length) {
      const bigger = new Uint32Array(this.words.length * 2);
      bigger.set(this.words);
      this.words = bigger;
    }
    const o = this.n * 4;
    this.words[o] = a >>> 0;
    this.words[o + 1] = b >>> 0;
    this.words[o + 2] = c >>> 0;
    this.words[o + 3] = d >>> 0;
    this.n++;
  }
  pushWords(k: ArrayLike<number>): void {
    this.push(k[0]!, k[1]!, k[2]!, k[3]!);
  }
}

/**
 * A uid's text as a 128-bit number into out[0..4): 1–32 hex digits, either case, as Python's `int(uid, 16)` reads
 * a DataComp uid. False when it is not such a number.
 */
export function uidWords(uid: string, out: Uint32Array | number[]): boolean {
  if (uid.length === 0 || uid.length > 32 || !/^[0-9a-fA-F]+$/.test(uid)) return false;
  const padded = uid.padStart(32, '0');
  for (let w = 0; w < 4; w++) out[w] = Number.parseInt(padded.slice(w * 8, w * 8 + 8), 16) >>> 0;
  return true;
}

/** A sample key as a 128-bit key: the first 16 bytes of its UTF-8's sha256 (keys are unbounded strings). */
export function keyWords(key: string, out: Uint32Array | number[]): void {
  const h = createHash('sha256').update(key, 'utf8').digest();
  for (let w = 0; w < 4; w++) out[w] = h.readUInt32BE(w * 4);
}

/** A (shard index, row) position as a 128-bit key. */
export function rowWords(shard: number, row: number, out: Uint32Array | number[]): void {
  out[0] = shard >>> 0;
  out[1] = row >>> 0;
  out[2] = 0;
  out[3] = 0;
}

export interface Selection {
  file: string;
  kind: SelectionKind;
  /** What the file is: npy, uid text, key text, arrow, parquet. */
  format: 'npy' | 'text' | 'arrow' | 'parquet';
  ids: KeyMultiset;
}

export interface ReadSelectionOptions {
  /** For a text file: what its lines are (default: uids when every line is a uid, else keys). */
  textKind?: 'uid' | 'key';
  /** For a table: the source shards' names (the `shard` column's values) in the order of the shard list. */
  shardNames?: string[];
}

const NPY_MAGIC = Buffer.from('\x93NUMPY', 'latin1');
const ARROW_MAGIC = Buffer.from('ARROW1', 'latin1');
const PARQUET_MAGIC = Buffer.from('PAR1', 'latin1');

/** Read the kept ids, telling the format from the file's first bytes (and a text file's lines). */
export async function readSelection(file: string, opts: ReadSelectionOptions = {}): Promise<Selection> {
  let head: Buffer;
  try {
    const fh = await open(file, 'r');
    try {
      const b = Buffer.alloc(8);
      const { bytesRead } = await fh.read(b, 0, 8, 0);
      head = b.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw new MimicError('E_USAGE', `cannot read the selection: ${errorMessage(e)}`, { file, cause: e });
  }
  if (head.subarray(0, 6).equals(NPY_MAGIC)) return { file, kind: 'uid', format: 'npy', ids: await readNpy(file) };
  if (head.subarray(0, 6).equals(ARROW_MAGIC)) return { file, kind: 'row', format: 'arrow', ids: await readArrowRows(file, shardIndex(file, opts)) };
  if (head.subarray(0, 4).equals(PARQUET_MAGIC)) return { file, kind: 'row', format: 'parquet', ids: await readParquetRows(file, shardIndex(file, opts)) };
  const { kind, ids } = await readTextIds(file, opts.textKind);
  return { file, kind, format: 'text', ids };
}

function shardIndex(file: string, opts: ReadSelectionOptions): Map<string, number> {
  if (!opts.shardNames) {
    throw new MimicError('E_USAGE', 'a table of selected rows needs the source shards to resolve its shard column', { file });
  }
  return new Map(opts.shardNames.map((n, i) => [n, i]));
}

/** DataComp's subset: NPY, dtype [('f0','<u8'),('f1','<u8')], f0 the high 64 bits; read in chunks, any size. */
async function readNpy(file: string): Promise<KeyMultiset> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const pre = Buffer.alloc(12);
    await fh.read(pre, 0, 12, 0);
    const major = pre[6]!;
    const start = major === 1 ? 10 : 12;
    const headerLen = major === 1 ? pre.readUInt16LE(8) : pre.readUInt32LE(8);
    const headerBytes = Buffer.alloc(headerLen);
    await fh.read(headerBytes, 0, headerLen, start);
    const header = headerBytes.toString('latin1');
    if (!/'descr':\s*\[\s*\('f0',\s*'<u8'\),\s*\('f1',\s*'<u8'\)\s*\]/.test(header) || /'fortran_order':\s*True/.test(header)) {
      throw new MimicError('E_USAGE', `the .npy file is not a DataComp uid subset (header ${header.trim()})`, {
        file,
        hint: "expected dtype [('f0','<u8'),('f1','<u8')], as DataComp's subset files and `mimic filter --npy` have",
      });
    }
    const bodyStart = start + headerLen;
    const bodyBytes = size - bodyStart;
    if (bodyBytes < 0 || bodyBytes % 16 !== 0) {
      throw new MimicError('E_USAGE', `the .npy file is truncated (${bodyBytes} bytes of 16-byte records)`, { file });
    }
    const n = bodyBytes / 16;
    const words = new Uint32Array(n * 4);
    const chunk = Buffer.alloc(1 << 20);
    for (let done = 0; done < n; ) {
      const want = Math.min(chunk.length / 16, n - done);
      const { bytesRead } = await fh.read(chunk, 0, want * 16, bodyStart + done * 16);
      if (bytesRead !== want * 16) throw new MimicError('E_USAGE', 'the .npy file changed while it was read', { file });
      for (let i = 0; i < want; i++) {
        const o = i * 16;
        const k = (done + i) * 4;
        words[k] = chunk.readUInt32LE(o + 4);
        words[k + 1] = chunk.readUInt32LE(o);
        words[k + 2] = chunk.readUInt32LE(o + 12);
        words[k + 3] = chunk.readUInt32LE(o + 8);
      }
      done += want;
    }
    return KeyMultiset.fromWords(words, n);
  } finally {
    await fh.close();
  }
}

const HEX_UID = /^[0-9a-fA-F]{32}$/;

/** Each non-blank line that is not a `#` comment, with its line number. */
async function* idLines(file: string): AsyncGenerator<[string, number]> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const raw of lines) {
      lineNo++;
      if (raw.trim() === '' || raw.startsWith('#')) continue;
      yield [raw, lineNo];
    }
  } catch (e) {
    throw new MimicError('E_USAGE', `cannot read the selection: ${errorMessage(e)}`, { file, cause: e });
  }
}

/**
 * One id a line (blank lines and `#` comments skipped). Uids when every line is a 32-hex uid, else keys (a first
 * pass decides, a second reads, so only one kind is ever held). Keys are taken as written; uids trimmed.
 */
async function readTextIds(file: string, forced?: 'uid' | 'key'): Promise<{ kind: 'uid' | 'key'; ids: KeyMultiset }> {
  let kind = forced;
  if (!kind) {
    kind = 'uid';
    let any = false;
    for await (const [line] of idLines(file)) {
      any = true;
      if (!HEX_UID.test(line.trim())) {
        kind = 'key';
        break;
      }
    }
    if (!any) kind = 'uid';
  }
  const list = new KeyList();
  const w = new Uint32Array(4);
  for await (const [line, lineNo] of idLines(file)) {
    if (kind === 'key') {
      keyWords(line, w);
    } else if (!uidWords(line.trim(), w)) {
      throw new MimicError('E_USAGE', `line ${lineNo} is not a uid (1 to 32 hex digits): ${JSON.stringify(line.slice(0, 40))}`, {
        file,
        hint: 'a uid file has one uid per line; for sample keys pass --id-kind key',
      });
    }
    list.pushWords(w);
  }
  return { kind, ids: KeyMultiset.fromWords(list.words, list.n) };
}

function tableRow(file: string, shards: Map<string, number>, shard: unknown, row: unknown, out: KeyList, w: Uint32Array): void {
  if (typeof shard !== 'string') throw new MimicError('E_USAGE', `a row of the table has no shard name (${String(shard)})`, { file });
  const s = shards.get(shard);
  if (s === undefined) {
    throw new MimicError('E_USAGE', `the table names the shard "${shard}", which is not among the source shards`, {
      file,
      hint: 'pass the shards that were scored (--run OUT, or the same --shards list as `mimic score`)',
    });
  }
  const r = typeof row === 'bigint' ? Number(row) : row;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r > 0xffffffff) {
    throw new MimicError('E_USAGE', `a row of the table has no valid row index (${String(row)})`, { file });
  }
  rowWords(s, r, w);
  out.pushWords(w);
}

/** The filter's Arrow table: record batch by record batch, only `shard` and `row` looked at. */
async function readArrowRows(file: string, shards: Map<string, number>): Promise<KeyMultiset> {
  const out = new KeyList();
  const w = new Uint32Array(4);
  const fh = await open(file, 'r');
  try {
    const reader = await RecordBatchReader.from(fh);
    await reader.open();
    for await (const batch of reader) {
      const shard = batch.getChild('shard');
      const row = batch.getChild('row');
      if (!shard || !row) {
        throw new MimicError('E_USAGE', 'the table has no `shard` and `row` columns', { file, hint: 'pass the table that `mimic filter --table` wrote' });
      }
      for (let i = 0; i < batch.numRows; i++) tableRow(file, shards, shard.get(i), row.get(i), out, w);
    }
  } catch (e) {
    if (e instanceof MimicError) throw e;
    throw new MimicError('E_USAGE', `cannot read the Arrow table: ${errorMessage(e)}`, { file, cause: e });
  } finally {
    await fh.close();
  }
  return KeyMultiset.fromWords(out.words, out.n);
}

/** The filter's Parquet table: row group by row group, only `shard` and `row` read. */
async function readParquetRows(file: string, shards: Map<string, number>): Promise<KeyMultiset> {
  const out = new KeyList();
  const w = new Uint32Array(4);
  try {
    const buffer = await asyncBufferFromFile(file);
    const metadata = await parquetMetadataAsync(buffer);
    const names = new Set(metadata.schema.map((s) => s.name));
    if (!names.has('shard') || !names.has('row')) {
      throw new MimicError('E_USAGE', 'the table has no `shard` and `row` columns', { file, hint: 'pass the table that `mimic filter --table` wrote' });
    }
    let rowStart = 0;
    for (const group of metadata.row_groups) {
      const rowEnd = rowStart + Number(group.num_rows);
      const rows = await parquetReadObjects({ file: buffer, metadata, columns: ['shard', 'row'], rowStart, rowEnd });
      for (const r of rows) tableRow(file, shards, r.shard, r.row, out, w);
      rowStart = rowEnd;
    }
  } catch (e) {
    if (e instanceof MimicError) throw e;
    throw new MimicError('E_USAGE', `cannot read the Parquet table: ${errorMessage(e)}`, { file, cause: e });
  }
  return KeyMultiset.fromWords(out.words, out.n);
}
