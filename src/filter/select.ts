/**
 * `mimic filter`: select rows of a scored pool by rules, exactly, in memory that does not grow with the pool.
 *
 * Passes over the score files (each reads only the columns it needs), run by worker threads (pass-runner.ts,
 * passes.ts) that each take runs of consecutive files; results are merged by addition or consumed in file
 * order, so the outcome and the files written do not depend on the number of threads:
 *   S. a sample of files guesses, for each wanted order statistic, a few high buckets where it lies;
 *   A. counts per column of the high 16 bits of each value's order key, for every column a percentile or a
 *      top()/bottom() rule refers to, and the low 16 bits of keys in the guessed buckets (order-stats.ts);
 *   B. only for a wanted rank the guess missed: counts of the low 16 bits in its bucket → exact order statistics;
 *   T. only when a top()/bottom() boundary value is shared by more rows than it may keep: the tied rows'
 *      (uid, shard, row) keys go through an external sort to find where the cut falls;
 *   F. rules evaluated per row as bitmaps; counts, overlaps and the exports of the kept rows.
 * S, A and B are skipped when no rule needs an order statistic, T when no tie needs breaking.
 *
 * Semantics: every percentile and rank is taken over the pool's ok rows (ok in every checkpoint) whose value of
 * that column is present, after aggregation and normalisation, before any rule applies. A row is kept when it is
 * ok, satisfies every --keep rule and no --drop rule. A comparison with a missing value (NaN) is false.
 *
 * Memory: per thread one task's files (DEFAULTS.filter.taskRows rows) and 512 KiB of counts per histogram
 * column (plus windowBuckets × 512 KiB when a window is counted); in the main thread the merged counts, at most
 * tasksInFlight tasks' results per thread, and each external sort's budget (sortMemoryBytes).
 */
import { availableParallelism } from 'node:os';
import { MimicError } from '../errors.js';
import { FLOAT_COLUMNS } from '../scores/schema.js';
import { writeFileAtomicSync } from '../atomic-file.js';
import { Pool, type IdentityColumn, type PoolOptions } from './pool.js';
import { ColumnCatalog, type ClipScoreSource } from './catalog.js';
import { collectNeeds, formatRule, parseRule, type Expr } from './expr.js';
import { HighHistogram, LowHistogram, MergedWindow, linearPercentile, percentileRanks, type RankedValue } from './order-stats.js';
import { ExternalSorter } from './extsort.js';
import { NpyExport, KeyTextExport, UidTextExport, tableExportFor, type Exporter, type TableColumn } from './exports.js';
import type { SideColumns } from './side.js';
import { SideStore } from './side-store.js';
import { PassExecutor, TIE_STRIDE, allColumns, type ColumnSplit, type HistogramEnd, type HistogramResult, type PassInit, type RefineEnd, type SelectResult, type Task, type TiesResult, type UnitTask } from './passes.js';
import { PassRunner } from './pass-runner.js';
import { DEFAULTS } from '../defaults.js';

