/**
 * Reading score files. The filter streams thousands of files several times, so a read fetches only what it
 * needs: the footer (schema and metadata), the record batches' small headers, and the byte ranges of the
 * requested columns, into one freshly allocated, 8-byte-aligned buffer that the returned typed arrays view
 * without a further copy (files with several record batches are concatenated, which copies).
 *
 * Null convention: float32 columns come back with NaN in null rows (the buffer is ours, so this costs no copy)
 * and the Arrow validity bitmap alongside, which tells a null from a NaN the scorer produced. Integer columns
 * hold 0 in null rows; strings are offsets + bytes + validity (see columns.ts).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { MimicError, errorMessage } from '../errors.js';
import type { Column } from './columns.js';
import { FB_TYPE, parseFooter, parseRecordBatchMessage, type FieldMeta } from './arrow-meta.js';
import { META, SCORE_COLUMNS, SCORE_FORMAT, type ColumnType } from './schema.js';

export interface ReadOptions {
  /** Columns to read (default: every column the reader understands). Unknown names are an error. */
  columns?: readonly string[];
  /** Check that the file has the score schema of schema.ts (default true). */
  validate?: boolean;
}

export interface ScoreFileData {
  path: string;
  /** Rows in the file (sum over record batches). */
  length: number;
  metadata: Record<string, string>;
  /** The file's columns and types, in file order (types outside ColumnType are 'other'). */
  schema: { name: string; type: ColumnType | 'other' }[];
  columns: Record<string, Column>;
}

export interface ScoreFileMeta {
  path: string;
  metadata: Record<string, string>;
  schema: { name: string; type: ColumnType | 'other' }[];
  /** Rows, from the record batch headers (not from the metadata, which the caller may want to check). */
  length: number;
}

const MAGIC = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31]; // ARROW1
/** Bytes read from the end of the file at once: the trailer and, for score files, the whole footer. */
const TAIL = 16384;
/** Neighbouring buffers closer than this are fetched by one read (a system call costs about this much copying). */
const READ_GAP = 16384;

function scoresError(path: string, message: string, hint?: string, cause?: unknown): MimicError {
  return new MimicError('E_SCORES', message, { file: path, hint, cause });
}

function columnTypeOf(f: FieldMeta): ColumnType | 'other' {
  if (f.typeId === FB_TYPE.Utf8) return 'utf8';
  if (f.typeId === FB_TYPE.FloatingPoint && f.precision === 1) return 'float32';
  if (f.typeId === FB_TYPE.Int && f.bitWidth === 32) return f.isSigned ? 'int32' : 'uint32';
  return 'other';
}

/** Buffers a flat field occupies in a record batch body (validity, [offsets], data). */
function bufferCount(f: FieldMeta, path: string): number {
  if (f.children === 0) {
    switch (f.typeId) {
      case FB_TYPE.Utf8:
      case FB_TYPE.Binary:
        return 3;
      case FB_TYPE.Int:
      case FB_TYPE.FloatingPoint:
      case FB_TYPE.Bool:
      case FB_TYPE.Date:
      case FB_TYPE.Time:
      case FB_TYPE.Timestamp:
      case FB_TYPE.Interval:
      case FB_TYPE.Duration:
      case FB_TYPE.Decimal:
      case FB_TYPE.FixedSizeBinary:
        return 2;
    }
  }
  const what = f.typeId === -1 ? 'dictionary-encoded' : `Arrow type id ${f.typeId}`;
  throw scoresError(path, `column ${f.name} has a nested or unsupported Arrow type (${what})`,
    'score files hold flat utf8/int/float columns only');
}

interface BatchInfo {
  length: number;
  bodyOffset: number;
  nodes: { length: number; nullCount: number }[];
  /** offset (in the body), length: two numbers per buffer. */
  buffers: number[];
}

/** Where one buffer's bytes landed: an 8-byte-aligned view (empty when the buffer is empty). */
type Landed = Uint8Array;

/**
 * Memory that reads land in, reused from one file to the next: a caller that reads thousands of files and
 * drops each file's columns before the next (the filter's threads) spares the allocation and the page faults
 * of fresh buffers. Columns read through an arena are valid until its next reset().
 */
