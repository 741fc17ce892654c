/**
 * `mimic stats`: the distribution of every score column of a pool (exact quantiles, as numpy's linear
 * percentile, through the same two histogram passes as the filter), and for the report: histograms and the
 * correlation of each mimic score with the CLIP score (Pearson over every row; Spearman exact up to
 * `exactRows` rows, else on a uniform random sample of that many rows, which the result says).
 */
import { FLOAT_COLUMNS, LAYERS } from '../scores/schema.js';
import { DEFAULTS } from '../defaults.js';
import { Pool, type PoolOptions } from './pool.js';
import { HighHistogram, LowHistogram, linearPercentile, percentileRanks } from './order-stats.js';
import { rng32 } from './random.js';

/** Figure geometry shared with report.ts (hexagons are laid out in plot pixels so that they stay regular). */
export const PLOT = { width: 640, height: 400, margin: { l: 64, r: 90, t: 52, b: 52 } } as const;
const PLOT_ASPECT = (PLOT.height - PLOT.margin.t - PLOT.margin.b) / (PLOT.width - PLOT.margin.l - PLOT.margin.r);

export const STAT_QUANTILES = [1, 5, 25, 50, 75, 95, 99] as const;
/** Histogram range: the central 99% of the values, so that outliers do not squash the plot. */
const RANGE_Q = [0.5, 99.5] as const;

export interface ColumnStats {
  column: string;
  values: number;
  /** ok rows whose value is missing (NaN or null). */
  missing: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  quantiles: Record<string, number>;
  histogram?: { lo: number; hi: number; counts: number[]; below: number; above: number };
}

export interface Correlation {
  x: string;
  y: string;
  n: number;
  pearson: number;
  spearman: number;
  /** Rows the Spearman coefficient was computed on (all of n, or a uniform sample). */
  spearmanRows: number;
  /** Hexagonal bins over the central 99% of each axis: centers and counts. */
  hexbin?: { xlo: number; xhi: number; ylo: number; yhi: number; gridX: number; bins: { x: number; y: number; count: number }[] };
  /* bins: hexagon centres as fractions of the plot area's width and height */
}

export interface PoolStats {
  rows: number;
  ok: number;
  excludedByStatus: Record<string, number>;
  checkpoints: string[];
  aggregate: string;
  normalize: string;
  columns: ColumnStats[];
  /** Columns without any value among the ok rows. */
  empty: string[];
  correlations: Correlation[];
  clipColumn: string | null;
}

export interface StatsOptions extends PoolOptions {
  /** Also compute histograms and correlations (a third pass). */
  report?: boolean;
  bins?: number;
  /** Spearman exact up to this many rows per pair, else on a sample of this size. */
  exactRows?: number;
  onProgress?: (pass: string, unit: number, units: number) => void;
}

