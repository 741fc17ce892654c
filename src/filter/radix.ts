/**
 * Sorting fixed-width records held in a Uint32Array: each record is `stride` words, ordered by its first
 * `keyWords` words as unsigned numbers, most significant first (a 128-bit uid is four words, high word first).
 * LSD radix sort on 16-bit digits: stable, O(records × key digits), independent of the key distribution, and
 * passes whose digit is the same for every record are skipped.
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

/**
 * Sort the first `count` records of `data` in place (scratch: a buffer at least as large; allocated if absent).
 */
export function radixSortRecords(data: Uint32Array, count: number, stride: number, keyWords: number, scratch?: Uint32Array): void {
  if (count < 2) return;
  const words = count * stride;
  if (count < 1024) {
    // Small runs: a comparison sort costs less than clearing 65,536 counters per digit.
    const idx = Array.from({ length: count }, (_, i) => i);
    idx.sort((a, b) => compareRecords(data, a, data, b, stride, keyWords) || a - b);
    const copy = data.slice(0, words);
    for (let i = 0; i < count; i++) data.set(copy.subarray(idx[i] * stride, idx[i] * stride + stride), i * stride);
    return;
  }
  let src = data;
  let dst = scratch && scratch.length >= words ? scratch : new Uint32Array(words);
  const counts = new Uint32Array(65536);
  for (let w = keyWords - 1; w >= 0; w--) {
    for (let shift = 0; shift <= 16; shift += 16) {
      counts.fill(0);
      for (let i = 0, p = w; i < count; i++, p += stride) counts[(src[p] >>> shift) & 0xffff]++;
      // One digit value for every record: this pass would not move anything.
      const first = (src[w] >>> shift) & 0xffff;
      if (counts[first] === count) continue;
      let sum = 0;
      for (let d = 0; d < 65536; d++) {
        const c = counts[d];
        counts[d] = sum;
        sum += c;
      }
      if (stride === 4) {
        for (let p = 0; p < words; p += 4) {
          const q = counts[(src[p + w] >>> shift) & 0xffff]++ * 4;
          dst[q] = src[p];
          dst[q + 1] = src[p + 1];
          dst[q + 2] = src[p + 2];
          dst[q + 3] = src[p + 3];
        }
      } else {
        for (let p = 0; p < words; p += stride) {
          const q = counts[(src[p + w] >>> shift) & 0xffff]++ * stride;
          for (let k = 0; k < stride; k++) dst[q + k] = src[p + k];
        }
      }
      const t = src;
      src = dst;
      dst = t;
    }
  }
  if (src !== data) data.set(src.subarray(0, words));
}
