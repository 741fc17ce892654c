/**
 * Exact order statistics of float32 columns at any pool size, in memory that does not grow with the pool.
 *
 * A float32's bit pattern, with the sign bit flipped for positives and every bit flipped for negatives, is an
 * unsigned 32-bit key in the same order as the numbers. Pass 1 counts keys by their high 16 bits (65,536
 * float64 counters, 512 KiB per column); the bucket holding a wanted rank is then known, and pass 2 counts the
 * low 16 bits of the keys in that bucket only (another 512 KiB per bucket). The two counts name the exact key,
 * hence the exact value, and how many values lie below, at and above it — whatever the distribution, ties
 * included. NaN is not a value here: it is counted apart and excluded, as numpy.nanpercentile would.
 */

const SIGN = 0x80000000;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The order-preserving key of a float32 value (−0 is keyed as +0, so equal numbers share one key). */
export function floatKey(value: number): number {
  f32[0] = value === 0 ? 0 : value;
  const bits = u32[0];
  return (bits & SIGN ? ~bits : bits | SIGN) >>> 0;
}

/** The float32 value of a key (inverse of floatKey). */
export function keyFloat(key: number): number {
  u32[0] = (key & SIGN ? key & ~SIGN : ~key) >>> 0;
  return f32[0];
}

/**
 * Bit patterns of a float32 array as order keys, written into `out` (NaN → 0xffffffff with `nan` set to 1,
 * which is above every real key and so never confused with one once excluded by the caller).
 */
export function keysOf(values: Float32Array, out: Uint32Array): void {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i];
    out[i] = b === SIGN ? SIGN : (b & SIGN ? ~b : b | SIGN) >>> 0;
  }
}

/*
 * The hot loops read a float's bits b as an int32 so that everything stays a small integer for V8. The key
 * b ^ ((b >> 31) | 0x80000000) flips every bit of a negative and the sign bit of a positive; −0 is first
 * mapped to +0. NaN: (b & 0x7fffffff) > 0x7f800000.
 */
function addHigh(bits: Int32Array, mask: Uint8Array | null, counts: Float64Array): number {
  let nan = 0;
  for (let i = 0; i < bits.length; i++) {
    if (mask !== null && mask[i] === 0) continue;
    let b = bits[i];
    if ((b & 0x7fffffff) > 0x7f800000) {
      nan++;
      continue;
    }
    if (b === -2147483648) b = 0;
    counts[(b ^ ((b >> 31) | -2147483648)) >>> 16]++;
  }
  return nan;
}

/** addHigh, and the low 16 bits of keys whose high part h has lo ≤ h < lo + width into low[(h − lo)·65536 + …]. */
function addHighWindow(bits: Int32Array, mask: Uint8Array | null, counts: Float64Array, lo: number, width: number, low: Uint32Array): number {
  let nan = 0;
  for (let i = 0; i < bits.length; i++) {
    if (mask !== null && mask[i] === 0) continue;
    let b = bits[i];
    if ((b & 0x7fffffff) > 0x7f800000) {
      nan++;
      continue;
    }
    if (b === -2147483648) b = 0;
    const k = b ^ ((b >> 31) | -2147483648);
    const h = k >>> 16;
    counts[h]++;
    // One unsigned comparison: rarely true and well predicted (lo ≤ h was true for a large share of rows).
    if ((h - lo) >>> 0 < width) low[(k - (lo << 16)) >>> 0]++;
  }
  return nan;
}

function addLow(bits: Int32Array, mask: Uint8Array | null, bucket: number, counts: Float64Array): void {
  for (let i = 0; i < bits.length; i++) {
    if (mask !== null && mask[i] === 0) continue;
    let b = bits[i];
    if ((b & 0x7fffffff) > 0x7f800000) continue;
    if (b === -2147483648) b = 0;
    const k = b ^ ((b >> 31) | -2147483648);
    if (k >>> 16 === bucket) counts[k & 0xffff]++;
  }
}

function countOnesMasked(m: Uint8Array | null, n: number): number {
  if (m === null) return n;
  let c = 0;
  for (let i = 0; i < m.length; i++) c += m[i];
  return c;
}

/** First-pass counts of one column: keys by their high 16 bits. */
export class HighHistogram {
  readonly counts = new Float64Array(65536);
  /** Values counted (NaN excluded). */
  n = 0;
  nan = 0;

  /**
   * Count the rows i with mask[i] set (mask may be null for all rows); with a window, also count the low bits
   * of the keys that fall in its high buckets.
   */
  add(values: Float32Array, mask: Uint8Array | null, window?: WindowHistogram): void {
    const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
    if (window) window.rows += values.length;
    const nan = window ? addHighWindow(bits, mask, this.counts, window.lo, window.width, window.counts) : addHigh(bits, mask, this.counts);
    this.n += countOnesMasked(mask, values.length) - nan;
    this.nan += nan;
  }

  /** Add another histogram's counts (a worker thread's share of the pool). */
  merge(counts: Float64Array, n: number, nan: number): void {
    for (let b = 0; b < 65536; b++) this.counts[b] += counts[b];
    this.n += n;
    this.nan += nan;
  }

