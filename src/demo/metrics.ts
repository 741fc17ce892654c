/**
 * How well a per-sample score finds bad pairs, given the truth. Every function takes a *suspicion* (higher = more
 * likely bad: −mimic score, −CLIP score, +loss) and a mask of the rows that are truly bad, so one convention serves
 * every score; ties are treated as a random order would treat them on average (midranks, fractional counts), so a
 * constant score gets exactly the chance level and not the luck of a sort.
 */
import { MimicError } from '../errors.js';

export type Truthy = ArrayLike<boolean | number>;

function checkLengths(a: ArrayLike<number>, b: Truthy, what: string): void {
  if (a.length !== b.length) {
    throw new MimicError('E_USAGE', `${what}: ${a.length} scores but ${b.length} truth labels`);
  }
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) throw new MimicError('E_USAGE', `${what}: score ${i} is ${a[i]} (drop failed rows first)`);
  }
}

/** Ranks 1..n of the values, tied values sharing the mean of their ranks. */
export function midranks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a]! - values[b]!);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n;) {
    let j = i + 1;
    while (j < n && values[order[j]!] === values[order[i]!]) j++;
    const mid = (i + 1 + j) / 2; // mean of ranks i+1..j
    for (let k = i; k < j; k++) ranks[order[k]!] = mid;
    i = j;
  }
  return ranks;
}

/**
 * Area under the ROC curve of `suspicion` for telling bad rows (truth) from good ones: the probability that a
 * random bad row is more suspicious than a random good one, ties counting one half (Mann–Whitney U / n₊n₋).
 * 0.5 is chance, 1 perfect, below 0.5 the score points the wrong way. NaN when a class is empty.
 */
export function auroc(suspicion: ArrayLike<number>, bad: Truthy): number {
  checkLengths(suspicion, bad, 'AUROC');
  const ranks = midranks(suspicion);
  let nPos = 0;
  let rankSum = 0;
  for (let i = 0; i < ranks.length; i++) {
    if (bad[i]) {
      nPos++;
      rankSum += ranks[i]!;
    }
  }
  const nNeg = ranks.length - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * Fraction of bad rows among the k most suspicious, in expectation over a random order of ties: the rows tied at
 * the boundary contribute their bad fraction times the places left for them.
 */
export function precisionAtK(suspicion: ArrayLike<number>, bad: Truthy, k: number): number {
  checkLengths(suspicion, bad, 'precision at k');
  const n = suspicion.length;
  if (!Number.isInteger(k) || k < 0 || k > n) throw new MimicError('E_USAGE', `precision at k: k = ${k} is not in 0..${n}`);
  if (k === 0) return NaN;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => suspicion[b]! - suspicion[a]!);
  const boundary = suspicion[order[k - 1]!]!;
  let above = 0;
  let badAbove = 0;
  let tied = 0;
  let badTied = 0;
  for (let i = 0; i < n; i++) {
    const v = suspicion[i]!;
    if (v > boundary) {
      above++;
      if (bad[i]) badAbove++;
    } else if (v === boundary) {
      tied++;
      if (bad[i]) badTied++;
    }
  }
  return (badAbove + ((k - above) * badTied) / tied) / k;
}

/** Precision at k = the number of bad rows (R-precision): 1 when the bad rows are exactly the most suspicious. */
export function precisionAtNoiseRate(suspicion: ArrayLike<number>, bad: Truthy): number {
  let k = 0;
  for (let i = 0; i < bad.length; i++) if (bad[i]) k++;
  return precisionAtK(suspicion, bad, k);
}

/** Fraction of bad rows among the kept ones (NaN when nothing is kept). */
export function keptNoiseRate(keep: Truthy, bad: Truthy): number {
  if (keep.length !== bad.length) throw new MimicError('E_USAGE', `kept-set noise: ${keep.length} keep flags but ${bad.length} labels`);
  let kept = 0;
  let badKept = 0;
  for (let i = 0; i < keep.length; i++) {
    if (keep[i]) {
      kept++;
      if (bad[i]) badKept++;
    }
  }
  return kept === 0 ? NaN : badKept / kept;
}

/** numpy.percentile(values, q, method='linear'), q in [0, 100]. */
export function percentileLinear(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) throw new MimicError('E_USAGE', 'percentile of no values');
  if (!(q >= 0 && q <= 100)) throw new MimicError('E_USAGE', `percentile ${q} is not in [0, 100]`);
  const sorted = Float64Array.from(values).sort();
  const pos = (sorted.length - 1) * (q / 100); // numpy divides q by 100 first
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  // numpy's _lerp: a + (b − a)·t, switched to b − (b − a)·(1 − t) for t ≥ 0.5 to stay exact at the ends.
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  const t = pos - lo;
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

/**
 * Rows kept by "top `fraction` by `score`" as `mimic filter` reads it: score ≥ the (1 − fraction) percentile
 * (rows tied at the threshold are all kept). `fraction` in (0, 1].
 */
export function keepTop(score: ArrayLike<number>, fraction: number): Uint8Array {
  if (!(fraction > 0 && fraction <= 1)) throw new MimicError('E_USAGE', `keep fraction ${fraction} is not in (0, 1]`);
  const t = percentileLinear(score, 100 * (1 - fraction));
  return Uint8Array.from({ length: score.length }, (_, i) => (score[i]! >= t ? 1 : 0));
}

/** Rows in the bottom `fraction` by `score`: score ≤ the `fraction` percentile. */
export function bottom(score: ArrayLike<number>, fraction: number): Uint8Array {
  if (!(fraction > 0 && fraction <= 1)) throw new MimicError('E_USAGE', `fraction ${fraction} is not in (0, 1]`);
  const t = percentileLinear(score, 100 * fraction);
  return Uint8Array.from({ length: score.length }, (_, i) => (score[i]! <= t ? 1 : 0));
}
