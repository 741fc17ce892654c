/**
 * The per-file work of the filter's passes (select.ts), written so that it runs the same in the main thread
 * or in worker threads (pass-runner.ts): a PassExecutor is given a plan (plain data), then tasks — runs of
 * consecutive units — and answers each task with a result (plain data and typed arrays), and the pass's
 * accumulated state (histogram counts) at its end. Counts merge by addition, and the main thread consumes task
 * results in unit order, so what the filter computes and writes does not depend on how many threads ran it.
 */
import { MimicError } from '../errors.js';
import { META } from '../scores/schema.js';
import { ReadArena } from '../scores/reader.js';
import { utf8At, utf8BytesAt, type Column, type Uint32Column, type Utf8Column } from '../scores/columns.js';
import { readPoolUnit, type IdentityColumn, type PoolSpec, type UnitData } from './pool.js';
import { sideStoreReader, type SideStoreRef } from './side-store.js';
import type { SideColumns } from './side.js';
import { collectNeeds, type Expr } from './expr.js';
import { HighHistogram, LowHistogram, WindowHistogram } from './order-stats.js';
import { evaluateBits, simpleComparisons, type RankCut, type SimpleComparison } from './rule-bits.js';
import { andBits, andNotBits, compareAndPresentBits, countAnd3Bits, countAndBits, countBits, presentBits, setRows } from './bits.js';
import { compareRecords } from './radix.js';
import { parseUidBytes, parseUidRange } from './npy.js';

/** What every executor needs: the pool and, when given, the DataComp side columns. */
export interface PassInit {
  pool: PoolSpec;
  side: SideStoreRef | null;
}

/** Score columns read through the pool; the others come from the side columns. */
export interface ColumnSplit {
  score: string[];
  side: string[];
}

export interface HistogramPlan {
  kind: 'histogram';
  columns: ColumnSplit;
  trustNulls: boolean;
  wantShard: boolean;
  /** Per column (in columns order, score then side): high buckets [lo, lo + width) whose low bits to count. */
  windows: ({ lo: number; width: number } | null)[];
}

export interface RefinePlan {
  kind: 'refine';
  columns: ColumnSplit;
  trustNulls: boolean;
  /** (column, high bucket) pairs whose low bits to count. */
  buckets: { column: string; bucket: number }[];
}

export interface TiesPlan {
  kind: 'ties';
  columns: ColumnSplit;
  /** Per partially kept rank rule: its column and boundary value. */
  plans: { column: string; boundary: number }[];
}

export interface SelectPlan {
  kind: 'select';
  columns: ColumnSplit;
  identity: IdentityColumn[];
  rules: { kind: 'keep' | 'drop'; expr: Expr }[];
  /** [column, q, value] of every percentile the rules use. */
  percentiles: [string, number, number][];
  /** Rank rules in collectNeeds order: how each cuts, and the tie-break cut key where only some ties are kept. */
  ranks: (RankCut & { cut: Uint32Array | null })[];
  /** Columns whose present values among ok rows are counted. */
  countColumns: string[];
  /** Kept rows' uids parsed for the DataComp .npy. */
  npy: boolean;
  /** Kept rows' columns handed to the other exports (uid/key text, table), or null. */
  subset: { identity: IdentityColumn[]; values: string[] } | null;
}

export type PassPlan = HistogramPlan | RefinePlan | TiesPlan | SelectPlan;

export interface UnitTask {
  u: number;
  path: string;
  /** Rank of the unit's shard name among all units (tie-break order); ties and select passes only. */
  shardRank: number;
}

export interface Task {
  index: number;
  units: UnitTask[];
}

export interface HistogramResult {
  rows: number;
  /** Shard name of each unit of the task (wantShard). */
  shardNames: string[];
}

export interface TiesResult {
  rows: number;
  /** Per plan: the tied rows' keys, TIE_STRIDE words each. */
  records: Uint32Array[];
}