export class ReadArena {
  private buf = new Uint8Array(0);
  private used = 0;

  reset(): void {
    this.used = 0;
  }

  /** `bytes` bytes at an 8-byte-aligned offset. */
  take(bytes: number): Uint8Array {
    const size = (bytes + 7) & ~7;
    if (this.used + size > this.buf.length) {
      // A new, larger block; views into the old one stay valid (they hold it).
      this.buf = new Uint8Array(Math.max(size, 2 * this.buf.length, 1 << 20));
      this.used = 0;
    }
    const out = this.buf.subarray(this.used, this.used + bytes);
    this.used += size;
    return out;
  }
}

/** An open score file whose footer and batch headers are parsed; columns are read on demand. */
export class ScoreFileReader {
  readonly path: string;
  readonly metadata: Record<string, string>;
  readonly schema: { name: string; type: ColumnType | 'other' }[];
  readonly length: number;
  private readonly fields: FieldMeta[];
  private readonly index: Map<string, number>;
  private readonly firstBuffer: number[];
  private readonly batches: BatchInfo[];
  private fd: number | null;

  private constructor(path: string, fd: number, fields: FieldMeta[], metadata: Record<string, string>, batches: BatchInfo[]) {
    this.path = path;
    this.fd = fd;
    this.fields = fields;
    this.metadata = metadata;
    this.schema = fields.map((f) => ({ name: f.name, type: columnTypeOf(f) }));
    this.index = new Map();
    fields.forEach((f, i) => {
      if (!this.index.has(f.name)) this.index.set(f.name, i);
    });
    this.batches = batches;
    this.length = batches.reduce((s, b) => s + b.length, 0);
    let b = 0;
    this.firstBuffer = fields.map((f) => {
      const first = b;
      b += bufferCount(f, path);
      return first;
    });
  }

