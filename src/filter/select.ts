/**
 * `mimic filter`: select rows of a scored pool by rules, exactly, in memory that does not grow with the pool.
 *
 * Passes over the score files (each reads only the columns it needs):
 *   A. counts per column of the high 16 bits of each value's order key, for every column a percentile or a
 *      top()/bottom() rule refers to (order-stats.ts);
 *   B. counts of the low 16 bits inside the buckets holding the wanted ranks → exact order statistics;
 *   T. only when a top()/bottom() boundary value is shared by more rows than it may keep: the tied rows'
 *      (uid, shard, row) keys go through an external sort to find where the cut falls;
 *   F. rules evaluated per row; counts, overlaps and the exports of the kept rows.
 * A and B are skipped when no rule needs an order statistic, T when no tie needs breaking.
 *
 * Semantics: every percentile and rank is taken over the pool's ok rows (ok in every checkpoint) whose value of
 * that column is present, after aggregation and normalisation, before any rule applies. A row is kept when it is
 * ok, satisfies every --keep rule and no --drop rule. A comparison with a missing value (NaN) is false.
 */
import { MimicError } from '../errors.js';
import { META, FLOAT_COLUMNS } from '../scores/schema.js';
import { utf8At, utf8BytesAt, type Uint32Column, type Utf8Column } from '../scores/columns.js';
import { writeFileAtomicSync } from '../scores/atomic-file.js';
import { Pool, type IdentityColumn, type PoolOptions, type UnitData } from './pool.js';
import { ColumnCatalog, type ClipScoreSource } from './catalog.js';
import { collectNeeds, formatRule, parseRule, type Expr, type Operand } from './expr.js';
import { HighHistogram, LowHistogram, linearPercentile, percentileRanks, type RankedValue } from './order-stats.js';
import { ExternalSorter } from './extsort.js';
import { compareRecords } from './radix.js';
import { parseUidBytes } from './npy.js';
import { NpyExport, KeyTextExport, UidTextExport, tableExportFor, type Exporter, type TableColumn } from './exports.js';
import type { SideColumns } from './side.js';
import { andInto, andNotInto, cmpEq, cmpGe, cmpGt, cmpLe, cmpLt, cmpNe, countAnd, countAnd3, countOnes, countPresent, orInto } from './masks.js';
import { DEFAULTS } from '../defaults.js';

export interface FilterOptions extends PoolOptions {
  keep?: readonly string[];
  drop?: readonly string[];
  /** Keep the n rows with the largest `by` (ties broken by uid, shard, row): same as --keep "top(by, n)". */
  topK?: { n: number; by: string };
  clipScore?: ClipScoreSource;
  /** DataComp columns (metadata parquet / caption filters), built by the caller. */
  side?: SideColumns | null;
  /** Add DataComp's basic filter / text-based filter as keep rules (needs `side` with those columns). */
  basicFilter?: boolean;
  textFilter?: boolean;
  npy?: string;
  uids?: string;
  keys?: string;
  table?: string;
  summary?: string;
  /** Folder for external-sort runs (default: the OS temp folder). */
  tmpDir?: string;
  /** Memory for each external sort, bytes. */
  sortMemoryBytes?: number;
  onProgress?: (p: FilterProgress) => void;
}

export interface FilterProgress {
  pass: 'histogram' | 'refine' | 'ties' | 'select';
  unit: number;
  units: number;
  rows: number;
}

interface Rule {
  kind: 'keep' | 'drop';
  text: string;
  expr: Expr;
}

interface PercentilePlan {
  column: string;
  q: number;
  n: number;
  lo: number;
  hi: number;
  value: number;
  /** Rows whose value equals the percentile exactly. */
  at_value: number;
}

interface RankPlan {
  expr: Extract<Expr, { kind: 'rank' }>;
  /** Values present (ok rows, not NaN). */
  n: number;
  /** Rows the rule keeps. */
  count: number;
  mode: 'none' | 'all' | 'boundary';
  boundary: number;
  /** Rows strictly beyond the boundary (above for top, below for bottom), all kept. */
  beyond: number;
  tied: number;
  keptFromTies: number;
  /** (uid, shard, row) key of the last tied row kept, when only some tied rows are kept. */
  cut: Uint32Array | null;
}