export async function poolStats(opts: StatsOptions): Promise<PoolStats> {
  // Statistics of a run still being scored are useful (and say so in the log); a filter refuses one by default.
  const pool = Pool.open({ ...opts, allowIncomplete: opts.allowIncomplete ?? true });
  const U = pool.units.length;
  const cols = [...FLOAT_COLUMNS];
  const high = new Map(cols.map((c) => [c, new HighHistogram()]));
  const sums = new Map(cols.map((c) => [c, { s: 0, ss: 0, min: Infinity, max: -Infinity }]));
  const excluded = new Map<string, number>();
  let rows = 0;
  let ok = 0;
  for (let u = 0; u < U; u++) {
    const d = pool.readUnit(u, { scores: cols, statuses: true });
    rows += d.n;
    ok += d.okCount;
    for (const [s, c] of d.statusCounts ?? []) excluded.set(s, (excluded.get(s) ?? 0) + c);
    for (const c of cols) {
      const v = d.values[c];
      high.get(c)!.add(v, d.ok);
      const a = sums.get(c)!;
      for (let i = 0; i < d.n; i++) {
        const x = v[i];
        if (!d.ok[i] || x !== x) continue;
        a.s += x;
        a.ss += x * x;
        if (x < a.min) a.min = x;
        if (x > a.max) a.max = x;
      }
    }
    opts.onProgress?.('histogram', u, U);
  }
  const present = cols.filter((c) => high.get(c)!.n > 0);
  const empty = cols.filter((c) => high.get(c)!.n === 0);

  // Exact quantiles: refine the buckets of the ranks they read.
  const qs = [...STAT_QUANTILES, ...RANGE_Q];
  const lows = new Map<string, Map<number, LowHistogram>>();
  for (const c of present) {
    const hh = high.get(c)!;
    const m = new Map<number, LowHistogram>();
    for (const q of qs) {
      const { lo, hi } = percentileRanks(q, hh.n);
      for (const r of [lo, hi]) {
        const { bucket, below } = hh.locate(r);
        if (!m.has(bucket)) m.set(bucket, new LowHistogram(bucket, below));
      }
    }
    lows.set(c, m);
  }
  for (let u = 0; u < U && present.length; u++) {
    const d = pool.readUnit(u, { scores: present });
    for (const c of present) for (const lh of lows.get(c)!.values()) lh.add(d.values[c], d.ok);
    opts.onProgress?.('refine', u, U);
  }
  const quantile = (c: string, q: number) => {
    const hh = high.get(c)!;
    return linearPercentile(q, hh.n, (r) => lows.get(c)!.get(hh.locate(r).bucket)!.at(r).value);
  };
  const columns: ColumnStats[] = present.map((c) => {
    const n = high.get(c)!.n;
    const a = sums.get(c)!;
    const mean = a.s / n;
    return {
      column: c,
      values: n,
      missing: ok - n,
      mean,
      std: Math.sqrt(Math.max(0, a.ss / n - mean * mean)),
      min: a.min,
      max: a.max,
      quantiles: Object.fromEntries(STAT_QUANTILES.map((q) => [`p${q}`, quantile(c, q)])),
    };
  });

  // CLIP score for the correlations: the reference model's when scored, else the proxy's own.
  const clipColumn = present.includes('ref_clip_sim') ? 'ref_clip_sim' : present.includes('clip_sim') ? 'clip_sim' : null;
  const pairs = clipColumn ? LAYERS.map((l) => `mimic_proj_${l}`).filter((c) => present.includes(c)).map((x) => ({ x, y: clipColumn })) : [];
  const correlations: Correlation[] = [];
  if (opts.report) {
    const bins = opts.bins ?? DEFAULTS.filter.reportBins;
    const range = new Map(columns.map((s) => [s.column, rangeOf(quantile(s.column, RANGE_Q[0]), quantile(s.column, RANGE_Q[1]), s.min, s.max)]));
    const hists = new Map(columns.map((s) => [s.column, { counts: new Float64Array(bins), below: 0, above: 0 }]));
    const exact = opts.exactRows ?? 5_000_000;
    const pairState = pairs.map((p) => ({
      ...p,
      n: 0, sx: 0, sy: 0, sxx: 0, syy: 0, sxy: 0,
      sample: new Reservoir(exact, 0x5eed),
      hex: new HexGrid(range.get(p.x)!, range.get(p.y)!, 40),
    }));
    for (let u = 0; u < U; u++) {
      const d = pool.readUnit(u, { scores: present });
      for (const s of columns) {
        const v = d.values[s.column];
        const h = hists.get(s.column)!;
        const [lo, hi] = range.get(s.column)!;
        const scale = bins / (hi - lo);
        for (let i = 0; i < d.n; i++) {
          const x = v[i];
          if (!d.ok[i] || x !== x) continue;
          if (x < lo) h.below++;
          else if (x > hi) h.above++;
          else h.counts[Math.min(bins - 1, Math.floor((x - lo) * scale))]++;
        }
      }
      for (const p of pairState) {
        const xs = d.values[p.x];
        const ys = d.values[p.y];
        for (let i = 0; i < d.n; i++) {
          const x = xs[i];
          const y = ys[i];
          if (!d.ok[i] || x !== x || y !== y) continue;
          p.n++;
          p.sx += x; p.sy += y; p.sxx += x * x; p.syy += y * y; p.sxy += x * y;
          p.sample.add(x, y);
          p.hex.add(x, y);
        }
      }
      opts.onProgress?.('report', u, U);
    }
    for (const s of columns) {
      const h = hists.get(s.column)!;
      const [lo, hi] = range.get(s.column)!;
      s.histogram = { lo, hi, counts: Array.from(h.counts), below: h.below, above: h.above };
    }
    for (const p of pairState) {
      const { xs, ys } = p.sample.values();
      const cov = p.sxy / p.n - (p.sx / p.n) * (p.sy / p.n);
      const vx = p.sxx / p.n - (p.sx / p.n) ** 2;
      const vy = p.syy / p.n - (p.sy / p.n) ** 2;
      correlations.push({
        x: p.x,
        y: p.y,
        n: p.n,
        pearson: p.n > 1 ? pearsonFrom(xs, ys, cov / Math.sqrt(vx * vy), p.n === xs.length) : NaN,
        spearman: xs.length > 1 ? pearson(ranks(xs), ranks(ys)) : NaN,
        spearmanRows: xs.length,
        hexbin: p.hex.result(),
      });
    }
  }
  return {
    rows,
    ok,
    excludedByStatus: Object.fromEntries([...excluded].sort()),
    checkpoints: pool.checkpoints.map((c) => c.name),
    aggregate: pool.aggregate,
    normalize: pool.normalize,
    columns,
    empty,
    correlations,
    clipColumn,
  };
}