/** The kept rows of one unit, ready for the exporters. */
export interface UnitExport {
  npy: { words: Uint32Array; noUid: number; invalid: number; firstInvalid: string | null } | null;
  subset: { n: number; identity: Partial<Record<IdentityColumn, Column>>; values: Record<string, Float32Array> } | null;
}

export interface SelectResult {
  rows: number;
  okRows: number;
  mismatch: number;
  statusCounts: [string, number][];
  /** Per countColumns entry. */
  present: number[];
  matched: number[];
  /** R × R, upper triangle. */
  overlap: number[];
  kept: number;
  units: UnitExport[];
}

export type TaskResult = HistogramResult | { rows: number } | TiesResult | SelectResult;

export interface HistogramEnd {
  columns: { counts: Float64Array; n: number; nan: number; window: Uint32Array | null; windowExact: boolean }[];
}

export interface RefineEnd {
  counts: Float64Array[];
}

export type PassEnd = HistogramEnd | RefineEnd | null;

/** Tie keys: [no-uid flag, uid (4 words, most significant first), shard rank, row]. */
export const TIE_STRIDE = 7;

export function allColumns(c: ColumnSplit): string[] {
  return [...c.score, ...c.side];
}

export class PassExecutor {
  private readonly side: SideColumns | null;
  private plan: PassPlan | null = null;
  private high: HighHistogram[] = [];
  private windows: (WindowHistogram | null)[] = [];
  private lows: LowHistogram[] = [];
  private rankOf = new Map<Expr, number>();
  private pct = new Map<string, number>();
  /** Per counted column, a comparison of it with a constant to compute in the same loop, if any. */
  private fused = new Map<string, SimpleComparison>();
  private readonly arena = new ReadArena();

  constructor(private readonly init: PassInit, side?: SideColumns | null) {
    this.side = side !== undefined ? side : init.side ? sideStoreReader(init.side) : null;
  }

  begin(plan: PassPlan): void {
    this.plan = plan;
    if (plan.kind === 'histogram') {
      const cols = allColumns(plan.columns);
      this.high = cols.map(() => new HighHistogram());
      this.windows = cols.map((_, k) => (plan.windows[k] ? new WindowHistogram(plan.windows[k]!.lo, plan.windows[k]!.width) : null));
    } else if (plan.kind === 'refine') {
      this.lows = plan.buckets.map((b) => new LowHistogram(b.bucket, 0));
    } else if (plan.kind === 'select') {
      const ranks: Extract<Expr, { kind: 'rank' }>[] = [];
      for (const r of plan.rules) collectNeeds(r.expr, { percentiles: [], ranks, columns: new Set() });
      this.rankOf = new Map(ranks.map((e, k) => [e, k]));
      this.pct = new Map(plan.percentiles.map(([c, q, v]) => [`${c}\u0000${q}`, v]));
      this.fused = simpleComparisons(plan.rules.map((r) => r.expr));
    }
  }

  run(task: Task): TaskResult {
    const plan = this.plan;
    if (plan === null) throw new Error('no pass begun');
    switch (plan.kind) {
      case 'histogram':
        return this.histogram(plan, task);
      case 'refine':
        return this.refine(plan, task);
      case 'ties':
        return this.ties(plan, task);
      case 'select':
        return this.select(plan, task);
    }
  }

  end(): PassEnd {
    const plan = this.plan;
    this.plan = null;
    if (plan?.kind === 'histogram') {
      const out = { columns: this.high.map((h, k) => ({ counts: h.counts, n: h.n, nan: h.nan, window: this.windows[k]?.counts ?? null, windowExact: this.windows[k]?.exact ?? false })) };
      this.high = [];
      this.windows = [];
      return out;
    }
    if (plan?.kind === 'refine') {
      const out = { counts: this.lows.map((l) => l.counts) };
      this.lows = [];
      return out;
    }
    return null;
  }