  /** The high bucket holding the value of 0-based rank r, and the count of values in lower buckets. */
  locate(r: number): { bucket: number; below: number } {
    if (!(r >= 0 && r < this.n)) throw new RangeError(`rank ${r} outside 0..${this.n - 1}`);
    let below = 0;
    for (let b = 0; b < 65536; b++) {
      const c = this.counts[b];
      if (below + c > r) return { bucket: b, below };
      below += c;
    }
    throw new Error('histogram counts are inconsistent');
  }
}

/**
 * Low counts of a few neighbouring high buckets [lo, lo + width), counted during the first pass: when a wanted
 * rank falls in one of them, its exact value is known without a second pass. The buckets are guessed from a
 * sample of the pool (select.ts); a wrong guess costs the second pass, never exactness. Counts are uint32
 * (256 KiB per bucket): a thread stops trusting its window once it has counted 2^32 − 1 rows, which the
 * filter checks before using it.
 */
export class WindowHistogram {
  readonly counts: Uint32Array;
  /** Rows offered to this window (an upper bound of any count in it). */
  rows = 0;

  constructor(readonly lo: number, readonly width: number) {
    if (!(width >= 1 && lo >= 0 && lo + width <= 65536)) throw new RangeError(`bad window ${lo}+${width}`);
    this.counts = new Uint32Array(width << 16);
  }

  /** Whether no count can have wrapped around. */
  get exact(): boolean {
    return this.rows <= 0xffffffff;
  }

  covers(bucket: number): boolean {
    return bucket >= this.lo && bucket < this.lo + this.width;
  }

  /** The low histogram of one covered bucket. */
  low(bucket: number, below: number): LowHistogram {
    const d = bucket - this.lo;
    return new LowHistogram(bucket, below, Float64Array.from(this.counts.subarray(d << 16, (d + 1) << 16)));
  }
}

/** Per-thread windows added up, in float64 (a pool may hold more than 2^32 rows). */
export class MergedWindow {
  readonly counts: Float64Array;
  exact = true;

  constructor(readonly lo: number, readonly width: number) {
    this.counts = new Float64Array(width << 16);
  }

  merge(counts: Uint32Array, exact: boolean): void {
    if (!exact) this.exact = false;
    for (let k = 0; k < this.counts.length; k++) this.counts[k] += counts[k];
  }

  covers(bucket: number): boolean {
    return this.exact && bucket >= this.lo && bucket < this.lo + this.width;
  }

  low(bucket: number, below: number): LowHistogram {
    const d = bucket - this.lo;
    return new LowHistogram(bucket, below, this.counts.subarray(d << 16, (d + 1) << 16));
  }
}

/** Second-pass counts: low 16 bits of the keys that fall in one high bucket. */
export class LowHistogram {
  readonly counts: Float64Array;

  constructor(readonly bucket: number, readonly below: number, counts?: Float64Array) {
    this.counts = counts ?? new Float64Array(65536);
  }

  merge(counts: Float64Array): void {
    for (let k = 0; k < 65536; k++) this.counts[k] += counts[k];
  }

  add(values: Float32Array, mask: Uint8Array | null): void {
    addLow(new Int32Array(values.buffer, values.byteOffset, values.length), mask, this.bucket, this.counts);
  }

  /**
   * The exact value at 0-based pool rank r (which must fall in this bucket), with the counts of values below
   * and equal to it.
   */
  at(r: number): RankedValue {
    let cum = this.below;
    for (let lo = 0; lo < 65536; lo++) {
      const c = this.counts[lo];
      if (cum + c > r) {
        const key = ((this.bucket << 16) | lo) >>> 0;
        return { value: keyFloat(key), key, less: cum, equal: c };
      }
      cum += c;
    }
    throw new Error(`rank ${r} is not in high bucket ${this.bucket}`);
  }
}

export interface RankedValue {
  value: number;
  key: number;
  /** Values strictly below `value`. */
  less: number;
  /** Values equal to `value` (ties). */
  equal: number;
}

/**
 * numpy.percentile(x, q, method='linear') given the order statistics it interpolates between, reproducing
 * numpy 1.24's arithmetic: virtual index (n−1)·(q/100), the difference of the two neighbours taken in the
 * input's precision (float32), the interpolation in float64, and the `t ≥ 0.5` branch of numpy's _lerp.
 */
export function linearPercentile(q: number, n: number, at: (rank: number) => number): number {
  const { lo, hi, gamma } = percentileRanks(q, n);
  const a = at(lo);
  const b = at(hi);
  const diff = Math.fround(b - a);
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

/** The two ranks numpy's linear method reads for percentile q of n values, and its interpolation weight. */
export function percentileRanks(q: number, n: number): { lo: number; hi: number; gamma: number } {
  if (n <= 0) throw new RangeError('percentile of no values');
  const v = (n - 1) * (q / 100);
  let prev = Math.floor(v);
  let next = prev + 1;
  if (v >= n - 1) {
    // numpy points both neighbours at the last element (index −1) and keeps the weight v − (−1).
    prev = -1;
    next = -1;
  } else if (v < 0) {
    prev = 0;
    next = 0;
  }
  const gamma = v - prev;
  const lo = prev < 0 ? n - 1 : prev;
  const hi = next < 0 ? n - 1 : next;
  return { lo, hi, gamma };
}
