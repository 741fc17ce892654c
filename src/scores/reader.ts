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
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { Message } from 'apache-arrow/ipc/metadata/message';
import { Precision, Type, type Field, type Schema } from 'apache-arrow';
import { MimicError, errorMessage } from '../errors.js';
import type { Column } from './columns.js';
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

const MAGIC = Buffer.from('ARROW1');

function scoresError(path: string, message: string, hint?: string, cause?: unknown): MimicError {
  return new MimicError('E_SCORES', message, { file: path, hint, cause });
}

function columnTypeOf(f: Field): ColumnType | 'other' {
  const t = f.type as { typeId: Type; precision?: Precision; bitWidth?: number; isSigned?: boolean };
  if (t.typeId === Type.Utf8) return 'utf8';
  if (t.typeId === Type.Float && t.precision === Precision.SINGLE) return 'float32';
  if (t.typeId === Type.Int && t.bitWidth === 32) return t.isSigned ? 'int32' : 'uint32';
  return 'other';
}

/** Buffers a flat field occupies in a record batch body (validity, [offsets], data). */
function bufferCount(f: Field, path: string): number {
  const id = (f.type as { typeId: Type }).typeId;
  switch (id) {
    case Type.Utf8:
    case Type.Binary:
      return 3;
    case Type.Int:
    case Type.Float:
    case Type.Bool:
    case Type.Date:
    case Type.Time:
    case Type.Timestamp:
    case Type.Interval:
    case Type.Duration:
    case Type.Decimal:
    case Type.FixedSizeBinary:
      return 2;
    default:
      throw scoresError(path, `column ${f.name} has a nested or unsupported Arrow type (${String(f.type)})`,
        'score files hold flat utf8/int/float columns only');
  }
}

interface BatchInfo {
  length: number;
  bodyOffset: number;
  nodes: { length: number; nullCount: number }[];
  buffers: { offset: number; length: number }[];
}

/** An open score file whose footer and batch headers are parsed; columns are read on demand. */
export class ScoreFileReader {
  readonly path: string;
  readonly metadata: Record<string, string>;
  readonly schema: { name: string; type: ColumnType | 'other' }[];
  readonly length: number;
  private readonly fields: Field[];
  private readonly firstBuffer: number[];
  private readonly batches: BatchInfo[];
  private fd: number | null;

  private constructor(path: string, fd: number, arrowSchema: Schema, batches: BatchInfo[]) {
    this.path = path;
    this.fd = fd;
    this.fields = arrowSchema.fields;
    this.metadata = Object.fromEntries(arrowSchema.metadata);
    this.schema = this.fields.map((f) => ({ name: f.name, type: columnTypeOf(f) }));
    this.batches = batches;
    this.length = batches.reduce((s, b) => s + b.length, 0);
    let b = 0;
    this.firstBuffer = this.fields.map((f) => {
      const first = b;
      b += bufferCount(f, path);
      return first;
    });
  }

