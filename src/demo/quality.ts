/**
 * The quality table: given per-sample score columns and the truth, how well each score finds the bad pairs
 * (AUROC overall and per kind of noise, precision at the true noise rate) and how noisy the kept set is after the
 * filters of the paper (e.g. keep the top 70% by mimic score; CLIP-score top 30% minus the mimic-score bottom 20%).
 * Columns are named as in score files (loss, clip_sim, ref_clip_sim, mimic_proj_<layer>, ...), so the same
 * evaluation reads the output of `mimic score` (read-scores.ts adds the mean and control columns).
 */
import { MimicError } from '../errors.js';
import type { NoiseLabel } from './dataset.js';
import { auroc, bottom, keepTop, keptNoiseRate, precisionAtNoiseRate } from './metrics.js';
import { rngFor } from './random.js';

/** A score to judge: which column, and which end of it marks a bad pair. */
export interface ScoreSpec {
  label: string;
  column: string;
  /** 'low': small values are suspicious (mimic score, CLIP score); 'high': large ones are (loss). */
  bad: 'low' | 'high';
}

/** A selection: rows in every `keep` part, minus rows in any `drop` part. */
export interface FilterSpec {
  label: string;
  keep: FilterPart[];
  drop?: FilterPart[];
}

export interface FilterPart {
  column: string;
  /** Top or bottom `fraction` of the rows by the column (ties at the threshold included). */
  side: 'top' | 'bottom';
  fraction: number;
}

/** A column of uniform random numbers that evaluateQuality adds (the chance baseline). */
export const RANDOM_COLUMN = 'random';

export interface QualityInput {
  /** Truth per row, aligned with the columns (failed rows removed by the caller). */
  labels: readonly NoiseLabel[];
  columns: Readonly<Record<string, ArrayLike<number>>>;
  scores: readonly ScoreSpec[];
  filters: readonly FilterSpec[];
  /** Seed of the random column. */
  seed?: number;
}

export interface ScoreQuality {
  label: string;
  column: string;
  /** AUROC of finding bad rows (swapped or corrupted) among all rows. */
  auroc: number;
  aurocSwapped: number;
  aurocCorrupted: number;
  /** Precision among the k most suspicious rows, k = the number of bad rows. */
  precisionAtNoiseRate: number;
}

export interface FilterQuality {
  label: string;
  kept: number;
  keptFraction: number;
  /** Bad rows among the kept. */
  keptNoiseRate: number;
  /** Share of the bad rows that the filter removed. */
  badRemoved: number;
}

export interface QualityReport {
  rows: number;
  bad: number;
  noiseRate: number;
  counts: Record<NoiseLabel, number>;
  scores: ScoreQuality[];
  filters: FilterQuality[];
}

export function evaluateQuality(input: QualityInput): QualityReport {
  const n = input.labels.length;
  const columns: Record<string, ArrayLike<number>> = { ...input.columns };
  if (!(RANDOM_COLUMN in columns)) {
    const rand = rngFor(input.seed ?? 0, 'random-score');
    columns[RANDOM_COLUMN] = Float64Array.from({ length: n }, () => rand());
  }
  const column = (name: string): ArrayLike<number> => {
    const c = columns[name];
    if (!c) throw new MimicError('E_USAGE', `quality: no column "${name}" (have ${Object.keys(columns).join(', ')})`);
    if (c.length !== n) throw new MimicError('E_USAGE', `quality: column "${name}" has ${c.length} rows, the truth ${n}`);
    return c;
  };
  const bad = Uint8Array.from(input.labels, (l) => (l === 'clean' ? 0 : 1));
  const counts: Record<NoiseLabel, number> = { clean: 0, swapped: 0, corrupted: 0 };
  for (const l of input.labels) counts[l]++;

  const subset = (kind: NoiseLabel) => {
    const idx: number[] = [];
    input.labels.forEach((l, i) => {
      if (l === 'clean' || l === kind) idx.push(i);
    });
    return idx;
  };
  const swappedIdx = subset('swapped');
  const corruptedIdx = subset('corrupted');
  const pick = <T extends ArrayLike<number>>(a: T, idx: number[]) => Float64Array.from(idx, (i) => a[i]!);

  const scores = input.scores.map((s): ScoreQuality => {
    const c = column(s.column);
    const suspicion = Float64Array.from({ length: n }, (_, i) => (s.bad === 'low' ? -c[i]! : c[i]!));
    return {
      label: s.label,
      column: s.column,
      auroc: auroc(suspicion, bad),
      aurocSwapped: auroc(pick(suspicion, swappedIdx), pick(bad, swappedIdx)),
      aurocCorrupted: auroc(pick(suspicion, corruptedIdx), pick(bad, corruptedIdx)),
      precisionAtNoiseRate: precisionAtNoiseRate(suspicion, bad),
    };
  });

  const part = (p: FilterPart): Uint8Array => (p.side === 'top' ? keepTop(column(p.column), p.fraction) : bottom(column(p.column), p.fraction));
  const totalBad = counts.swapped + counts.corrupted;
  const filters = input.filters.map((f): FilterQuality => {
    const keep = new Uint8Array(n).fill(1);
    for (const p of f.keep) {
      const m = part(p);
      for (let i = 0; i < n; i++) keep[i]! &= m[i]!;
    }
    for (const p of f.drop ?? []) {
      const m = part(p);
      for (let i = 0; i < n; i++) if (m[i]) keep[i] = 0;
    }
    let kept = 0;
    let badKept = 0;
    for (let i = 0; i < n; i++) {
      kept += keep[i]!;
      badKept += keep[i]! & bad[i]!;
    }
    return {
      label: f.label,
      kept,
      keptFraction: kept / n,
      keptNoiseRate: keptNoiseRate(keep, bad),
      badRemoved: totalBad === 0 ? NaN : 1 - badKept / totalBad,
    };
  });
  return { rows: n, bad: totalBad, noiseRate: totalBad / n, counts, scores, filters };
}

