/**
 * Score files (DESIGN §6): one Arrow IPC *file* per shard and checkpoint, the fixed columns of schema.ts, score
 * columns null when a row's status is not `ok`, and the run's facts in the schema metadata (the footer), where a
 * resume check can read them without touching the rows.
 */
import { Field, Float32, Int32, Schema, Struct, Table, RecordBatch, Uint32, Utf8, makeData, tableToIPC } from 'apache-arrow';
import type { DataType } from 'apache-arrow';
import { MimicError } from '../errors.js';
import { writeFileAtomicSync } from '../atomic-file.js';
import { NumericBuilder, Utf8Builder, type Column } from './columns.js';
import { FLOAT_COLUMNS, META, SCORE_COLUMNS, SCORE_FORMAT, type ColumnSpec, type ColumnType } from './schema.js';

export type FloatColumnName = (typeof FLOAT_COLUMNS)[number];

/** One row as the scorer produces it; float columns left out (or null) are written as null. */
export interface ScoreRow {
  shard: string;
  row: number;
  key: string;
  uid: string | null;
  status: string;
  error?: string | null;
  batch?: number | null;
  batch_size?: number | null;
  [score: string]: string | number | null | undefined;
}

/**
 * Many rows at once, as typed arrays (the fast path). Strings may be one value for every row. A float column
 * left out or null is all null; rows whose status is not `ok` get nulls in every float column and in
 * `batch`/`batch_size` whatever the arrays hold.
 */
export interface ScoreColumnsInput {
  shard: string | readonly string[];
  row: ArrayLike<number>;
  key: readonly string[];
  uid: readonly (string | null)[] | null;
  status: string | readonly string[];
  error?: readonly (string | null)[] | null;
  batch?: ArrayLike<number> | null;
  batch_size?: ArrayLike<number> | null;
  [score: string]: string | ArrayLike<number> | readonly (string | null)[] | null | undefined;
}

/** The builder's result: every column of SCORE_COLUMNS, plain typed arrays. */
export class ScoreTable {
  constructor(readonly length: number, readonly columns: Readonly<Record<string, Column>>) {}

  /** An Arrow table with the fixed schema and `meta` as schema metadata (no copy of the buffers). */
  toArrow(meta: Record<string, string> = {}): Table {
    return columnsToArrow(SCORE_COLUMNS, this.columns, this.length, meta);
  }
}

type AnyBuilder = Utf8Builder | NumericBuilder<'float32' | 'int32' | 'uint32'>;

export class ScoreTableBuilder {
  private readonly builders = new Map<string, AnyBuilder>();
  private n = 0;

  constructor() {
    for (const c of SCORE_COLUMNS) {
      this.builders.set(c.name, c.type === 'utf8' ? new Utf8Builder() : new NumericBuilder(c.type));
    }
  }

  get length(): number {
    return this.n;
  }

  private utf8(name: string): Utf8Builder {
    return this.builders.get(name) as Utf8Builder;
  }

  private num(name: string): NumericBuilder<'float32' | 'int32' | 'uint32'> {
    return this.builders.get(name) as NumericBuilder<'float32' | 'int32' | 'uint32'>;
  }

  addRow(r: ScoreRow): void {
    if (!Number.isInteger(r.row) || r.row < 0 || r.row > 0xffffffff) {
      throw new MimicError('E_SCORES', `row index ${r.row} of shard ${r.shard} is not a uint32`);
    }
    const ok = r.status === 'ok';
    this.utf8('shard').append(r.shard);
    this.num('row').append(r.row);
    this.utf8('key').append(r.key);
    this.utf8('uid').append(r.uid);
    this.utf8('status').append(r.status);
    this.utf8('error').append(ok ? null : (r.error ?? null));
    this.num('batch').append(ok ? (r.batch ?? null) : null);
    this.num('batch_size').append(ok ? (r.batch_size ?? null) : null);
    for (const name of FLOAT_COLUMNS) {
      const v = r[name];
      if (v !== undefined && v !== null && typeof v !== 'number') {
        throw new MimicError('E_SCORES', `score column ${name} of ${r.shard} row ${r.row} is not a number`);
      }
      this.num(name).append(ok ? (v ?? null) : null);
    }
    this.n++;
  }

