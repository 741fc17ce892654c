/**
 * What `mimic filter` writes for the kept rows, each file atomically (temporary name, rename at the end, so
 * a failed run leaves no partial output): DataComp's uid .npy (sorted by an external sort), uid and key text
 * files (one per line, in pool order: checkpoint file order, then row), and the kept rows as an Arrow IPC file
 * or Parquet, streamed in row groups.
 */
import { RecordBatchFileWriter } from 'apache-arrow';
import { AsyncByteQueue } from 'apache-arrow/io/stream';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import { MimicError } from '../errors.js';
import { AtomicFile } from '../atomic-file.js';
import { NumericBuilder, Utf8Builder, utf8At, utf8BytesAt, type Column, type Utf8Column } from '../scores/columns.js';
import type { ColumnSpec, ColumnType } from '../scores/schema.js';
import { columnsToArrow } from '../scores/writer.js';
import { ExternalSorter } from './extsort.js';
import { parseUidRange, writeUidNpy } from './npy.js';

/** hyparquet-writer's schema element type (it bundles its own hyparquet, so take the type from its API). */
type ParquetSchema = ConstructorParameters<typeof ParquetWriter>[0]['schema'];

/** The rows of one shard handed to the exports: identity columns, values, and which rows are kept. */
export interface ExportBatch {
  n: number;
  kept: Uint8Array;
  identity: Partial<Record<'shard' | 'row' | 'key' | 'uid', Column>>;
  values: Record<string, Float32Array>;
}

export interface Exporter {
  /** Identity columns this export reads. */
  readonly needs: readonly ('shard' | 'row' | 'key' | 'uid')[];
  /** Value columns this export reads. */
  readonly needsValues: readonly string[];
  add(b: ExportBatch): void;
  /** Publish the file; returns facts for the summary. */
  finish(): Record<string, unknown>;
  /** Drop everything written so far. */
  abort(): void;
}

const NL = new Uint8Array([10]);

/** uid per line (kept rows with a uid; rows without one are counted, not written). */
export class UidTextExport implements Exporter {
  readonly needs = ['uid'] as const;
  readonly needsValues = [];
  private f: AtomicFile;
  private lines = 0;
  private noUid = 0;

  constructor(readonly path: string) {
    this.f = AtomicFile.open(path);
  }

  add(b: ExportBatch): void {
    const uid = b.identity.uid as Utf8Column;
    for (let i = 0; i < b.n; i++) {
      if (!b.kept[i]) continue;
      if (uid.validity && !(uid.validity[i >> 3] & (1 << (i & 7)))) {
        this.noUid++;
        continue;
      }
      this.f.write(utf8BytesAt(uid, i));
      this.f.write(NL);
      this.lines++;
    }
  }

  finish() {
    this.f.commit();
    return { path: this.path, lines: this.lines, rows_without_uid: this.noUid };
  }

  abort(): void {
    this.f.abort();
  }
}

/** Sample key per line, as in the shards (img2dataset keys are unique across a pool). */
export class KeyTextExport implements Exporter {
  readonly needs = ['key'] as const;
  readonly needsValues = [];
  private f: AtomicFile;
  private lines = 0;

  constructor(readonly path: string) {
    this.f = AtomicFile.open(path);
  }

  add(b: ExportBatch): void {
    const key = b.identity.key as Utf8Column;
    for (let i = 0; i < b.n; i++) {
      if (!b.kept[i]) continue;
      this.f.write(utf8BytesAt(key, i));
      this.f.write(NL);
      this.lines++;
    }
  }

  finish() {
    this.f.commit();
    return { path: this.path, lines: this.lines };
  }

  abort(): void {
    this.f.abort();
  }
}

/** DataComp .npy of the kept rows' uids, sorted through an external sort bounded by `memoryBytes`. */
export class NpyExport implements Exporter {
  readonly needs = ['uid'] as const;
  readonly needsValues = [];
  private sorter: ExternalSorter;
  private noUid = 0;
  private invalid = 0;
  private firstInvalid: string | null = null;
  private words = new Uint32Array(4);

  constructor(readonly path: string, opts: { memoryBytes: number; tmpDir?: string }) {
    this.sorter = new ExternalSorter({ stride: 4, keyWords: 4, memoryBytes: opts.memoryBytes, tmpDir: opts.tmpDir });
  }