const fmt = (x: number, digits = 3) => (Number.isNaN(x) ? '–' : x.toFixed(digits));
const pct = (x: number) => (Number.isNaN(x) ? '–' : `${(100 * x).toFixed(1)}%`);

/** The two markdown tables of a report (scores, then filters). */
export function formatQualityMarkdown(report: QualityReport): string {
  const lines = [
    `${report.rows} pairs, ${report.bad} bad (${pct(report.noiseRate)}: ${report.counts.swapped} swapped, ` +
      `${report.counts.corrupted} corrupted)`,
    '',
    '| score | AUROC | AUROC swapped | AUROC corrupted | precision at noise rate |',
    '|---|---|---|---|---|',
    ...report.scores.map((s) => `| ${s.label} | ${fmt(s.auroc)} | ${fmt(s.aurocSwapped)} | ${fmt(s.aurocCorrupted)} | ${fmt(s.precisionAtNoiseRate)} |`),
    '',
    '| filter | kept | kept-set noise | bad pairs removed |',
    '|---|---|---|---|',
    ...report.filters.map((f) => `| ${f.label} | ${f.kept} (${pct(f.keptFraction)}) | ${pct(f.keptNoiseRate)} | ${pct(f.badRemoved)} |`),
  ];
  return lines.join('\n') + '\n';
}

/** The scores the demo and the quality benchmark judge, by score-file column (controls as read-scores.ts names them). */
export const DEMO_SCORES: readonly ScoreSpec[] = [
  { label: 'mimic score, visual head', column: 'mimic_proj_visual', bad: 'low' },
  { label: 'mimic score, text head', column: 'mimic_proj_text', bad: 'low' },
  { label: 'mimic score, both heads', column: 'mimic_proj_both', bad: 'low' },
  { label: 'mimic cosine, both heads', column: 'mimic_cos_both', bad: 'low' },
  { label: 'CLIP score (proxy)', column: 'clip_sim', bad: 'low' },
  { label: 'CLIP score (reference)', column: 'ref_clip_sim', bad: 'low' },
  { label: 'loss (proxy)', column: 'loss', bad: 'high' },
  { label: 'gradient norm, both heads', column: 'grad_norm_both', bad: 'high' },
  { label: 'random', column: RANDOM_COLUMN, bad: 'low' },
  // CLIP's loss does not change when a projection is rescaled (the embeddings are normalised), so every per-sample
  // gradient is orthogonal to W: with D = −W every score is 0 up to rounding, and this row ranks rounding noise.
  { label: 'control: mimic with D = −W (0 up to rounding)', column: 'mimic_proj_both:neg_w', bad: 'low' },
  { label: 'control: mimic with a random D, ‖D‖ kept', column: 'mimic_proj_both:random', bad: 'low' },
];

/** The paper's filters and their baselines. */
export const DEMO_FILTERS: readonly FilterSpec[] = [
  { label: 'no filter', keep: [] },
  { label: 'random 70%', keep: [{ column: RANDOM_COLUMN, side: 'top', fraction: 0.7 }] },
  { label: 'mimic score (both) top 70%', keep: [{ column: 'mimic_proj_both', side: 'top', fraction: 0.7 }] },
  { label: 'mimic score (visual) top 70%', keep: [{ column: 'mimic_proj_visual', side: 'top', fraction: 0.7 }] },
  { label: 'CLIP score (reference) top 70%', keep: [{ column: 'ref_clip_sim', side: 'top', fraction: 0.7 }] },
  { label: 'loss (proxy) bottom 70%', keep: [{ column: 'loss', side: 'bottom', fraction: 0.7 }] },
  { label: 'CLIP score (reference) top 30%', keep: [{ column: 'ref_clip_sim', side: 'top', fraction: 0.3 }] },
  {
    label: 'CLIP score (reference) top 30% minus mimic (both) bottom 20%',
    keep: [{ column: 'ref_clip_sim', side: 'top', fraction: 0.3 }],
    drop: [{ column: 'mimic_proj_both', side: 'bottom', fraction: 0.2 }],
  },
];