  /** Append n rows from typed arrays (see ScoreColumnsInput). */
  addColumns(n: number, c: ScoreColumnsInput): void {
    const status = c.status;
    const okAt: (k: number) => boolean = typeof status === 'string' ? () => status === 'ok' : (k) => status[k] === 'ok';
    const appendStrings = (name: string, v: string | readonly (string | null)[] | null | undefined) => {
      const b = this.utf8(name);
      if (v === null || v === undefined) b.appendRepeated(null, n);
      else if (typeof v === 'string') b.appendRepeated(v, n);
      else {
        if (v.length < n) throw new MimicError('E_SCORES', `column ${name} has ${v.length} values for ${n} rows`);
        for (let k = 0; k < n; k++) b.append(v[k]);
      }
    };
    for (let k = 0; k < n; k++) {
      const r = c.row[k];
      if (!Number.isInteger(r) || r < 0 || r > 0xffffffff) {
        throw new MimicError('E_SCORES', `row index ${r} is not a uint32`);
      }
    }
    appendStrings('shard', c.shard);
    this.num('row').appendArray(c.row, n);
    appendStrings('key', c.key);
    appendStrings('uid', c.uid);
    appendStrings('status', c.status);
    const err = c.error;
    if (err === null || err === undefined) this.utf8('error').appendRepeated(null, n);
    else for (let k = 0; k < n; k++) this.utf8('error').append(okAt(k) ? null : err[k]);
    const allOk = typeof status === 'string' ? status === 'ok' : status.every((s) => s === 'ok');
    const validIfOk = allOk ? undefined : okAt;
    for (const name of ['batch', 'batch_size', ...FLOAT_COLUMNS]) {
      const v = c[name] as ArrayLike<number> | null | undefined;
      if (v === null || v === undefined) {
        this.num(name).appendArray(new Float32Array(0), n, () => false);
      } else {
        if (v.length < n) throw new MimicError('E_SCORES', `column ${name} has ${v.length} values for ${n} rows`);
        this.num(name).appendArray(v, n, validIfOk);
      }
    }
    this.n += n;
  }

  finish(): ScoreTable {
    const columns: Record<string, Column> = {};
    for (const [name, b] of this.builders) columns[name] = b.finish();
    return new ScoreTable(this.n, columns);
  }
}

function arrowType(t: ColumnType): DataType {
  switch (t) {
    case 'utf8':
      return new Utf8();
    case 'float32':
      return new Float32();
    case 'int32':
      return new Int32();
    case 'uint32':
      return new Uint32();
  }
}

/** Arrow Data for one plain column, sharing its buffers. */
export function columnToArrowData(col: Column, type: DataType = arrowType(col.type)) {
  const nullBitmap = col.validity ?? undefined;
  if (col.type === 'utf8') {
    return makeData({
      type: type as Utf8,
      length: col.length,
      nullCount: col.nullCount,
      nullBitmap,
      valueOffsets: col.offsets,
      data: col.bytes,
    });
  }
  return makeData({ type: type as Float32, length: col.length, nullCount: col.nullCount, nullBitmap, data: col.values as Float32Array });
}

/** An Arrow table (one record batch) from plain columns in the order of `specs`. */
export function columnsToArrow(
  specs: readonly ColumnSpec[],
  columns: Readonly<Record<string, Column>>,
  length: number,
  meta: Record<string, string> = {},
): Table {
  const fields: Field[] = [];
  const children = [];
  for (const s of specs) {
    const col = columns[s.name];
    if (!col) throw new MimicError('E_SCORES', `column ${s.name} is missing`);
    if (col.type !== s.type) throw new MimicError('E_SCORES', `column ${s.name} is ${col.type}, expected ${s.type}`);
    if (col.length !== length) throw new MimicError('E_SCORES', `column ${s.name} has ${col.length} rows, expected ${length}`);
    const type = arrowType(s.type);
    fields.push(new Field(s.name, type, s.nullable));
    children.push(columnToArrowData(col, type));
  }
  const schema = new Schema(fields, new Map(Object.entries(meta)));
  const data = makeData({ type: new Struct(fields), length, nullCount: 0, children });
  return new Table(schema, new RecordBatch(schema, data));
}

/** The metadata a score file carries: the caller's keys plus the format and row count, which are always set. */
function fullMeta(rows: number, meta: Record<string, string>): Record<string, string> {
  for (const [k, v] of Object.entries(meta)) {
    if (typeof v !== 'string') throw new MimicError('E_SCORES', `metadata ${k} must be a string, got ${typeof v}`);
  }
  return { ...meta, [META.format]: SCORE_FORMAT, [META.rows]: String(rows) };
}

/** The bytes of a score file (Arrow IPC file format). */
export function encodeScoreFile(table: ScoreTable, meta: Record<string, string>): Uint8Array {
  return tableToIPC(table.toArrow(fullMeta(table.length, meta)), 'file');
}

/**
 * Write a score file atomically: `path.tmp-<pid>-<random>` in the same folder, fsync, rename. Parent folders
 * are created. On any failure the temporary file is removed and `path` is untouched.
 */
export async function writeScoreFile(path: string, table: ScoreTable, meta: Record<string, string>): Promise<void> {
  writeFileAtomicSync(path, encodeScoreFile(table, meta));
}
