/**
 * Per-unit storage of columns computed outside the score files (DataComp metadata, caption filters): one small
 * binary file per unit in a temporary folder, each column n float32 values in a fixed order, so every filter
 * pass reads them like a score column and memory holds one unit at a time.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MimicError, errorMessage } from '../errors.js';
import type { ColumnKind } from './catalog.js';
import type { SideColumns } from './side.js';
import { releaseTemp, trackTemp } from '../atomic-file.js';

export class SideStore implements SideColumns {
  readonly columns: ReadonlyMap<string, ColumnKind>;
  private readonly order: string[];
  private dir: string | null;
  private facts: Record<string, unknown> = {};

  constructor(columns: ReadonlyMap<string, ColumnKind>, opts: { tmpDir?: string } = {}) {
    this.columns = columns;
    this.order = [...columns.keys()];
    const root = opts.tmpDir ?? tmpdir();
    try {
      this.dir = mkdtempSync(join(root, 'mimic-side-'));
      trackTemp(this.dir);
    } catch (e) {
      throw new MimicError('E_IO', `cannot create a temporary folder in ${root}: ${errorMessage(e)}`, { file: root, hint: 'set --tmp-dir to a writable folder' });
    }
  }

  /** Store unit u's columns (each of length n; a column left out is all unknown). */
  put(u: number, n: number, values: Record<string, Float32Array>): void {
    const all = new Float32Array(n * this.order.length).fill(NaN);
    this.order.forEach((c, k) => {
      const v = values[c];
      if (v) all.set(v.subarray(0, n), k * n);
    });
    writeFileSync(join(this.dir!, `${u}.bin`), new Uint8Array(all.buffer));
  }

  readUnit(u: number, n: number): Record<string, Float32Array> {
    return readSideUnit(this.dir!, this.order, u, n);
  }

  /** Where the columns are, as plain data: worker threads read them through sideStoreReader(ref). */
  ref(): SideStoreRef {
    return { dir: this.dir!, columns: [...this.columns] };
  }

  setSummary(facts: Record<string, unknown>): void {
    this.facts = facts;
  }

  summary(): Record<string, unknown> {
    return this.facts;
  }

  close(): void {
    if (this.dir !== null) {
      rmSync(this.dir, { recursive: true, force: true });
      releaseTemp(this.dir);
      this.dir = null;
    }
  }
}

export interface SideStoreRef {
  dir: string;
  columns: [string, ColumnKind][];
}

/** Read access to a SideStore from another thread (which neither writes nor removes it). */
export function sideStoreReader(ref: SideStoreRef): SideColumns {
  const order = ref.columns.map(([c]) => c);
  return {
    columns: new Map(ref.columns),
    readUnit: (u, n) => readSideUnit(ref.dir, order, u, n),
    summary: () => ({}),
    close: () => undefined,
  };
}

function readSideUnit(dir: string, order: readonly string[], u: number, n: number): Record<string, Float32Array> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(dir, `${u}.bin`));
  } catch {
    const out: Record<string, Float32Array> = {};
    for (const c of order) out[c] = new Float32Array(n).fill(NaN);
    return out;
  }
  if (bytes.byteLength !== n * order.length * 4) throw new Error(`side columns of unit ${u} have the wrong size`);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const out: Record<string, Float32Array> = {};
  order.forEach((c, k) => (out[c] = all.subarray(k * n, (k + 1) * n)));
  return out;
}