  add(b: ExportBatch): void {
    const uid = b.identity.uid as Utf8Column;
    const off = uid.offsets;
    const kept = b.kept;
    for (let i = 0; i < b.n; i++) {
      if (kept[i] === 0) continue;
      if (uid.validity && !(uid.validity[i >> 3] & (1 << (i & 7)))) {
        this.noUid++;
        continue;
      }
      if (!parseUidRange(uid.bytes, off[i], off[i + 1], this.words)) {
        this.invalid++;
        this.firstInvalid ??= utf8At(uid, i);
        continue;
      }
      this.sorter.push(this.words);
    }
  }

  /** Uids already parsed (four words each, as parseUidRange writes them) and the counts of rows without one. */
  addWords(words: Uint32Array, noUid: number, invalid: number, firstInvalid: string | null): void {
    for (let o = 0; o < words.length; o += 4) this.sorter.push(words, o);
    this.noUid += noUid;
    this.invalid += invalid;
    if (invalid > 0) this.firstInvalid ??= firstInvalid;
  }

  finish() {
    try {
      const { uids, duplicates } = writeUidNpy(this.path, this.sorter);
      return {
        path: this.path,
        uids,
        duplicate_uids: duplicates,
        rows_without_uid: this.noUid,
        rows_with_invalid_uid: this.invalid,
        ...(this.firstInvalid !== null ? { first_invalid_uid: this.firstInvalid } : {}),
        sort_run_files: this.sorter.runFiles,
      };
    } finally {
      this.sorter.close();
    }
  }

  abort(): void {
    this.sorter.close();
  }
}

export interface TableColumn {
  name: string;
  type: ColumnType;
  /** identity columns come from the score file; values from the combined score/metadata columns. */
  source: 'identity' | 'value';
  /** For value columns: store as int32 0/1 (true/false columns) instead of float32. */
  boolean?: boolean;
}

/** Kept rows accumulated into column builders and flushed in chunks of `chunkRows`. */
abstract class TableExport implements Exporter {
  readonly needs: ('shard' | 'row' | 'key' | 'uid')[];
  readonly needsValues: string[];
  protected builders = new Map<string, Utf8Builder | NumericBuilder<'float32' | 'int32' | 'uint32'>>();
  protected rows = 0;
  protected pending = 0;

  constructor(readonly path: string, readonly columns: readonly TableColumn[], protected readonly chunkRows = 65536) {
    this.needs = columns.filter((c) => c.source === 'identity').map((c) => c.name as 'shard');
    this.needsValues = columns.filter((c) => c.source === 'value').map((c) => c.name);
    this.resetBuilders();
  }

  protected resetBuilders(): void {
    for (const c of this.columns) this.builders.set(c.name, c.type === 'utf8' ? new Utf8Builder() : new NumericBuilder(c.type));
  }

  add(b: ExportBatch): void {
    for (const c of this.columns) {
      const bld = this.builders.get(c.name)!;
      if (c.source === 'identity') {
        const col = b.identity[c.name as 'shard']!;
        if (col.type === 'utf8') {
          const ub = bld as Utf8Builder;
          for (let i = 0; i < b.n; i++) if (b.kept[i]) ub.append(utf8At(col, i));
        } else {
          const nb = bld as NumericBuilder<'uint32'>;
          for (let i = 0; i < b.n; i++) if (b.kept[i]) nb.append(col.values[i]);
        }
      } else {
        const v = b.values[c.name];
        const nb = bld as NumericBuilder<'float32' | 'int32'>;
        for (let i = 0; i < b.n; i++) {
          if (!b.kept[i]) continue;
          const x = v[i];
          nb.append(x !== x ? null : x);
        }
      }
    }
    let k = 0;
    for (let i = 0; i < b.n; i++) k += b.kept[i];
    this.rows += k;
    this.pending += k;
    if (this.pending >= this.chunkRows) this.flushChunk();
  }

  protected takeColumns(): { length: number; columns: Record<string, Column> } {
    const columns: Record<string, Column> = {};
    for (const [name, b] of this.builders) columns[name] = b.finish();
    const length = this.pending;
    this.pending = 0;
    this.resetBuilders();
    return { length, columns };
  }

  protected abstract flushChunk(): void;
  abstract finish(): Record<string, unknown>;
  abstract abort(): void;
}

/** Arrow's file writer pushes bytes into a queue; this one hands them straight to the output file. */
class FileSink extends AsyncByteQueue {
  constructor(private readonly f: AtomicFile) {
    super();
  }