export interface FilterOptions extends PoolOptions {
  keep?: readonly string[];
  drop?: readonly string[];
  /** Keep the n rows with the largest `by` (ties broken by uid, shard, row): same as --keep "top(by, n)". */
  topK?: { n: number; by: string };
  clipScore?: ClipScoreSource;
  /** DataComp columns (metadata parquet / caption filters), built by the caller. */
  side?: SideColumns | null;
  /** The runs already opened with these options (the caller built `side` from it); else they are opened here. */
  pool?: Pool;
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
  /** Threads reading the score files (default DEFAULTS.filter.workers: one per available core); 1 = this thread. */
  workers?: number;
  /** Files sampled to guess where percentiles lie (default DEFAULTS.filter.sampleFiles); 0 turns the guess off. */
  sampleFiles?: number;
  /** Rows per task handed to a thread (default DEFAULTS.filter.taskRows); whole files, at least one per task. */
  taskRows?: number;
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

/** Percentile ranks as fractions of the values, for the sample's guess: q/100, top/bottom percent. */
interface RankTarget {
  column: string;
  fraction: number;
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
  /** Threads that read the score files. */
  workers: number;
  seconds: number;
}

function fmtPct(q: number): string {
  return `p${q}`;
}

function noValuesError(column: string, catalog: ColumnCatalog): MimicError {
  const hint = column === 'ref_clip_sim'
    ? 'score with `mimic score --reference-clip-score`, or give DataComp metadata (--metadata) and --clip-score l14'
    : catalog.isScoreColumn(column) ? 'the score files hold no value of it for ok rows' : 'the DataComp inputs gave no value for the pool rows';
  return new MimicError('E_FILTER', `column ${column} has no values among the pool's ok rows`, { hint });
}


/** Threads for a filter: the option, else the default (0 = one per available core). */
export function filterWorkers(workers?: number): number {
  const w = workers ?? DEFAULTS.filter.workers;
  if (!(Number.isInteger(w) && w >= 0)) throw new MimicError('E_USAGE', `--workers must be a whole number ≥ 0, got ${w}`);
  return w === 0 ? availableParallelism() : w;
}

export async function runFilter(opts: FilterOptions): Promise<FilterSummary> {
  const t0 = Date.now();
  const pool = opts.pool ?? Pool.open(opts);
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
  const split = (cols: Iterable<string>): ColumnSplit => {
    const all = [...new Set(cols)];
    return { score: all.filter((c) => catalog.isScoreColumn(c)), side: all.filter((c) => !catalog.isScoreColumn(c)) };
  };
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
  // Side columns from a SideStore can be read by other threads; any other object only by this one.
  const init: PassInit = { pool: pool.spec, side: side instanceof SideStore ? side.ref() : null };
  const local = new PassExecutor(init, side);
  let workers = side !== null && !(side instanceof SideStore) ? 1 : filterWorkers(opts.workers);

  // Pass S: a sample of files, for the size of tasks and the histogram windows.
  const statSplit = split(statColumns);
  const sampleFiles = Math.min(U, opts.sampleFiles ?? DEFAULTS.filter.sampleFiles);
  const sample = sampleUnits(local, pool, statSplit, trustNulls, statColumns.length && sampleFiles > 0 ? sampleFiles : Math.min(U, 4));
  const rowsPerUnit = Math.max(1, sample.rowsPerUnit);
  const unitsPerTask = Math.max(1, Math.round((opts.taskRows ?? DEFAULTS.filter.taskRows) / rowsPerUnit));
  workers = Math.max(1, Math.min(workers, Math.ceil(U / unitsPerTask)));
  const shardRank = new Uint32Array(U);
  const makeTasks = (): Task[] => {
    const tasks: Task[] = [];
    for (let u0 = 0; u0 < U; u0 += unitsPerTask) {
      const units: UnitTask[] = [];
      for (let u = u0; u < Math.min(U, u0 + unitsPerTask); u++) units.push({ u, path: pool.units[u], shardRank: shardRank[u] });
      tasks.push({ index: tasks.length, units });
    }
    return tasks;
  };
  const lastUnit = (t: Task) => t.units[t.units.length - 1].u;
  const runner = PassRunner.start({ workers, init, side, inFlight: DEFAULTS.filter.tasksInFlight });
  try {
    // Pass A: high histograms, low counts in the guessed windows, and the shard name of each unit (tie-breaks).
    const high = new Map<string, HighHistogram>();
    const windows = new Map<string, MergedWindow>();
    const shardNames: string[] = [];
    let poolRows = 0;
    const targets: RankTarget[] = [
      ...needs.percentiles.map((p) => ({ column: p.column, fraction: p.q / 100 })),
      ...needs.ranks.map((e) => ({ column: e.column, fraction: rankFraction(e, sample, U) })),
    ];
    if (statColumns.length) {
      startPass('histogram');
      const cols = allColumns(statSplit);
      const guessed = sampleFiles > 0 ? guessWindows(sample.high, targets, DEFAULTS.filter.windowBuckets) : new Map<string, { lo: number; width: number }>();
      const wantShard = needs.ranks.length > 0;
      let rows = 0;
      const ends = await runner.run({ kind: 'histogram', columns: statSplit, trustNulls, wantShard, windows: cols.map((c) => guessed.get(c) ?? null) }, makeTasks(), (t, r) => {
        const h = r as HistogramResult;
        rows += h.rows;
        if (wantShard) shardNames.push(...h.shardNames);
        progress('histogram', lastUnit(t), rows);
      });
      cols.forEach((c, k) => {
        const hh = new HighHistogram();
        const g = guessed.get(c);
        const win = g ? new MergedWindow(g.lo, g.width) : null;
        for (const e of ends as HistogramEnd[]) {
          hh.merge(e.columns[k].counts, e.columns[k].n, e.columns[k].nan);
          if (win) win.merge(e.columns[k].window!, e.columns[k].windowExact);
        }
        high.set(c, hh);
        if (win) windows.set(c, win);
      });
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

    // Wanted ranks in a window are known now; pass B counts the low bits of the other ranks' buckets.
    const rankedAt = new Map<string, Map<number, RankedValue>>();
    const missed: { column: string; bucket: number; below: number; ranks: number[] }[] = [];
    for (const [c, ranks] of wanted) {
      const m = new Map<number, RankedValue>();
      rankedAt.set(c, m);
      const hh = high.get(c)!;
      const win = windows.get(c);
      for (const r of ranks) {
        const { bucket, below } = hh.locate(r);
        if (win?.covers(bucket)) m.set(r, win.low(bucket, below).at(r));
        else {
          const known = missed.find((x) => x.column === c && x.bucket === bucket);
          if (known) known.ranks.push(r);
          else missed.push({ column: c, bucket, below, ranks: [r] });
        }
      }
    }
    if (missed.length) {
      startPass('refine');
      let rows = 0;
      const ends = await runner.run({ kind: 'refine', columns: split(missed.map((x) => x.column)), trustNulls, buckets: missed.map((x) => ({ column: x.column, bucket: x.bucket })) }, makeTasks(), (t, r) => {
        rows += r.rows;
        progress('refine', lastUnit(t), rows);
      });
      missed.forEach((x, k) => {
        const lh = new LowHistogram(x.bucket, x.below);
        for (const e of ends as RefineEnd[]) lh.merge(e.counts[k]);
        for (const r of x.ranks) rankedAt.get(x.column)!.set(r, lh.at(r));
      });
    }
    const at = (c: string, r: number) => rankedAt.get(c)!.get(r)!;
    for (const p of pctPlans) {
      p.value = linearPercentile(p.q, p.n, (r) => at(p.column, r).value);
      const a = at(p.column, p.lo);
      const b = at(p.column, p.hi);
      p.at_value = p.value === a.value ? a.equal : p.value === b.value ? b.equal : 0;
    }
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
    if (partial.length) {
      startPass('ties');
      const order = Array.from({ length: U }, (_, u) => u);
      order.sort((a, b) => (shardNames[a] < shardNames[b] ? -1 : shardNames[a] > shardNames[b] ? 1 : a - b));
      order.forEach((u, r) => (shardRank[u] = r));
      const sorters = partial.map(() => new ExternalSorter({ stride: TIE_STRIDE, keyWords: TIE_STRIDE, memoryBytes: opts.sortMemoryBytes ?? DEFAULTS.filter.sortMemoryBytes, tmpDir: opts.tmpDir }));
      try {
        let rows = 0;
        await runner.run({ kind: 'ties', columns: split(partial.map((p) => p.expr.column)), plans: partial.map((p) => ({ column: p.expr.column, boundary: p.boundary })) }, makeTasks(), (t, r) => {
          const tr = r as TiesResult;
          tr.records.forEach((recs, k) => {
            for (let o = 0; o < recs.length; o += TIE_STRIDE) sorters[k].push(recs, o);
          });
          rows += tr.rows;
          progress('ties', lastUnit(t), rows);
        });
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
    let npy: NpyExport | null = null;
    try {
      if (opts.npy) {
        npy = new NpyExport(opts.npy, { memoryBytes: sortMemory, tmpDir: opts.tmpDir });
        exporters.push({ name: 'npy', ex: npy });
      }
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
    // The .npy takes the kept uids parsed in the threads; the other exports take the kept rows' columns.
    const others = exporters.filter((x) => x.ex !== npy);
    const subsetIdentity = new Set<IdentityColumn>();
    const subsetValues = new Set<string>();
    for (const { ex } of others) {
      for (const c of ex.needs) subsetIdentity.add(c);
      for (const c of ex.needsValues) subsetValues.add(c);
    }
    const identity = new Set<IdentityColumn>(subsetIdentity);
    if (npy) identity.add('uid');
    if (partial.length) {
      identity.add('uid');
      identity.add('row');
    }
    const countColumns = [...needs.columns];
    const R = rules.length;
    const matched = new Float64Array(R);
    const overlap = new Float64Array(R * R);
    const present = new Map<string, number>(countColumns.map((c) => [c, 0]));
    const excluded = new Map<string, number>();
    let okRows = 0;
    let mismatch = 0;
    let kept = 0;
    let rows = 0;
    try {
      await runner.run({
        kind: 'select',
        columns: split([...needs.columns, ...subsetValues]),
        identity: [...identity],
        rules: rules.map((r) => ({ kind: r.kind, expr: r.expr })),
        percentiles: pctPlans.map((p) => [p.column, p.q, p.value]),
        ranks: rankPlans.map((p) => ({ mode: p.mode, dir: p.expr.dir, boundary: p.boundary, some: p.keptFromTies < p.tied, cut: p.cut })),
        countColumns,
        npy: npy !== null,
        subset: others.length ? { identity: [...subsetIdentity], values: [...subsetValues] } : null,
      }, makeTasks(), (t, r) => {
        const s = r as SelectResult;
        rows += s.rows;
        okRows += s.okRows;
        mismatch += s.mismatch;
        kept += s.kept;
        for (const [st, c] of s.statusCounts) excluded.set(st, (excluded.get(st) ?? 0) + c);
        countColumns.forEach((c, k) => present.set(c, present.get(c)! + s.present[k]));
        for (let k = 0; k < R; k++) matched[k] += s.matched[k];
        for (let k = 0; k < R * R; k++) overlap[k] += s.overlap[k];
        for (const unit of s.units) {
          if (npy && unit.npy) npy.addWords(unit.npy.words, unit.npy.noUid, unit.npy.invalid, unit.npy.firstInvalid);
          if (unit.subset) {
            const b = { n: unit.subset.n, kept: new Uint8Array(unit.subset.n).fill(1), identity: unit.subset.identity, values: unit.subset.values };
            for (const { ex } of others) ex.add(b);
          }
        }
        progress('select', lastUnit(t), rows);
      });
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
        // Only with allowIncomplete: shards of the run not scored yet, left out of every percentile.
        ...(Object.keys(pool.missingShards).length ? { missing_shards: pool.missingShards } : {}),
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
      workers: runner.workers,
      seconds: (Date.now() - t0) / 1000,
    };
    for (let r = 0; r < R; r++) for (let s = r + 1; s < R; s++) summary.overlaps.push({ rules: [r, s], both: overlap[r * R + s] });
    if (opts.summary) writeFileAtomicSync(opts.summary, JSON.stringify(summary, null, 2) + '\n');
    return summary;
  } finally {
    await runner.close();
  }
}

interface Sample {
  /** Per column: high-bucket counts of the sampled present values. */
  high: Map<string, HighHistogram>;
  /** Mean rows per sampled file. */
  rowsPerUnit: number;
  /** Present values per sampled row, per column. */
  presentShare: Map<string, number>;
}

/** Read `count` files spread evenly over the pool: their row counts and, per column, a high histogram. */
function sampleUnits(exec: PassExecutor, pool: Pool, columns: ColumnSplit, trustNulls: boolean, count: number): Sample {
  const U = pool.units.length;
  const high = new Map<string, HighHistogram>(allColumns(columns).map((c) => [c, new HighHistogram()]));
  let rows = 0;
  for (let k = 0; k < count; k++) {
    const u = Math.floor(((k + 0.5) * U) / count);
    const d = exec.readUnit({ u, path: pool.units[u], shardRank: 0 }, columns, trustNulls);
    rows += d.n;
    for (const [c, h] of high) h.add(d.values[c], trustNulls ? null : d.ok);
  }
  const presentShare = new Map<string, number>();
  for (const [c, h] of high) presentShare.set(c, rows > 0 ? h.n / rows : 0);
  return { high, rowsPerUnit: count > 0 ? rows / count : 0, presentShare };
}

/** Where a top()/bottom() rule's boundary lies as a fraction of the column's values, estimated from the sample. */
function rankFraction(e: Extract<Expr, { kind: 'rank' }>, sample: Sample, units: number): number {
  let share: number;
  if (e.percent) share = e.count / 100;
  else {
    const n = sample.rowsPerUnit * units * (sample.presentShare.get(e.column) ?? 0);
    share = n > 0 ? e.count / n : 0;
  }
  share = Math.min(1, Math.max(0, share));
  return e.dir === 'top' ? 1 - share : share;
}

/**
 * Per column, high buckets [lo, lo + width) likely to hold the wanted ranks: around the sample's quantiles,
 * with a margin of four binomial standard deviations. One window per column, at most `maxWidth` buckets; ranks
 * the window misses are found by the refine pass.
 */
function guessWindows(sample: Map<string, HighHistogram>, targets: RankTarget[], maxWidth: number): Map<string, { lo: number; width: number }> {
  const out = new Map<string, { lo: number; width: number }>();
  for (const [c, h] of sample) {
    const m = h.n;
    if (m === 0 || maxWidth < 1) continue;
    let lo = Infinity;
    let hi = -Infinity;
    let centre = -1;
    for (const t of targets.filter((x) => x.column === c)) {
      const f = t.fraction;
      const margin = 4 * Math.sqrt((f * (1 - f)) / m) * m + 2;
      const at = (x: number) => h.locate(Math.min(m - 1, Math.max(0, Math.round(x)))).bucket;
      const a = at(f * (m - 1) - margin);
      const b = at(f * (m - 1) + margin);
      if (centre < 0) centre = at(f * (m - 1));
      // Take this target's buckets only if the window stays small with them.
      if (Math.max(hi, b) - Math.min(lo, a) + 1 <= maxWidth) {
        lo = Math.min(lo, a);
        hi = Math.max(hi, b);
      }
    }
    if (centre < 0) continue;
    if (lo === Infinity) {
      // Even one target's margin is wider than the window: centre the window on the sample's estimate.
      lo = Math.max(0, Math.min(65536 - maxWidth, centre - (maxWidth >> 1)));
      hi = lo + maxWidth - 1;
    }
    out.set(c, { lo, width: hi - lo + 1 });
  }
  return out;
}