/** Tie keys: [no-uid flag, uid (4 words, most significant first), shard rank, row]. */
const TIE_STRIDE = 7;

export interface FilterSummary {
  format: 'mimic-filter-summary/1';
  inputs: Record<string, unknown>;
  rows: { pool: number; ok: number; excluded_by_status: Record<string, number>; status_mismatch_between_checkpoints: number };
  columns: Record<string, { values: number; missing_in_ok_rows: number }>;
  percentiles: { column: string; percentile: string; value: number; values: number; at_value: number }[];
  ranks: Record<string, unknown>[];
  rules: { kind: 'keep' | 'drop'; rule: string; parsed: string; matched: number }[];
  overlaps: { rules: [number, number]; both: number }[];
  kept: number;
  exports: Record<string, unknown>;
  side?: Record<string, unknown>;
  passes: string[];
  pass_seconds: Record<string, number>;
  seconds: number;
}

function fmtPct(q: number): string {
  return `p${q}`;
}

export async function runFilter(opts: FilterOptions): Promise<FilterSummary> {
  const t0 = Date.now();
  const pool = Pool.open(opts);
  const side = opts.side ?? null;
  const clipScore: ClipScoreSource = opts.clipScore ?? (side?.columns.has('clip_l14') ? 'l14' : 'ref');
  const catalog = new ColumnCatalog(side?.columns, clipScore);

  // Rules.
  const rules: Rule[] = [];
  for (const text of opts.keep ?? []) rules.push({ kind: 'keep', text, expr: parseRule(text, catalog) });
  for (const text of opts.drop ?? []) rules.push({ kind: 'drop', text, expr: parseRule(text, catalog) });
  if (opts.topK) {
    const { n, by } = opts.topK;
    if (!Number.isInteger(n) || n < 0) throw new MimicError('E_USAGE', `--top-k must be a whole number ≥ 0, got ${n}`);
    const text = `top(${by}, ${n})`;
    rules.push({ kind: 'keep', text, expr: parseRule(text, catalog) });
  }
  const needSide = (col: string, flag: string) => {
    if (!side?.columns.has(col)) {
      throw new MimicError('E_USAGE', `${flag} needs DataComp captions: pass --shards (the scored shards) or --metadata (DataComp parquet)`);
    }
  };
  if (opts.basicFilter) {
    needSide('basic', '--basic-filter');
    rules.push({ kind: 'keep', text: 'basic', expr: parseRule('basic', catalog) });
  }
  if (opts.textFilter) {
    needSide('text_match', '--text-filter');
    rules.push({ kind: 'keep', text: 'text_match', expr: parseRule('text_match', catalog) });
  }

  const needs = { percentiles: [] as { column: string; q: number }[], ranks: [] as Extract<Expr, { kind: 'rank' }>[], columns: new Set<string>() };
  for (const r of rules) collectNeeds(r.expr, needs);
  const statColumns = [...new Set([...needs.percentiles.map((p) => p.column), ...needs.ranks.map((r) => r.column)])];
  const scoreCols = (cols: Iterable<string>) => [...cols].filter((c) => catalog.isScoreColumn(c));
  const sideCols = (cols: Iterable<string>) => [...cols].filter((c) => !catalog.isScoreColumn(c));
  const passes: string[] = [];
  // Seconds per pass, for the summary (where the time goes at pool scale).
  const passSeconds: Record<string, number> = {};
  let passStart = Date.now();
  const startPass = (name: string) => {
    const now = Date.now();
    if (passes.length) passSeconds[passes[passes.length - 1]] = (now - passStart) / 1000;
    passStart = now;
    passes.push(name);
  };
  const U = pool.units.length;
  const progress = (pass: FilterProgress['pass'], unit: number, rows: number) => opts.onProgress?.({ pass, unit, units: U, rows });

  // Histogram passes may skip the status column when every column they read is a score column (see
  // UnitRequest.trustNulls); the final pass then checks that failed rows indeed had no scores.
  const trustNulls = statColumns.every((c) => catalog.isScoreColumn(c));
  const readValues = (u: number, cols: string[], identity: IdentityColumn[], statuses = false, trust = false): UnitData => {
    const d = pool.readUnit(u, { scores: scoreCols(cols), identity, statuses, trustNulls: trust });
    const sc = sideCols(cols);
    if (sc.length) {
      const sv = side!.readUnit(u, d.n);
      for (const c of sc) {
        const v = sv[c];
        // Side columns are known per row, but a row that is not ok never counts.
        for (let i = 0; i < d.n; i++) if (!d.ok[i]) v[i] = NaN;
        d.values[c] = v;
      }
    }
    return d;
  };

  // Pass A: high histograms (and the shard name of each unit, for tie-breaking).
  const high = new Map<string, HighHistogram>();
  const shardNames: string[] = [];
  let poolRows = 0;
  if (statColumns.length) {
    startPass('histogram');
    for (const c of statColumns) high.set(c, new HighHistogram());
    const wantShard = needs.ranks.length > 0;
    let rows = 0;
    for (let u = 0; u < U; u++) {
      const d = readValues(u, statColumns, [], false, trustNulls);
      for (const c of statColumns) high.get(c)!.add(d.values[c], trustNulls ? null : d.ok);
      if (wantShard) shardNames.push(d.metadata[META.shard] ?? unitShardFromColumn(pool, u));
      rows += d.n;
      progress('histogram', u, rows);
    }
    poolRows = rows;
    for (const c of statColumns) {
      if (high.get(c)!.n === 0) throw noValuesError(c, catalog);
    }
  }

  // Ranks to refine: per column, the set of 0-based ranks whose exact values are needed.
  const wanted = new Map<string, Set<number>>();
  const want = (c: string, r: number) => {
    if (!wanted.has(c)) wanted.set(c, new Set());
    wanted.get(c)!.add(r);
  };
  const pctPlans: PercentilePlan[] = [];
  for (const p of needs.percentiles) {
    const n = high.get(p.column)!.n;
    const { lo, hi } = percentileRanks(p.q, n);
    want(p.column, lo);
    want(p.column, hi);
    pctPlans.push({ column: p.column, q: p.q, n, lo, hi, value: NaN, at_value: 0 });
  }
  const rankPlans: RankPlan[] = [];
  for (const e of needs.ranks) {
    const n = high.get(e.column)!.n;
    const count = e.percent ? Math.min(n, Math.floor((e.count * n) / 100)) : Math.min(n, e.count);
    const plan: RankPlan = { expr: e, n, count, mode: 'boundary', boundary: NaN, beyond: 0, tied: 0, keptFromTies: 0, cut: null };
    if (count === 0) plan.mode = 'none';
    else if (count === n) plan.mode = 'all';
    else want(e.column, e.dir === 'top' ? n - count : count - 1);
    rankPlans.push(plan);
  }

  // Pass B: low histograms of the wanted buckets.
  const lowOf = new Map<string, Map<number, LowHistogram>>();
  const rankedAt = new Map<string, Map<number, RankedValue>>();
  if (wanted.size) {
    startPass('refine');
    for (const [c, ranks] of wanted) {
      const m = new Map<number, LowHistogram>();
      for (const r of ranks) {
        const { bucket, below } = high.get(c)!.locate(r);
        if (!m.has(bucket)) m.set(bucket, new LowHistogram(bucket, below));
      }
      lowOf.set(c, m);
    }
    const cols = [...wanted.keys()];
    let rows = 0;
    for (let u = 0; u < U; u++) {
      const d = readValues(u, cols, [], false, trustNulls);
      for (const c of cols) for (const lh of lowOf.get(c)!.values()) lh.add(d.values[c], trustNulls ? null : d.ok);
      rows += d.n;
      progress('refine', u, rows);
    }
    for (const [c, ranks] of wanted) {
      const m = new Map<number, RankedValue>();
      const hh = high.get(c)!;
      for (const r of ranks) m.set(r, lowOf.get(c)!.get(hh.locate(r).bucket)!.at(r));
      rankedAt.set(c, m);
    }
  }
  const at = (c: string, r: number) => rankedAt.get(c)!.get(r)!;
  for (const p of pctPlans) {
    p.value = linearPercentile(p.q, p.n, (r) => at(p.column, r).value);
    const a = at(p.column, p.lo);
    const b = at(p.column, p.hi);
    p.at_value = p.value === a.value ? a.equal : p.value === b.value ? b.equal : 0;
  }
  const pctValue = new Map(pctPlans.map((p) => [`${p.column}\u0000${p.q}`, p.value]));
  for (const plan of rankPlans) {
    if (plan.mode !== 'boundary') continue;
    const e = plan.expr;
    const rv = at(e.column, e.dir === 'top' ? plan.n - plan.count : plan.count - 1);
    plan.boundary = rv.value;
    plan.tied = rv.equal;
    plan.beyond = e.dir === 'top' ? plan.n - rv.less - rv.equal : rv.less;
    plan.keptFromTies = plan.count - plan.beyond;
  }

  // Pass T: where only some of the rows tied at a boundary are kept, find the (uid, shard, row) cut.
  const partial = rankPlans.filter((p) => p.mode === 'boundary' && p.keptFromTies < p.tied);
  const shardRank = new Uint32Array(U);
  if (partial.length) {
    startPass('ties');
    const order = Array.from({ length: U }, (_, u) => u);
    order.sort((a, b) => (shardNames[a] < shardNames[b] ? -1 : shardNames[a] > shardNames[b] ? 1 : a - b));
    order.forEach((u, r) => (shardRank[u] = r));
    const sorters = partial.map(() => new ExternalSorter({ stride: TIE_STRIDE, keyWords: TIE_STRIDE, memoryBytes: opts.sortMemoryBytes ?? DEFAULTS.filter.sortMemoryBytes, tmpDir: opts.tmpDir }));
    try {
      const cols = [...new Set(partial.map((p) => p.expr.column))];
      const rec = new Uint32Array(TIE_STRIDE);
      let rows = 0;
      for (let u = 0; u < U; u++) {
        const d = readValues(u, cols, ['uid', 'row']);
        partial.forEach((p, k) => {
          const v = d.values[p.expr.column];
          for (let i = 0; i < d.n; i++) {
            if (!d.ok[i] || v[i] !== p.boundary) continue;
            tieKey(d, i, shardRank[u], rec);
            sorters[k].push(rec);
          }
        });
        rows += d.n;
        progress('ties', u, rows);
      }
      partial.forEach((p, k) => {
        let seen = 0;
        for (const chunk of sorters[k].sorted()) {
          const recs = chunk.length / TIE_STRIDE;
          if (seen + recs >= p.keptFromTies) {
            const j = p.keptFromTies - 1 - seen;
            p.cut = chunk.slice(j * TIE_STRIDE, (j + 1) * TIE_STRIDE);
            break;
          }
          seen += recs;
        }
        if (p.cut === null) throw new Error(`tie pass found fewer tied rows than counted for ${formatRule(p.expr)}`);
      });
    } finally {
      for (const s of sorters) s.close();
    }
  }
  const rankPlanOf = new Map(rankPlans.map((p) => [p.expr, p]));

  // Pass F: evaluate, count, export.
  startPass('select');
  const sortMemory = opts.sortMemoryBytes ?? DEFAULTS.filter.sortMemoryBytes;
  const exporters: { name: string; ex: Exporter }[] = [];
  const tableColumns: TableColumn[] = [
    { name: 'shard', type: 'utf8', source: 'identity' },
    { name: 'row', type: 'uint32', source: 'identity' },
    { name: 'key', type: 'utf8', source: 'identity' },
    { name: 'uid', type: 'utf8', source: 'identity' },
    ...FLOAT_COLUMNS.map((c) => ({ name: c, type: 'float32' as const, source: 'value' as const })),
    ...[...(side?.columns ?? new Map())].map(([c, k]) => ({ name: c, type: k === 'boolean' ? ('int32' as const) : ('float32' as const), source: 'value' as const, boolean: k === 'boolean' })),
  ];
  try {
    if (opts.npy) exporters.push({ name: 'npy', ex: new NpyExport(opts.npy, { memoryBytes: sortMemory, tmpDir: opts.tmpDir }) });
    if (opts.uids) exporters.push({ name: 'uids', ex: new UidTextExport(opts.uids) });
    if (opts.keys) exporters.push({ name: 'keys', ex: new KeyTextExport(opts.keys) });
    if (opts.table) {
      const meta = { 'mimic.filter.rules': JSON.stringify(rules.map((r) => ({ kind: r.kind, rule: r.text }))), 'mimic.filter.aggregate': pool.aggregate };
      exporters.push({ name: 'table', ex: tableExportFor(opts.table, tableColumns, meta) });
    }
  } catch (e) {
    for (const { ex } of exporters) ex.abort();
    throw e;
  }

  const finalCols = new Set<string>(needs.columns);
  for (const { ex } of exporters) for (const c of ex.needsValues) finalCols.add(c);
  const identity = new Set<IdentityColumn>();
  for (const { ex } of exporters) for (const c of ex.needs) identity.add(c);
  if (partial.length) {
    identity.add('uid');
    identity.add('row');
  }
  const R = rules.length;
  const isKeep = Uint8Array.from(rules, (r) => (r.kind === 'keep' ? 1 : 0));
  const matched = new Float64Array(R);
  const overlap = new Float64Array(R * R);
  const present = new Map<string, number>([...needs.columns].map((c) => [c, 0]));
  const excluded = new Map<string, number>();
  let okRows = 0;
  let mismatch = 0;
  let kept = 0;
  let rows = 0;
  const rec = new Uint32Array(TIE_STRIDE);
  try {
    for (let u = 0; u < U; u++) {
      const d = readValues(u, [...finalCols], [...identity], true);
      const n = d.n;
      rows += n;
      okRows += d.okCount;
      mismatch += d.statusMismatch ?? 0;
      for (const [s, c] of d.statusCounts ?? []) excluded.set(s, (excluded.get(s) ?? 0) + c);
      for (const c of needs.columns) present.set(c, present.get(c)! + countPresent(d.values[c], d.ok));
      const ctx: EvalCtx = {
        d,
        pct: (column, q) => pctValue.get(`${column}\u0000${q}`)!,
        rank: (e) => rankPlanOf.get(e)!,
        tieKeep: (plan, i) => {
          tieKey(d, i, shardRank[u], rec);
          return compareRecords(rec, 0, plan.cut!, 0, TIE_STRIDE, TIE_STRIDE) <= 0;
        },
      };
      // Bookkeeping as whole-array loops (one small function each): faster than one loop doing it all.
      const masks = rules.map((r) => evaluate(r.expr, ctx));
      const ok = d.ok;
      const keepMask = ok.slice();
      for (let r = 0; r < R; r++) {
        const m = masks[r];
        matched[r] += countAnd(m, ok);
        if (isKeep[r]) andInto(keepMask, m);
        else andNotInto(keepMask, m);
        for (let t = r + 1; t < R; t++) overlap[r * R + t] += countAnd3(m, masks[t], ok);
      }
      kept += countOnes(keepMask);
      for (const { ex } of exporters) ex.add({ n, kept: keepMask, identity: d.identity, values: d.values });
      progress('select', u, rows);
    }
    for (const [c, h] of high) {
      if (present.get(c) !== h.n) {
        throw new MimicError('E_SCORES', `column ${c}: ${h.n} values in the histogram pass but ${present.get(c)} among ok rows in the final pass`, {
          hint: trustNulls
            ? 'some rows whose status is not ok carry scores, which score files must not (DESIGN §6), or the files changed during the filter'
            : 'the score files changed during the filter',
        });
      }
    }
    for (const [c, k] of present) if (k === 0 && okRows > 0) throw noValuesError(c, catalog);
  } catch (e) {
    for (const { ex } of exporters) ex.abort();
    throw e;
  }
  const exportFacts: Record<string, unknown> = {};
  for (let k = 0; k < exporters.length; k++) {
    try {
      exportFacts[exporters[k].name] = exporters[k].ex.finish();
    } catch (e) {
      for (const { ex } of exporters.slice(k + 1)) ex.abort();
      throw e;
    }
  }
  passSeconds.select = (Date.now() - passStart) / 1000;
  if (poolRows && poolRows !== rows) throw new MimicError('E_SCORES', `the score files changed during the filter (${poolRows} rows, then ${rows})`, { hint: 'do not filter a run that `mimic score` is still writing' });

  const summary: FilterSummary = {
    format: 'mimic-filter-summary/1',
    inputs: {
      checkpoints: pool.checkpoints.map((c) => ({ name: c.name, dir: c.dir, files: c.files.length })),
      aggregate: pool.aggregate,
      tau: pool.tau,
      normalize: pool.normalize,
      clip_score: catalog.aliasMap().clip_score,
      aliases: catalog.aliasMap(),
    },
    rows: {
      pool: rows,
      ok: okRows,
      excluded_by_status: Object.fromEntries([...excluded].sort()),
      status_mismatch_between_checkpoints: mismatch,
    },
    columns: Object.fromEntries([...present].map(([c, k]) => [c, { values: k, missing_in_ok_rows: okRows - k }])),
    percentiles: pctPlans.map((p) => ({ column: p.column, percentile: fmtPct(p.q), value: p.value, values: p.n, at_value: p.at_value })),
    ranks: rankPlans.map((p) => ({
      rule: formatRule(p.expr),
      column: p.expr.column,
      values: p.n,
      count: p.count,
      ...(p.mode === 'boundary'
        ? {
            boundary_value: p.boundary,
            [p.expr.dir === 'top' ? 'above_boundary' : 'below_boundary']: p.beyond,
            tied_at_boundary: p.tied,
            kept_from_ties: p.keptFromTies,
            tie_break: p.keptFromTies < p.tied ? 'ascending (uid, shard, row)' : 'none needed',
          }
        : { boundary_value: null, note: p.mode === 'all' ? 'keeps every row with a value' : 'keeps nothing' }),
    })),
    rules: rules.map((r, k) => ({ kind: r.kind, rule: r.text, parsed: formatRule(r.expr), matched: matched[k] })),
    overlaps: [],
    kept,
    exports: exportFacts,
    ...(side ? { side: side.summary() } : {}),
    passes,
    pass_seconds: passSeconds,
    seconds: (Date.now() - t0) / 1000,
  };
  for (let r = 0; r < R; r++) for (let s = r + 1; s < R; s++) summary.overlaps.push({ rules: [r, s], both: overlap[r * R + s] });
  if (opts.summary) writeFileAtomicSync(opts.summary, JSON.stringify(summary, null, 2) + '\n');
  return summary;
}

