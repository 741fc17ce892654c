/**
 * The demo's evaluation: scored rows (read from `mimic score`'s files, see read-scores.ts) joined with the
 * truth by uid, failed rows set aside and counted, then the quality table of DEMO_SCORES and DEMO_FILTERS.
 */
import { MimicError } from '../errors.js';
import type { DemoTruth, NoiseLabel } from './dataset.js';
import { DEMO_FILTERS, DEMO_SCORES, RANDOM_COLUMN, evaluateQuality, type FilterSpec, type QualityReport, type ScoreSpec } from './quality.js';

export interface ScoredRows {
  uid: readonly (string | null)[];
  /** 'ok' or the reason the row has no scores. */
  status: readonly string[];
  columns: Readonly<Record<string, ArrayLike<number>>>;
}

export interface DemoEvaluation {
  report: QualityReport;
  /** Rows not scored (status other than ok), by status. */
  failed: Record<string, number>;
  /** Pool rows of the truth file that the scores do not contain. */
  unscored: number;
}

export interface DemoEvaluationOptions {
  scores?: readonly ScoreSpec[];
  filters?: readonly FilterSpec[];
  seed?: number;
}

export function evaluateDemo(rows: ScoredRows, truth: DemoTruth, opts: DemoEvaluationOptions = {}): DemoEvaluation {
  const labelOf = new Map(truth.rows.map((r) => [r.uid, r.label]));
  const keep: number[] = [];
  const labels: NoiseLabel[] = [];
  const failed: Record<string, number> = {};
  const seen = new Set<string>();
  rows.uid.forEach((uid, i) => {
    const label = uid === null ? undefined : labelOf.get(uid);
    if (uid === null || label === undefined) {
      throw new MimicError('E_USAGE', `scored row ${i} has uid ${JSON.stringify(uid)}, which the truth file does not list`, {
        hint: 'score the pool shards that were built with this truth file',
      });
    }
    seen.add(uid);
    const status = rows.status[i]!;
    if (status !== 'ok') {
      const kind = status.split(':')[0]!;
      failed[kind] = (failed[kind] ?? 0) + 1;
      return;
    }
    keep.push(i);
    labels.push(label);
  });
  const columns: Record<string, Float64Array> = {};
  for (const [name, values] of Object.entries(rows.columns)) {
    if (values.length !== rows.uid.length) {
      throw new MimicError('E_USAGE', `column ${name} has ${values.length} values for ${rows.uid.length} rows`);
    }
    columns[name] = Float64Array.from(keep, (i) => values[i]!);
  }
  const report = evaluateQuality({
    labels,
    columns,
    scores: (opts.scores ?? DEMO_SCORES).filter((s) => s.column in columns || s.column === RANDOM_COLUMN),
    filters: (opts.filters ?? DEMO_FILTERS).filter((f) => [...f.keep, ...(f.drop ?? [])].every((p) => p.column in columns || p.column === RANDOM_COLUMN)),
    seed: opts.seed ?? 0,
  });
  return { report, failed, unscored: truth.rows.filter((r) => !seen.has(r.uid)).length };
}

/** Element-wise mean of one column over several checkpoints' scores (the paper aggregates checkpoints). */
export function meanOverCheckpoints(columns: readonly ArrayLike<number>[]): Float64Array {
  if (columns.length === 0) throw new MimicError('E_USAGE', 'no checkpoints to average');
  const n = columns[0]!.length;
  const out = new Float64Array(n);
  for (const c of columns) {
    if (c.length !== n) throw new MimicError('E_USAGE', `checkpoint columns differ in length (${c.length} vs ${n})`);
    for (let i = 0; i < n; i++) out[i]! += c[i]! / columns.length;
  }
  return out;
}