  /** A unit's ok rows and the columns (the sample the main thread reads before the passes). */
  readUnit(t: UnitTask, columns: ColumnSplit, trustNulls: boolean): UnitData {
    return this.read(t, columns, [], false, trustNulls);
  }

  /** Unit u's rows: ok mask, the score columns through the pool, side columns (NaN where a row is not ok). */
  private read(t: UnitTask, columns: ColumnSplit, identity: IdentityColumn[], statuses: boolean, trustNulls: boolean): UnitData {
    // A unit's columns live until the next unit is read (results copy what they keep).
    this.arena.reset();
    const d = readPoolUnit(this.init.pool, t.u, t.path, { scores: columns.score, identity, statuses, trustNulls }, this.arena);
    if (columns.side.length) {
      if (this.side === null) throw new Error('side columns asked for without a side store');
      const sv = this.side.readUnit(t.u, d.n);
      for (const c of columns.side) {
        const v = sv[c];
        // Side columns are known per row, but a row that is not ok never counts.
        for (let i = 0; i < d.n; i++) if (!d.ok[i]) v[i] = NaN;
        d.values[c] = v;
      }
    }
    return d;
  }

  private histogram(plan: HistogramPlan, task: Task): HistogramResult {
    const cols = allColumns(plan.columns);
    const shardNames: string[] = [];
    let rows = 0;
    for (const t of task.units) {
      const d = this.read(t, plan.columns, [], false, plan.trustNulls);
      const mask = plan.trustNulls ? null : d.ok;
      cols.forEach((c, k) => this.high[k].add(d.values[c], mask, this.windows[k] ?? undefined));
      if (plan.wantShard) shardNames.push(d.metadata[META.shard] ?? this.shardFromColumn(t));
      rows += d.n;
    }
    return { rows, shardNames };
  }

  private shardFromColumn(t: UnitTask): string {
    const d = readPoolUnit(this.init.pool, t.u, t.path, { scores: [], identity: ['shard'] });
    return d.n > 0 ? (utf8At(d.identity.shard as Utf8Column, 0) ?? t.path) : t.path;
  }

  private refine(plan: RefinePlan, task: Task): { rows: number } {
    let rows = 0;
    for (const t of task.units) {
      const d = this.read(t, plan.columns, [], false, plan.trustNulls);
      const mask = plan.trustNulls ? null : d.ok;
      plan.buckets.forEach((b, k) => this.lows[k].add(d.values[b.column], mask));
      rows += d.n;
    }
    return { rows };
  }

  private ties(plan: TiesPlan, task: Task): TiesResult {
    const parts: number[][] = plan.plans.map(() => []);
    const rec = new Uint32Array(TIE_STRIDE);
    let rows = 0;
    for (const t of task.units) {
      const d = this.read(t, plan.columns, ['uid', 'row'], false, false);
      plan.plans.forEach((p, k) => {
        const v = d.values[p.column];
        for (let i = 0; i < d.n; i++) {
          if (!d.ok[i] || v[i] !== p.boundary) continue;
          tieKey(d, i, t.shardRank, rec);
          for (let w = 0; w < TIE_STRIDE; w++) parts[k].push(rec[w]);
        }
      });
      rows += d.n;
    }
    return { rows, records: parts.map((p) => Uint32Array.from(p)) };
  }