  /** Open and parse the footer and the record batch headers. */
  static open(path: string, opts: { validate?: boolean } = {}): ScoreFileReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw scoresError(path, code === 'ENOENT' ? 'score file not found' : `cannot open score file: ${errorMessage(e)}`,
        code === 'ENOENT' ? 'check the run folder; `mimic score` writes OUT/<checkpoint>/<shard>.arrow' : undefined, e);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 6 + 2 + 4 + 6) throw scoresError(path, `not an Arrow IPC file (${size} bytes)`, 'the file is truncated or of another format');
      // One read usually brings the trailer and the whole footer.
      const tailStart = Math.max(0, size - TAIL);
      const tail = readAt(fd, tailStart, size - tailStart, path);
      const t = tail.byteLength - 10;
      for (let k = 0; k < 6; k++) {
        if (tail[t + 4 + k] !== MAGIC[k]) {
          throw scoresError(path, 'not an Arrow IPC file (no ARROW1 trailer)',
            'the file is truncated, still being written, or an Arrow *stream* rather than a file');
        }
      }
      const footerLength = new DataView(tail.buffer, tail.byteOffset).getInt32(t, true);
      if (footerLength <= 0 || footerLength > size - 16) throw scoresError(path, `corrupt Arrow footer length ${footerLength}`);
      const footerStart = size - 10 - footerLength;
      const footerBytes = footerStart >= tailStart
        ? tail.subarray(footerStart - tailStart, footerStart - tailStart + footerLength)
        : readAt(fd, footerStart, footerLength, path);
      let footer: ReturnType<typeof parseFooter>;
      try {
        footer = parseFooter(footerBytes);
      } catch (e) {
        throw scoresError(path, `corrupt Arrow footer: ${errorMessage(e)}`, undefined, e);
      }
      const batches: BatchInfo[] = [];
      for (const block of footer.blocks) {
        batches.push(readBatchHeader(fd, block.offset, block.metaDataLength, size, path));
      }
      const r = new ScoreFileReader(path, fd, footer.fields, footer.metadata, batches);
      if (opts.validate !== false) r.validate();
      return r;
    } catch (e) {
      closeSync(fd);
      if (e instanceof MimicError) throw e;
      throw scoresError(path, `cannot read score file: ${errorMessage(e)}`, undefined, e);
    }
  }

  private validate(): void {
    const byName = new Map(this.schema.map((c) => [c.name, c.type]));
    for (const c of SCORE_COLUMNS) {
      const t = byName.get(c.name);
      if (t === undefined) {
        throw scoresError(this.path, `not a score file: column ${c.name} is missing`,
          `score files have the columns of ${SCORE_FORMAT} (src/scores/schema.ts)`);
      }
      if (t !== c.type) throw scoresError(this.path, `column ${c.name} is ${t}, expected ${c.type}`);
    }
    const format = this.metadata[META.format];
    if (format !== SCORE_FORMAT) {
      throw scoresError(this.path, `score file format is ${format === undefined ? 'missing' : JSON.stringify(format)}, expected ${SCORE_FORMAT}`,
        'it was written by another tool or version; rescore the shard');
    }
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  /** Read the named columns (all readable ones by default), into fresh memory or the arena's. */
  read(names?: readonly string[], arena?: ReadArena): Record<string, Column> {
    const wanted = names ?? this.schema.filter((c) => c.type !== 'other').map((c) => c.name);
    const idx: number[] = [];
    for (const name of wanted) {
      const i = this.index.get(name);
      if (i === undefined) throw scoresError(this.path, `column ${name} is not in the file`);
      if (this.schema[i].type === 'other') throw scoresError(this.path, `column ${name} has a type the score reader does not read`);
      idx.push(i);
    }
    const out: Record<string, Column> = {};
    if (this.batches.length === 1) {
      const cols = this.readBatch(0, idx, arena);
      idx.forEach((i, k) => (out[wanted[k]] = cols[k]));
    } else {
      const perBatch = this.batches.map((_, bi) => this.readBatch(bi, idx, arena));
      idx.forEach((i, k) => (out[wanted[k]] = concatColumns(perBatch.map((cols) => cols[k]), this.length, this.schema[i].type as ColumnType)));
    }
    return out;
  }

  /**
   * The columns `fieldIdx` of record batch `bi`: every buffer they need is fetched, neighbours by one read
   * into one fresh buffer, at 8-byte-aligned positions so that typed arrays view them without a copy.
   */
  private readBatch(bi: number, fieldIdx: number[], arena?: ReadArena): Column[] {
    const batch = this.batches[bi];
    // (column k, buffer j) → [offset in body, length]
    const regions: { k: number; j: number; off: number; len: number }[] = [];
    const nBufs = fieldIdx.map((fi) => (this.schema[fi].type === 'utf8' ? 3 : 2));
    fieldIdx.forEach((fi, k) => {
      const first = this.firstBuffer[fi];
      if (2 * (first + nBufs[k]) > batch.buffers.length) throw scoresError(this.path, `record batch ${bi} lists too few buffers`);
      for (let j = 0; j < nBufs[k]; j++) {
        regions.push({ k, j, off: batch.buffers[2 * (first + j)], len: batch.buffers[2 * (first + j) + 1] });
      }
    });
    const landed: Landed[][] = fieldIdx.map((_, k) => new Array<Landed>(nBufs[k]));
    const empty = new Uint8Array(0);
    const order = regions.filter((r) => r.len > 0).sort((a, b) => a.off - b.off);
    for (const r of regions) if (r.len === 0) landed[r.k][r.j] = empty;
    for (let s = 0; s < order.length; ) {
      // Grow a span while the next buffer starts close to its end.
      let e = s + 1;
      let end = order[s].off + order[s].len;
      while (e < order.length && order[e].off <= end + READ_GAP) {
        end = Math.max(end, order[e].off + order[e].len);
        e++;
      }
      const start = order[s].off;
      const mem = arena ? arena.take(end - start) : new Uint8Array(new ArrayBuffer((end - start + 7) & ~7));
      readInto(this.fd!, batch.bodyOffset + start, mem.subarray(0, end - start), this.path);
      for (let q = s; q < e; q++) {
        const r = order[q];
        const rel = r.off - start;
        // Arrow aligns buffers to 8 bytes; a writer that did not gets a copy rather than a misaligned view.
        landed[r.k][r.j] = (rel & 7) === 0 ? mem.subarray(rel, rel + r.len) : mem.slice(rel, rel + r.len);
      }
      s = e;
    }
    return fieldIdx.map((fi, k) => this.columnOf(fi, batch.nodes[fi], landed[k]));
  }

  private columnOf(fieldIndex: number, node: { length: number; nullCount: number } | undefined, bufs: Landed[]): Column {
    const name = this.fields[fieldIndex].name;
    if (node === undefined) throw scoresError(this.path, `record batch lists too few field nodes for column ${name}`);
    const type = this.schema[fieldIndex].type as ColumnType;
    const n = node.length;
    const validity = node.nullCount > 0 && bufs[0].byteLength > 0 ? bufs[0].subarray(0, (n + 7) >> 3) : null;
    if (node.nullCount > 0 && validity === null) throw scoresError(this.path, `column ${name} has nulls but no validity buffer`);
    if (validity !== null && validity.byteLength < (n + 7) >> 3) throw scoresError(this.path, `column ${name}: validity buffer too short`);
    if (type === 'utf8') {
      if (bufs[1].byteLength < (n + 1) * 4) throw scoresError(this.path, `column ${name}: offsets buffer too short`);
      const offsets = new Int32Array(bufs[1].buffer, bufs[1].byteOffset, n + 1);
      const bytes = bufs[2];
      if (offsets[n] > bytes.length || offsets[0] < 0) throw scoresError(this.path, `column ${name}: offsets out of range`);
      return { type, length: n, offsets, bytes, validity, nullCount: node.nullCount };
    }
    if (bufs[1].byteLength < n * 4) throw scoresError(this.path, `column ${name}: data buffer too short`);
    if (type === 'float32') {
      const values = new Float32Array(bufs[1].buffer, bufs[1].byteOffset, n);
      if (validity) fillNulls(values, validity, n, NaN);
      return { type, length: n, values, validity, nullCount: node.nullCount };
    }
    const values = type === 'int32' ? new Int32Array(bufs[1].buffer, bufs[1].byteOffset, n) : new Uint32Array(bufs[1].buffer, bufs[1].byteOffset, n);
    if (validity) fillNulls(values, validity, n, 0);
    return { type, length: n, values, validity, nullCount: node.nullCount } as Column;
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}

/** One column from its parts in several record batches (copies). */
function concatColumns(parts: Column[], n: number, type: ColumnType): Column {
  const anyNull = parts.some((p) => p.nullCount > 0);
  const validity = anyNull ? new Uint8Array((n + 7) >> 3) : null;
  let nullCount = 0;
  let row = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++, row++) {
      const ok = p.validity === null || (p.validity[i >> 3] & (1 << (i & 7))) !== 0;
      if (validity && ok) validity[row >> 3] |= 1 << (row & 7);
      if (!ok) nullCount++;
    }
  }
  if (type === 'utf8') {
    const ps = parts as Extract<Column, { type: 'utf8' }>[];
    const totalBytes = ps.reduce((s, p) => s + (p.offsets[p.length] - p.offsets[0]), 0);
    const offsets = new Int32Array(n + 1);
    const bytes = new Uint8Array(totalBytes);
    let pos = 0;
    let r = 0;
    for (const p of ps) {
      const base = p.offsets[0];
      bytes.set(p.bytes.subarray(base, p.offsets[p.length]), pos);
      for (let i = 0; i < p.length; i++) offsets[++r] = pos + p.offsets[i + 1] - base;
      pos += p.offsets[p.length] - base;
    }
    return { type, length: n, offsets, bytes, validity, nullCount };
  }
  const Ctor = type === 'float32' ? Float32Array : type === 'int32' ? Int32Array : Uint32Array;
  const values = new Ctor(n);
  let pos = 0;
  for (const p of parts as Extract<Column, { values: unknown }>[]) {
    values.set(p.values as never, pos);
    pos += p.length;
  }
  return { type, length: n, values, validity, nullCount } as Column;
}