  override write(value: ArrayBufferView | ArrayBufferLike | Uint8Array): void {
    const bytes = ArrayBuffer.isView(value)
      ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
      : new Uint8Array(value as ArrayBuffer);
    this.f.write(bytes);
  }
}

export class ArrowTableExport extends TableExport {
  private f: AtomicFile;
  private writer = new RecordBatchFileWriter();
  private specs: ColumnSpec[];
  private wroteAny = false;

  constructor(path: string, columns: readonly TableColumn[], private readonly meta: Record<string, string> = {}, chunkRows?: number) {
    super(path, columns, chunkRows);
    this.specs = columns.map((c) => ({ name: c.name, type: c.type, nullable: true }));
    this.f = AtomicFile.open(path);
    this.writer.reset(new FileSink(this.f) as never);
  }

  protected flushChunk(): void {
    const { length, columns } = this.takeColumns();
    if (length === 0 && this.wroteAny) return;
    const table = columnsToArrow(this.specs, columns, length, this.meta);
    this.writer.write(table.batches[0]);
    this.wroteAny = true;
  }

  finish() {
    if (this.pending > 0 || !this.wroteAny) this.flushChunk();
    this.writer.close();
    this.f.commit();
    return { path: this.path, rows: this.rows, format: 'arrow' };
  }

  abort(): void {
    this.f.abort();
  }
}

/** hyparquet-writer's ByteWriter, emptied into the output file after each row group instead of growing. */
class FileByteWriter extends ByteWriter {
  constructor(private readonly f: AtomicFile) {
    super(1 << 20);
  }

  flush(): void {
    if (this.index > 0) {
      this.f.write(new Uint8Array(this.buffer, 0, this.index));
      this.index = 0;
    }
  }

  override ensure(size: number): void {
    if (this.index > 1 << 20) this.flush();
    super.ensure(size);
  }

  override finish(): void {
    this.flush();
  }
}

export class ParquetTableExport extends TableExport {
  private f: AtomicFile;
  private pq: ParquetWriter;

  constructor(path: string, columns: readonly TableColumn[], meta: Record<string, string> = {}, chunkRows?: number) {
    super(path, columns, chunkRows);
    this.f = AtomicFile.open(path);
    const schema: ParquetSchema = [{ name: 'root', num_children: columns.length }];
    for (const c of columns) {
      const required = c.name === 'shard' || c.name === 'row' || c.name === 'key';
      const rep = required ? 'REQUIRED' : 'OPTIONAL';
      if (c.type === 'utf8') schema.push({ name: c.name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: rep });
      else if (c.type === 'uint32') schema.push({ name: c.name, type: 'INT32', converted_type: 'UINT_32', repetition_type: rep });
      else if (c.type === 'int32') schema.push({ name: c.name, type: 'INT32', repetition_type: rep });
      else schema.push({ name: c.name, type: 'FLOAT', repetition_type: rep });
    }
    this.pq = new ParquetWriter({
      writer: new FileByteWriter(this.f),
      schema,
      kvMetadata: Object.entries(meta).map(([key, value]) => ({ key, value })),
      createdBy: 'grad-mimic',
    });
  }

  protected flushChunk(): void {
    const { length, columns } = this.takeColumns();
    if (length === 0) return;
    const columnData = this.columns.map((c) => {
      const col = columns[c.name];
      let data: unknown[];
      if (col.type === 'utf8') data = Array.from({ length }, (_, i) => utf8At(col, i));
      else {
        const v = col.values;
        const valid = col.validity;
        data = Array.from({ length }, (_, i) => (valid && !(valid[i >> 3] & (1 << (i & 7))) ? null : v[i]));
      }
      return { name: c.name, data: data as never };
    });
    const r = this.pq.write({ columnData, rowGroupSize: length });
    if (r) throw new MimicError('E_IO', 'parquet writer went asynchronous unexpectedly', { file: this.path });
  }

  finish() {
    if (this.pending > 0) this.flushChunk();
    this.pq.finish();
    this.f.commit();
    return { path: this.path, rows: this.rows, format: 'parquet' };
  }

  abort(): void {
    this.f.abort();
  }
}

/** The table export for a path: Parquet for .parquet, Arrow IPC file otherwise (.arrow, .feather). */
export function tableExportFor(path: string, columns: readonly TableColumn[], meta: Record<string, string> = {}): Exporter {
  return /\.parquet$/i.test(path) ? new ParquetTableExport(path, columns, meta) : new ArrowTableExport(path, columns, meta);
}