  private select(plan: SelectPlan, task: Task): SelectResult {
    const R = plan.rules.length;
    const res: SelectResult = {
      rows: 0, okRows: 0, mismatch: 0, statusCounts: [], present: plan.countColumns.map(() => 0),
      matched: new Array<number>(R).fill(0), overlap: new Array<number>(R * R).fill(0), kept: 0, units: [],
    };
    const statusCounts = new Map<string, number>();
    const rec = new Uint32Array(TIE_STRIDE);
    for (const t of task.units) {
      const d = this.read(t, plan.columns, plan.identity, true, false);
      const n = d.n;
      res.rows += n;
      res.okRows += d.okCount;
      res.mismatch += d.statusMismatch ?? 0;
      for (const [s, c] of d.statusCounts ?? []) statusCounts.set(s, (statusCounts.get(s) ?? 0) + c);
      const ok = d.okBits;
      const scratch = new Int32Array(ok.length);
      const pct = (column: string, q: number) => this.pct.get(`${column}\u0000${q}`)!;
      const known = new Map<Expr, Int32Array>();
      plan.countColumns.forEach((c, k) => {
        const f = this.fused.get(c);
        if (f) {
          const bits = new Int32Array(ok.length);
          const t = f.constant.kind === 'num' ? f.constant.value : f.constant.kind === 'pct' ? pct(c, f.constant.q) : NaN;
          compareAndPresentBits(d.values[c], f.op, t, bits, scratch);
          known.set(f.expr, bits);
        } else presentBits(d.values[c], scratch);
        res.present[k] += countAndBits(scratch, ok);
      });
      const masks = plan.rules.map((r) =>
        evaluateBits(r.expr, {
          n,
          values: d.values,
          known,
          pct,
          rank: (e) => plan.ranks[this.rankOf.get(e)!],
          tieKeep: (e, i) => {
            tieKey(d, i, t.shardRank, rec);
            return compareRecords(rec, 0, plan.ranks[this.rankOf.get(e)!].cut!, 0, TIE_STRIDE, TIE_STRIDE) <= 0;
          },
        }),
      );
      const keep = ok.slice();
      for (let r = 0; r < R; r++) {
        const m = masks[r];
        res.matched[r] += countAndBits(m, ok);
        if (plan.rules[r].kind === 'keep') andBits(keep, m);
        else andNotBits(keep, m);
        for (let s = r + 1; s < R; s++) res.overlap[r * R + s] += countAnd3Bits(m, masks[s], ok);
      }
      const k = countBits(keep);
      res.kept += k;
      if (plan.npy || plan.subset) {
        const rows = setRows(keep);
        res.units.push({
          npy: plan.npy ? npyWords(d.identity.uid as Utf8Column, rows) : null,
          subset: plan.subset ? subsetRows(d, rows, plan.subset) : null,
        });
      }
    }
    res.statusCounts = [...statusCounts];
    return res;
  }
}

/** The kept rows' uids as DataComp's (f0, f1) words; rows without a usable uid are counted. */
function npyWords(uid: Utf8Column, rows: Uint32Array): NonNullable<UnitExport['npy']> {
  const words = new Uint32Array(4 * rows.length);
  const off = uid.offsets;
  const valid = uid.validity;
  let m = 0;
  let noUid = 0;
  let invalid = 0;
  let firstInvalid: string | null = null;
  for (let j = 0; j < rows.length; j++) {
    const i = rows[j];
    if (valid !== null && (valid[i >> 3] & (1 << (i & 7))) === 0) {
      noUid++;
      continue;
    }
    if (!parseUidRange(uid.bytes, off[i], off[i + 1], words, 4 * m)) {
      invalid++;
      firstInvalid ??= utf8At(uid, i);
      continue;
    }
    m++;
  }
  return { words: m === rows.length ? words : words.slice(0, 4 * m), noUid, invalid, firstInvalid };
}

/** The listed rows of a unit's identity and value columns, as compact columns of their own. */
function subsetRows(d: UnitData, rows: Uint32Array, want: { identity: IdentityColumn[]; values: string[] }): NonNullable<UnitExport['subset']> {
  const identity: Partial<Record<IdentityColumn, Column>> = {};
  for (const id of want.identity) {
    const col = d.identity[id];
    if (col === undefined) throw new Error(`identity column ${id} was not read`);
    identity[id] = col.type === 'utf8' ? subsetUtf8(col, rows) : subsetUint32(col as Uint32Column, rows);
  }
  const values: Record<string, Float32Array> = {};
  for (const c of want.values) {
    const v = d.values[c];
    const out = new Float32Array(rows.length);
    for (let j = 0; j < rows.length; j++) out[j] = v[rows[j]];
    values[c] = out;
  }
  return { n: rows.length, identity, values };
}