  /** Open and parse the footer; with `headersOnly` false (default) also the record batch headers. */
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
      const tail = readAt(fd, size - 10, 10, path);
      if (!Buffer.from(tail.buffer, tail.byteOffset + 4, 6).equals(MAGIC)) {
        throw scoresError(path, 'not an Arrow IPC file (no ARROW1 trailer)',
          'the file is truncated, still being written, or an Arrow *stream* rather than a file');
      }
      const footerLength = new DataView(tail.buffer, tail.byteOffset).getInt32(0, true);
      if (footerLength <= 0 || footerLength > size - 16) throw scoresError(path, `corrupt Arrow footer length ${footerLength}`);
      let footer: Footer;
      try {
        footer = Footer.decode(readAt(fd, size - 10 - footerLength, footerLength, path));
      } catch (e) {
        throw scoresError(path, `corrupt Arrow footer: ${errorMessage(e)}`, undefined, e);
      }
      const batches: BatchInfo[] = [];
      for (const block of footer.recordBatches()) {
        batches.push(readBatchHeader(fd, block.offset, block.metaDataLength, size, path));
      }
      const r = new ScoreFileReader(path, fd, footer.schema, batches);
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
    return this.schema.some((c) => c.name === name);
  }

  /** Read the named columns (all readable ones by default). */
  read(names?: readonly string[]): Record<string, Column> {
    const wanted = names ?? this.schema.filter((c) => c.type !== 'other').map((c) => c.name);
    const out: Record<string, Column> = {};
    for (const name of wanted) {
      const idx = this.fields.findIndex((f) => f.name === name);
      if (idx < 0) throw scoresError(this.path, `column ${name} is not in the file`);
      const type = this.schema[idx].type;
      if (type === 'other') throw scoresError(this.path, `column ${name} has a type the score reader does not read`);
      out[name] = this.batches.length === 1 ? this.readColumn(0, idx, type) : this.readConcatenated(idx, type);
    }
    return out;
  }

  private readColumn(bi: number, fieldIndex: number, type: ColumnType): Column {
    const batch = this.batches[bi];
    const node = batch.nodes[fieldIndex];
    const first = this.firstBuffer[fieldIndex];
    const nBuf = type === 'utf8' ? 3 : 2;
    const regions = batch.buffers.slice(first, first + nBuf);
    if (regions.length !== nBuf) throw scoresError(this.path, `record batch ${bi} lists too few buffers`);
    // One allocation for the column's buffers, each at an 8-byte-aligned offset so typed arrays can view it.
    const starts: number[] = [];
    let total = 0;
    for (const r of regions) {
      starts.push(total);
      total += (r.length + 7) & ~7;
    }
    const mem = new ArrayBuffer(Math.max(total, 8));
    for (let k = 0; k < nBuf; k++) {
      const r = regions[k];
      if (r.length > 0) readInto(this.fd!, batch.bodyOffset + r.offset, new Uint8Array(mem, starts[k], r.length), this.path);
    }
    const n = node.length;
    const validity = node.nullCount > 0 && regions[0].length > 0 ? new Uint8Array(mem, starts[0], (n + 7) >> 3) : null;
    if (node.nullCount > 0 && validity === null) throw scoresError(this.path, `column ${this.fields[fieldIndex].name} has nulls but no validity buffer`);
    if (type === 'utf8') {
      if (regions[1].length < (n + 1) * 4) throw scoresError(this.path, `column ${this.fields[fieldIndex].name}: offsets buffer too short`);
      const offsets = new Int32Array(mem, starts[1], n + 1);
      const bytes = new Uint8Array(mem, starts[2], regions[2].length);
      if (offsets[n] > bytes.length || offsets[0] < 0) throw scoresError(this.path, `column ${this.fields[fieldIndex].name}: offsets out of range`);
      return { type, length: n, offsets, bytes, validity, nullCount: node.nullCount };
    }
    if (regions[1].length < n * 4) throw scoresError(this.path, `column ${this.fields[fieldIndex].name}: data buffer too short`);
    if (type === 'float32') {
      const values = new Float32Array(mem, starts[1], n);
      if (validity) fillNulls(values, validity, n, NaN);
      return { type, length: n, values, validity, nullCount: node.nullCount };
    }
    const values = type === 'int32' ? new Int32Array(mem, starts[1], n) : new Uint32Array(mem, starts[1], n);
    if (validity) fillNulls(values, validity, n, 0);
    return { type, length: n, values, validity, nullCount: node.nullCount } as Column;
  }

  private readConcatenated(fieldIndex: number, type: ColumnType): Column {
    const parts = this.batches.map((_, bi) => this.readColumn(bi, fieldIndex, type));
    const n = this.length;
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

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
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
  const dv = new DataView(head.buffer);
  let len = dv.getInt32(0, true);
  let start = 4;
  if (len === -1) {
    len = dv.getInt32(4, true);
    start = 8;
  }
  if (len <= 0 || start + len > head.byteLength) throw scoresError(path, 'corrupt record batch header');
  let msg: Message;
  try {
    msg = Message.decode(head.subarray(start, start + len));
  } catch (e) {
    throw scoresError(path, `corrupt record batch header: ${errorMessage(e)}`, undefined, e);
  }
  if (!msg.isRecordBatch()) throw scoresError(path, 'a footer block does not point at a record batch');
  const rb = msg.header();
  if (rb.compression !== null) {
    throw scoresError(path, 'compressed Arrow record batches are not supported', 'write score files uncompressed');
  }
  const bodyOffset = offset + metaDataLength;
  if (bodyOffset + msg.bodyLength > size) throw scoresError(path, 'record batch body runs past the end of the file', 'the file is truncated');
  return {
    length: rb.length,
    bodyOffset,
    nodes: rb.nodes.map((n) => ({ length: n.length, nullCount: n.nullCount })),
    buffers: rb.buffers.map((b) => ({ offset: b.offset, length: b.length })),
  };
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
