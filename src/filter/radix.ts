/**
 * Sorting fixed-width records held in a Uint32Array: each record is `stride` words, ordered by its first
 * `keyWords` words as unsigned numbers, most significant first (a 128-bit uid is four words, high word first).
 * Most-significant-digit radix sort: one pass on the top 16 bits, then 8-bit digits inside each bucket,
 * finishing small buckets by insertion. Stable; O(records × key bytes) in the worst case (long shared
 * prefixes), about three passes over the data for random keys such as uids.
 */

/** Compare record a of `x` with record b of `y` on the key words. */
export function compareRecords(x: Uint32Array, a: number, y: Uint32Array, b: number, stride: number, keyWords: number): number {
  const pa = a * stride;
  const pb = b * stride;
  for (let w = 0; w < keyWords; w++) {
    const u = x[pa + w];
    const v = y[pb + w];
    if (u !== v) return u < v ? -1 : 1;
  }
  return 0;
}

const SMALL = 16;

/** Sort the first `count` records of `data` in place (scratch: a buffer at least as large; allocated if absent). */
export function radixSortRecords(data: Uint32Array, count: number, stride: number, keyWords: number, scratch?: Uint32Array): void {
  if (count < 2) return;
  const words = count * stride;
  const tmp = scratch && scratch.length >= words ? scratch : new Uint32Array(words);
  if (count <= 4096) {
    msd8(data, tmp, 0, count, 0, stride, keyWords);
    return;
  }
  const counts = new Uint32Array(65537);
  for (let p = 0; p < words; p += stride) counts[(data[p] >>> 16) + 1]++;
  for (let d = 0; d < 65536; d++) counts[d + 1] += counts[d];
  const next = counts.slice(0, 65536);
  for (let p = 0; p < words; p += stride) {
    const q = next[data[p] >>> 16]++ * stride;
    for (let k = 0; k < stride; k++) tmp[q + k] = data[p + k];
  }
  data.set(tmp.subarray(0, words));
  const pool: Uint32Array[] = [];
  for (let d = 0; d < 65536; d++) {
    if (counts[d + 1] - counts[d] > 1) msd8(data, tmp, counts[d], counts[d + 1], 2, stride, keyWords, pool);
  }
}

/** Per-depth counters for msd8, reused across calls (a sort allocates them once). */
function countersFor(depth: number, pool: Uint32Array[]): Uint32Array {
  while (pool.length <= depth) pool.push(new Uint32Array(257));
  return pool[depth];
}

/** Sort records [from, to) that agree on the key bytes before `digit` (byte index, most significant first). */
function msd8(data: Uint32Array, tmp: Uint32Array, from: number, to: number, digit: number, stride: number, keyWords: number, pool: Uint32Array[] = []): void {
  const last = keyWords * 4;
  if (to - from <= SMALL) {
    if (to - from > 1 && digit < last) insertionSort(data, from, to, stride, keyWords);
    return;
  }
  const counts = countersFor(digit, pool);
  while (digit < last) {
    const w = digit >> 2;
    const shift = 24 - 8 * (digit & 3);
    counts.fill(0);
    for (let i = from; i < to; i++) counts[((data[i * stride + w] >>> shift) & 255) + 1]++;
    let single = false;
    for (let d = 0; d < 256; d++) {
      if (counts[d + 1] === to - from) single = true;
      counts[d + 1] += counts[d];
    }
    if (single) {
      // every record has this byte: look at the next one without moving anything
      digit++;
      continue;
    }
    // scatter into tmp by digit (counts[d] is the running position of digit d), then copy back
    for (let i = from; i < to; i++) {
      const p = i * stride;
      const q = (from + counts[(data[p + w] >>> shift) & 255]++) * stride;
      for (let k = 0; k < stride; k++) tmp[q + k] = data[p + k];
    }
    for (let k = from * stride; k < to * stride; k++) data[k] = tmp[k];
    // after the scatter counts[d] is the end of bucket d; bucket d starts at counts[d − 1] (0 for d = 0)
    let a = from;
    for (let d = 0; d < 256; d++) {
      const b = from + counts[d];
      if (b - a > 1) msd8(data, tmp, a, b, digit + 1, stride, keyWords, pool);
      a = b;
    }
    return;
  }
}

function insertionSort(data: Uint32Array, from: number, to: number, stride: number, keyWords: number): void {
  const rec = new Uint32Array(stride);
  for (let i = from + 1; i < to; i++) {
    if (compareRecords(data, i - 1, data, i, stride, keyWords) <= 0) continue;
    rec.set(data.subarray(i * stride, i * stride + stride));
    let j = i - 1;
    while (j >= from && compareRecords(data, j, rec, 0, stride, keyWords) > 0) {
      data.copyWithin((j + 1) * stride, j * stride, j * stride + stride);
      j--;
    }
    data.set(rec, (j + 1) * stride);
  }
}