/** values[i] = fill where row i is null; whole bytes of valid rows (the usual case) are skipped. */
function fillNulls(values: Float32Array | Int32Array | Uint32Array, validity: Uint8Array, n: number, fill: number): void {
  const bytes = (n + 7) >> 3;
  for (let k = 0; k < bytes; k++) {
    const v = validity[k];
    if (v === 0xff) continue;
    const end = Math.min(n, (k + 1) << 3);
    for (let i = k << 3; i < end; i++) if ((v & (1 << (i & 7))) === 0) values[i] = fill;
  }
}

function readAt(fd: number, position: number, length: number, path: string): Uint8Array {
  const out = new Uint8Array(length);
  readInto(fd, position, out, path);
  return out;
}

function readInto(fd: number, position: number, out: Uint8Array, path: string): void {
  let off = 0;
  while (off < out.byteLength) {
    const n = readSync(fd, out, off, out.byteLength - off, position + off);
    if (n === 0) throw scoresError(path, `unexpected end of file at byte ${position + off}`, 'the file is truncated');
    off += n;
  }
}

function readBatchHeader(fd: number, offset: number, metaDataLength: number, size: number, path: string): BatchInfo {
  if (offset < 8 || offset + metaDataLength > size) throw scoresError(path, 'record batch block lies outside the file');
  const head = readAt(fd, offset, Math.min(metaDataLength, size - offset), path);
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.byteLength < 8) throw scoresError(path, 'corrupt record batch header');
  let len = dv.getInt32(0, true);
  let start = 4;
  if (len === -1) {
    len = dv.getInt32(4, true);
    start = 8;
  }
  if (len <= 0 || start + len > head.byteLength) throw scoresError(path, 'corrupt record batch header');
  let rb: ReturnType<typeof parseRecordBatchMessage>;
  try {
    rb = parseRecordBatchMessage(head.subarray(start, start + len));
  } catch (e) {
    throw scoresError(path, `corrupt record batch header: ${errorMessage(e)}`, undefined, e);
  }
  if (rb === null) throw scoresError(path, 'a footer block does not point at a record batch');
  if (rb.compressed) {
    throw scoresError(path, 'compressed Arrow record batches are not supported', 'write score files uncompressed');
  }
  const bodyOffset = offset + metaDataLength;
  if (bodyOffset + rb.bodyLength > size) throw scoresError(path, 'record batch body runs past the end of the file', 'the file is truncated');
  for (let k = 0; k < rb.buffers.length; k += 2) {
    if (rb.buffers[k] < 0 || rb.buffers[k + 1] < 0 || rb.buffers[k] + rb.buffers[k + 1] > rb.bodyLength) {
      throw scoresError(path, 'a record batch buffer lies outside its body', 'the file is corrupt; rescore the shard');
    }
  }
  return { length: rb.length, bodyOffset, nodes: rb.nodes, buffers: rb.buffers };
}

/** Read a whole score file (or the named columns) with its metadata. Errors are E_SCORES naming the file. */
export async function readScoreFile(path: string, opts: ReadOptions = {}): Promise<ScoreFileData> {
  return readScoreFileSync(path, opts);
}

export function readScoreFileSync(path: string, opts: ReadOptions = {}): ScoreFileData {
  const r = ScoreFileReader.open(path, { validate: opts.validate });
  try {
    return { path, length: r.length, metadata: r.metadata, schema: r.schema, columns: r.read(opts.columns) };
  } finally {
    r.close();
  }
}

/**
 * The footer's metadata and schema plus the row count, without reading any column: what a resume check needs
 * (`mimic score` compares META.rows, input size/etag and args hash with the current run).
 */
export async function readScoreMeta(path: string, opts: { validate?: boolean } = {}): Promise<ScoreFileMeta> {
  const r = ScoreFileReader.open(path, { validate: opts.validate });
  try {
    return { path, metadata: r.metadata, schema: r.schema, length: r.length };
  } finally {
    r.close();
  }
}