function noValuesError(column: string, catalog: ColumnCatalog): MimicError {
  const hint = column === 'ref_clip_sim'
    ? 'score with `mimic score --reference-clip-score`, or give DataComp metadata (--metadata) and --clip-score l14'
    : catalog.isScoreColumn(column) ? 'the score files hold no value of it for ok rows' : 'the DataComp inputs gave no value for the pool rows';
  return new MimicError('E_FILTER', `column ${column} has no values among the pool's ok rows`, { hint });
}

function unitShardFromColumn(pool: Pool, u: number): string {
  const d = pool.readUnit(u, { scores: [], identity: ['shard'] });
  return d.n > 0 ? (utf8At(d.identity.shard as Utf8Column, 0) ?? pool.units[u]) : pool.units[u];
}

function tieKey(d: UnitData, i: number, shardRank: number, out: Uint32Array): void {
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

interface EvalCtx {
  d: UnitData;
  pct(column: string, q: number): number;
  rank(e: Extract<Expr, { kind: 'rank' }>): RankPlan;
  tieKeep(plan: RankPlan, i: number): boolean;
}

/** A rule over one unit's rows: 1 where it holds (rows that are not ok are masked by the caller). */
export function evaluate(e: Expr, ctx: EvalCtx): Uint8Array {
  const n = ctx.d.n;
  const out = new Uint8Array(n);
  switch (e.kind) {
    case 'cmp': {
      const colOf = (o: Operand) => (o.kind === 'col' ? o.column : null);
      const other = colOf(e.left) ?? colOf(e.right)!;
      const side = (o: Operand): Float32Array | number =>
        o.kind === 'col' ? ctx.d.values[o.column] : o.kind === 'num' ? o.value : ctx.pct(other, o.q);
      compare(side(e.left), e.op, side(e.right), out);
      return out;
    }
    case 'bool': {
      const v = ctx.d.values[e.column];
      for (let i = 0; i < n; i++) out[i] = v[i] === 1 ? 1 : 0;
      return out;
    }
    case 'rank': {
      const plan = ctx.rank(e);
      const v = ctx.d.values[e.column];
      if (plan.mode === 'none') return out;
      if (plan.mode === 'all') {
        for (let i = 0; i < n; i++) out[i] = v[i] === v[i] ? 1 : 0;
        return out;
      }
      const b = plan.boundary;
      const some = plan.keptFromTies < plan.tied;
      for (let i = 0; i < n; i++) {
        const x = v[i];
        if (e.dir === 'top' ? x > b : x < b) out[i] = 1;
        else if (x === b) out[i] = !some || ctx.tieKeep(plan, i) ? 1 : 0;
      }
      return out;
    }
    case 'not': {
      const a = evaluate(e.arg, ctx);
      for (let i = 0; i < n; i++) out[i] = a[i] ^ 1;
      return out;
    }
    case 'and': {
      out.fill(1);
      for (const a of e.args) andInto(out, evaluate(a, ctx));
      return out;
    }
    case 'or': {
      for (const a of e.args) orInto(out, evaluate(a, ctx));
      return out;
    }
  }
}

function compare(a: Float32Array | number, op: string, b: Float32Array | number, out: Uint8Array): void {
  const n = out.length;
  const A = typeof a === 'number' ? null : a;
  const B = typeof b === 'number' ? null : b;
  const as = typeof a === 'number' ? a : 0;
  const bs = typeof b === 'number' ? b : 0;
  // The common "column op constant" shape runs once per row of the pool: one small loop per operator.
  if (A && !B) {
    switch (op) {
      case '>=': return cmpGe(A, bs, out);
      case '>': return cmpGt(A, bs, out);
      case '<=': return cmpLe(A, bs, out);
      case '<': return cmpLt(A, bs, out);
      case '==': return cmpEq(A, bs, out);
      case '!=': return cmpNe(A, bs, out);
    }
  }
  if (B && !A) {
    // constant op column: mirror it
    switch (op) {
      case '>=': return cmpLe(B, as, out);
      case '>': return cmpLt(B, as, out);
      case '<=': return cmpGe(B, as, out);
      case '<': return cmpGt(B, as, out);
      case '==': return cmpEq(B, as, out);
      case '!=': return cmpNe(B, as, out);
    }
  }
  for (let i = 0; i < n; i++) {
    const x = A ? A[i] : as;
    const y = B ? B[i] : bs;
    let r: boolean;
    switch (op) {
      case '>=': r = x >= y; break;
      case '>': r = x > y; break;
      case '<=': r = x <= y; break;
      case '<': r = x < y; break;
      case '==': r = x === y; break;
      default: r = x === x && y === y && x !== y;
    }
    out[i] = r ? 1 : 0;
  }
}

