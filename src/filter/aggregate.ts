/**
 * Per-batch and cross-checkpoint arithmetic on one shard's scores. Everything is computed in float64 and
 * stored as float32 (the score files' precision), so thresholds and percentiles see float32 values; NaN marks
 * a missing value (a row that is not ok, or a null score) and propagates.
 */

export type Aggregate = 'mean' | 'median' | 'min' | 'max' | 'vote';
export type Normalize = 'none' | 'rank' | 'softmax';

/** Rows of one shard grouped by their `batch` value: `order` holds row indices, group g is order[bounds[g]..bounds[g+1]). */
export interface BatchGroups {
  order: Uint32Array;
  bounds: Uint32Array;
}

/**
 * Group the rows with mask[i] set by batch id. The real rows of a batch are exactly those (a filler row is
 * never written as a row of its own), so a group's size is the batch's effective size B_eff.
 */
export function groupByBatch(batch: Int32Array, mask: Uint8Array): BatchGroups {
  const n = batch.length;
  let m = 0;
  let sorted = true;
  let last = -Infinity;
  for (let i = 0; i < n; i++) {
    if (!mask[i]) continue;
    if (batch[i] < last) sorted = false;
    last = batch[i];
    m++;
  }
  const order = new Uint32Array(m);
  let k = 0;
  for (let i = 0; i < n; i++) if (mask[i]) order[k++] = i;
  if (!sorted) {
    // Rows of a batch are normally contiguous; sort (stably, by row) only when a file says otherwise.
    const idx = Array.from(order);
    idx.sort((a, b) => batch[a] - batch[b] || a - b);
    order.set(idx);
  }
  const bounds: number[] = [0];
  for (let j = 1; j < m; j++) if (batch[order[j]] !== batch[order[j - 1]]) bounds.push(j);
  if (m > 0) bounds.push(m);
  return { order, bounds: Uint32Array.from(bounds) };
}

/**
 * The paper's per-step keep decision for each row of each batch: its weight softmax(m/τ) over the real rows
 * of the batch exceeds 1/B_eff. Adds 1 to votes[i] where it does. A NaN score anywhere in a batch makes its
 * softmax undefined: no row of that batch gets a vote.
 */
export function addVotes(values: Float32Array, groups: BatchGroups, tau: number, votes: Float64Array): void {
  const { order, bounds } = groups;
  for (let g = 0; g + 1 < bounds.length; g++) {
    const a = bounds[g];
    const b = bounds[g + 1];
    const B = b - a;
    let max = -Infinity;
    let bad = false;
    for (let j = a; j < b; j++) {
      const z = values[order[j]] / tau;
      if (z !== z) bad = true;
      if (z > max) max = z;
    }
    if (bad) continue;
    let s = 0;
    for (let j = a; j < b; j++) s += Math.exp(values[order[j]] / tau - max);
    const uniform = 1 / B;
    for (let j = a; j < b; j++) {
      const i = order[j];
      if (Math.exp(values[i] / tau - max) / s > uniform) votes[i] += 1;
    }
  }
}

/**
 * Replace each batch's values by a batch-relative score, in place on `out` (rows outside the groups untouched):
 * `rank` → (r − ½)/B with r the 1-based average rank among the batch's non-NaN values (so in (0, 1), ½ for a
 * batch of one); `softmax` → B · softmax(v/τ) (1 is the uniform weight, > 1 the paper's "keep").
 * NaN values stay NaN and do not count in B.
 */
export function normalizeBatches(values: Float32Array, groups: BatchGroups, how: Exclude<Normalize, 'none'>, tau: number, out: Float32Array): void {
  const { order, bounds } = groups;
  const idx: number[] = [];
  for (let g = 0; g + 1 < bounds.length; g++) {
    idx.length = 0;
    for (let j = bounds[g]; j < bounds[g + 1]; j++) {
      const i = order[j];
      if (values[i] === values[i]) idx.push(i);
      else out[i] = NaN;
    }
    const B = idx.length;
    if (B === 0) continue;
    if (how === 'rank') {
      idx.sort((a, b) => values[a] - values[b]);
      let j = 0;
      while (j < B) {
        let e = j + 1;
        while (e < B && values[idx[e]] === values[idx[j]]) e++;
        // Ranks j+1..e share their average.
        const r = (j + 1 + e) / 2;
        const v = (r - 0.5) / B;
        for (let t = j; t < e; t++) out[idx[t]] = v;
        j = e;
      }
    } else {
      let max = -Infinity;
      for (const i of idx) max = Math.max(max, values[i] / tau);
      let s = 0;
      for (const i of idx) s += Math.exp(values[i] / tau - max);
      for (const i of idx) out[i] = (B * Math.exp(values[i] / tau - max)) / s;
    }
  }
}

/**
 * Combine C checkpoints' values of one column into `out` for the rows with mask set (others become NaN).
 * mean/median in float64 then rounded to float32; min/max exact; a NaN in any checkpoint gives NaN.
 */
export function combine(how: Exclude<Aggregate, 'vote'>, perCheckpoint: Float32Array[], mask: Uint8Array, out: Float32Array): void {
  const C = perCheckpoint.length;
  const n = out.length;
  if (C === 1) {
    const src = perCheckpoint[0];
    for (let i = 0; i < n; i++) out[i] = mask[i] ? src[i] : NaN;
    return;
  }
  const tmp = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    if (!mask[i]) {
      out[i] = NaN;
      continue;
    }
    let nan = false;
    for (let c = 0; c < C; c++) {
      const v = perCheckpoint[c][i];
      if (v !== v) nan = true;
      tmp[c] = v;
    }
    if (nan) {
      out[i] = NaN;
      continue;
    }
    switch (how) {
      case 'mean': {
        let s = 0;
        for (let c = 0; c < C; c++) s += tmp[c];
        out[i] = s / C;
        break;
      }
      case 'min': {
        let m = tmp[0];
        for (let c = 1; c < C; c++) if (tmp[c] < m) m = tmp[c];
        out[i] = m;
        break;
      }
      case 'max': {
        let m = tmp[0];
        for (let c = 1; c < C; c++) if (tmp[c] > m) m = tmp[c];
        out[i] = m;
        break;
      }
      case 'median': {
        tmp.sort();
        const h = C >> 1;
        out[i] = C & 1 ? tmp[h] : (tmp[h - 1] + tmp[h]) / 2;
        break;
      }
    }
  }
}