/** Central range for plots; falls back to [min, max], and widens a single value to a unit interval. */
function rangeOf(lo: number, hi: number, min: number, max: number): [number, number] {
  if (!(hi > lo)) {
    lo = min;
    hi = max;
  }
  if (!(hi > lo)) return [lo - 0.5, lo + 0.5];
  return [lo, hi];
}

/** With every row held, Pearson is recomputed from centred data (the streaming sums lose digits). */
function pearsonFrom(xs: Float64Array, ys: Float64Array, streamed: number, all: boolean): number {
  return all ? pearson(xs, ys) : streamed;
}

export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const a = x[i] - mx;
    const b = y[i] - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/** 1-based average ranks (scipy.stats.rankdata's default), via one sort. */
export function ranks(v: Float64Array): Float64Array {
  const n = v.length;
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  idx.sort((a, b) => v[a] - v[b]);
  const r = new Float64Array(n);
  let j = 0;
  while (j < n) {
    let e = j + 1;
    while (e < n && v[idx[e]] === v[idx[j]]) e++;
    const avg = (j + 1 + e) / 2;
    for (let t = j; t < e; t++) r[idx[t]] = avg;
    j = e;
  }
  return r;
}

/** Uniform random sample of (x, y) pairs (Algorithm R), deterministic for a seed. */
class Reservoir {
  private xs: Float64Array;
  private ys: Float64Array;
  private seen = 0;
  private readonly rand: () => number;

  constructor(private readonly cap: number, seed: number) {
    this.xs = new Float64Array(Math.min(cap, 1 << 16));
    this.ys = new Float64Array(this.xs.length);
    this.rand = rng32(seed);
  }

  add(x: number, y: number): void {
    const k = this.seen++;
    if (k < this.cap) {
      if (k >= this.xs.length) {
        const n = Math.min(this.cap, this.xs.length * 2);
        const nx = new Float64Array(n);
        nx.set(this.xs);
        const ny = new Float64Array(n);
        ny.set(this.ys);
        this.xs = nx;
        this.ys = ny;
      }
      this.xs[k] = x;
      this.ys[k] = y;
      return;
    }
    const j = Math.floor(this.rand() * (k + 1));
    if (j < this.cap) {
      this.xs[j] = x;
      this.ys[j] = y;
    }
  }

  values(): { xs: Float64Array; ys: Float64Array } {
    const n = Math.min(this.seen, this.cap);
    return { xs: this.xs.subarray(0, n), ys: this.ys.subarray(0, n) };
  }
}

/**
 * Pointy-top hexagonal bins over a box, in coordinates where the box is 1 wide and PLOT_ASPECT tall (the plot
 * area's shape), so the box is gridX hexagons wide and the hexagons are regular on the figure.
 */
class HexGrid {
  private counts = new Map<string, number>();
  private readonly size: number;

  constructor(private readonly xr: [number, number], private readonly yr: [number, number], private readonly gridX: number) {
    // hexagon width √3·size spans 1/gridX of the unit square
    this.size = 1 / gridX / Math.sqrt(3);
  }

  add(x: number, y: number): void {
    const u = (x - this.xr[0]) / (this.xr[1] - this.xr[0]);
    const v = ((y - this.yr[0]) / (this.yr[1] - this.yr[0])) * PLOT_ASPECT;
    if (u < 0 || u > 1 || v < 0 || v > PLOT_ASPECT) return;
    const q = ((Math.sqrt(3) / 3) * u - v / 3) / this.size;
    const r = ((2 / 3) * v) / this.size;
    const [qi, ri] = hexRound(q, r);
    const k = `${qi},${ri}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  result() {
    const bins = [...this.counts].map(([k, count]) => {
      const [q, r] = k.split(',').map(Number);
      const u = this.size * Math.sqrt(3) * (q + r / 2);
      const v = this.size * 1.5 * r;
      return { x: u, y: v / PLOT_ASPECT, count };
    });
    return { xlo: this.xr[0], xhi: this.xr[1], ylo: this.yr[0], yhi: this.yr[1], gridX: this.gridX, bins };
  }
}

function hexRound(q: number, r: number): [number, number] {
  const s = -q - r;
  let rq = Math.round(q);
  let rr = Math.round(r);
  const rs = Math.round(s);
  const dq = Math.abs(rq - q);
  const dr = Math.abs(rr - r);
  const ds = Math.abs(rs - s);
  if (dq > dr && dq > ds) rq = -rr - rs;
  else if (dr > ds) rr = -rq - rs;
  return [rq, rr];
}