function subsetValidity(validity: Uint8Array | null, rows: Uint32Array): { validity: Uint8Array | null; nullCount: number } {
  if (validity === null) return { validity: null, nullCount: 0 };
  const out = new Uint8Array((rows.length + 7) >> 3);
  let nulls = 0;
  for (let j = 0; j < rows.length; j++) {
    const i = rows[j];
    if (validity[i >> 3] & (1 << (i & 7))) out[j >> 3] |= 1 << (j & 7);
    else nulls++;
  }
  return nulls === 0 ? { validity: null, nullCount: 0 } : { validity: out, nullCount: nulls };
}

function subsetUtf8(col: Utf8Column, rows: Uint32Array): Utf8Column {
  const off = col.offsets;
  let total = 0;
  for (let j = 0; j < rows.length; j++) total += off[rows[j] + 1] - off[rows[j]];
  const bytes = new Uint8Array(total);
  const offsets = new Int32Array(rows.length + 1);
  let pos = 0;
  for (let j = 0; j < rows.length; j++) {
    const i = rows[j];
    bytes.set(col.bytes.subarray(off[i], off[i + 1]), pos);
    pos += off[i + 1] - off[i];
    offsets[j + 1] = pos;
  }
  return { type: 'utf8', length: rows.length, offsets, bytes, ...subsetValidity(col.validity, rows) };
}

function subsetUint32(col: Uint32Column, rows: Uint32Array): Uint32Column {
  const values = new Uint32Array(rows.length);
  for (let j = 0; j < rows.length; j++) values[j] = col.values[rows[j]];
  return { type: 'uint32', length: rows.length, values, ...subsetValidity(col.validity, rows) };
}

export function tieKey(d: UnitData, i: number, shardRank: number, out: Uint32Array): void {
  const uid = d.identity.uid as Utf8Column;
  const valid = uid.validity === null || (uid.validity[i >> 3] & (1 << (i & 7))) !== 0;
  if (valid && parseUidBytes(utf8BytesAt(uid, i), out, 1)) out[0] = 0;
  else {
    // No usable uid: after every uid, ordered by shard and row.
    out[0] = 1;
    out[1] = out[2] = out[3] = out[4] = 0;
  }
  out[5] = shardRank;
  out[6] = (d.identity.row as Uint32Column).values[i];
}

/** The typed arrays' buffers in a task result or pass end, for a transfer list (each once). */
export function transferables(x: unknown, out = new Set<ArrayBuffer>()): ArrayBuffer[] {
  const visit = (v: unknown) => {
    if (v === null || typeof v !== 'object') return;
    if (ArrayBuffer.isView(v)) {
      if (v.buffer instanceof ArrayBuffer) out.add(v.buffer);
      return;
    }
    if (Array.isArray(v)) for (const e of v) visit(e);
    else for (const e of Object.values(v as Record<string, unknown>)) visit(e);
  };
  visit(x);
  return [...out];
}

/** A worker thread's error as plain data, and back. */
export interface ErrorData {
  mimic: boolean;
  code?: string;
  message: string;
  hint?: string;
  file?: string;
  stack?: string;
}

export function errorData(e: unknown): ErrorData {
  if (e instanceof MimicError) return { mimic: true, code: e.code, message: e.message, hint: e.hint, file: e.file, stack: e.stack };
  const err = e instanceof Error ? e : new Error(String(e));
  return { mimic: false, message: err.message, stack: err.stack };
}

export function reviveError(d: ErrorData): Error {
  if (d.mimic) return new MimicError(d.code as never, d.message, { hint: d.hint, file: d.file });
  const e = new Error(d.message);
  if (d.stack) e.stack = d.stack;
  return e;
}
