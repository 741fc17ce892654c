/**
 * Row sets as bitmaps: bit i of word i >> 5 is row i (Int32Array words, bits past the last row are 0 unless a
 * function says otherwise). The final pass of the filter combines rules, counts matches and overlaps on whole
 * words, 32 rows per operation; only the loops that look at values (comparisons, NaN tests, the ok test) touch
 * each row. Each loop is a small function of its own so that V8 optimises it alone.
 */

export function wordsFor(n: number): number {
  return (n + 31) >>> 5;
}

/** Set bits of a 32-bit word. */
export function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

export function countBits(a: Int32Array): number {
  let c = 0;
  for (let w = 0; w < a.length; w++) c += popcount(a[w]);
  return c;
}

/** |a ∧ b| */
export function countAndBits(a: Int32Array, b: Int32Array): number {
  let c = 0;
  for (let w = 0; w < a.length; w++) c += popcount(a[w] & b[w]);
  return c;
}

/** |a ∧ b ∧ c| */
export function countAnd3Bits(a: Int32Array, b: Int32Array, c: Int32Array): number {
  let n = 0;
  for (let w = 0; w < a.length; w++) n += popcount(a[w] & b[w] & c[w]);
  return n;
}

export function andBits(out: Int32Array, a: Int32Array): void {
  for (let w = 0; w < out.length; w++) out[w] &= a[w];
}

export function andNotBits(out: Int32Array, a: Int32Array): void {
  for (let w = 0; w < out.length; w++) out[w] &= ~a[w];
}

export function orBits(out: Int32Array, a: Int32Array): void {
  for (let w = 0; w < out.length; w++) out[w] |= a[w];
}

/** out = ¬a over rows 0..n−1 (bits past n stay 0). */
export function notBits(out: Int32Array, a: Int32Array, n: number): void {
  for (let w = 0; w < out.length; w++) out[w] = ~a[w];
  clearTail(out, n);
}

/** Zero the bits of rows ≥ n in the last word. */
export function clearTail(a: Int32Array, n: number): void {
  if (n & 31) a[n >>> 5] &= (1 << (n & 31)) - 1;
}

/** All rows 0..n−1 set. */
export function allBits(n: number): Int32Array {
  const out = new Int32Array(wordsFor(n)).fill(-1);
  clearTail(out, n);
  return out;
}

/** Bits of a 0/1 byte mask. */
export function packBits(m: Uint8Array, out: Int32Array): void {
  const n = m.length;
  const full = n >>> 5;
  for (let w = 0; w < full; w++) {
    const base = w << 5;
    let bits = 0;
    for (let k = 31; k >= 0; k--) bits = (bits << 1) | (m[base + k] & 1);
    out[w] = bits;
  }
  if (n & 31) {
    let bits = 0;
    for (let i = n - 1; i >= full << 5; i--) bits = (bits << 1) | (m[i] & 1);
    out[full] = bits;
  }
}

/** A 0/1 byte per row from bits. */
export function unpackBits(a: Int32Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (a[i >>> 5] >>> (i & 31)) & 1;
  return out;
}

/** Rows whose bit is set, in increasing order. */
export function setRows(a: Int32Array): Uint32Array {
  const out = new Uint32Array(countBits(a));
  let k = 0;
  for (let w = 0; w < a.length; w++) {
    let x = a[w];
    while (x !== 0) {
      const low = x & -x;
      out[k++] = (w << 5) + 31 - Math.clz32(low);
      x ^= low;
    }
  }
  return out;
}

/*
 * Comparisons of a float32 column with a constant, 32 rows per word; NaN compares false (IEEE). The rows are
 * accumulated from the highest down so that each step is one shift and one or, without a branch.
 */
export function geBits(v: Float32Array, t: number, out: Int32Array): void {
  const n = v.length;
  const full = n >>> 5;
  for (let w = 0; w < full; w++) {
    const base = w << 5;
    let bits = 0;
    for (let k = base + 31; k >= base; k--) bits = (bits << 1) | (v[k] >= t ? 1 : 0);
    out[w] = bits;
  }
  for (let i = full << 5, bits = 0, k = n - 1; k >= i; k--) {
    bits = (bits << 1) | (v[k] >= t ? 1 : 0);
    if (k === i) out[full] = bits;
  }
}

export function gtBits(v: Float32Array, t: number, out: Int32Array): void {
  const n = v.length;
  const full = n >>> 5;
  for (let w = 0; w < full; w++) {
    const base = w << 5;
    let bits = 0;
    for (let k = base + 31; k >= base; k--) bits = (bits << 1) | (v[k] > t ? 1 : 0);
    out[w] = bits;
  }
  for (let i = full << 5, bits = 0, k = n - 1; k >= i; k--) {
    bits = (bits << 1) | (v[k] > t ? 1 : 0);
    if (k === i) out[full] = bits;
  }
}

export function leBits(v: Float32Array, t: number, out: Int32Array): void {
  const n = v.length;
  const full = n >>> 5;
  for (let w = 0; w < full; w++) {
    const base = w << 5;
    let bits = 0;
    for (let k = base + 31; k >= base; k--) bits = (bits << 1) | (v[k] <= t ? 1 : 0);
    out[w] = bits;
  }
  for (let i = full << 5, bits = 0, k = n - 1; k >= i; k--) {
    bits = (bits << 1) | (v[k] <= t ? 1 : 0);
    if (k === i) out[full] = bits;
  }
}

export function ltBits(v: Float32Array, t: number, out: Int32Array): void {
  const n = v.length;
  const full = n >>> 5;
  for (let w = 0; w < full; w++) {
    const base = w << 5;
    let bits = 0;
    for (let k = base + 31; k >= base; k--) bits = (bits << 1) | (v[k] < t ? 1 : 0);
    out[w] = bits;
  }
  for (let i = full << 5, bits = 0, k = n - 1; k >= i; k--) {
    bits = (bits << 1) | (v[k] < t ? 1 : 0);
    if (k === i) out[full] = bits;
  }
}

export function eqBits(v: Float32Array, t: number, out: Int32Array): void {
  const n = v.length;
  const full = n >>> 5;
  for (let w = 0; w < full; w++) {
    const base = w << 5;
    let bits = 0;
    for (let k = base + 31; k >= base; k--) bits = (bits << 1) | (v[k] === t ? 1 : 0);
    out[w] = bits;
  }
  for (let i = full << 5, bits = 0, k = n - 1; k >= i; k--) {
    bits = (bits << 1) | (v[k] === t ? 1 : 0);
    if (k === i) out[full] = bits;
  }
}

/** != is false when either side is missing (NaN), unlike IEEE's NaN != x. */
export function neBits(v: Float32Array, t: number, out: Int32Array): void {
  const n = v.length;
  const full = n >>> 5;
  if (t !== t) {
    out.fill(0);
    return;
  }
  for (let w = 0; w < full; w++) {
    const base = w << 5;
    let bits = 0;
    for (let k = base + 31; k >= base; k--) {
      const x = v[k];
      bits = (bits << 1) | (x === x && x !== t ? 1 : 0);
    }
    out[w] = bits;
  }
  for (let i = full << 5, bits = 0, k = n - 1; k >= i; k--) {
    const x = v[k];
    bits = (bits << 1) | (x === x && x !== t ? 1 : 0);
    if (k === i) out[full] = bits;
  }
}

/** Rows whose value is present (not NaN). */
export function presentBits(v: Float32Array, out: Int32Array): void {
  const n = v.length;
  const full = n >>> 5;
  for (let w = 0; w < full; w++) {
    const base = w << 5;
    let bits = 0;
    for (let k = base + 31; k >= base; k--) {
      const x = v[k];
      bits = (bits << 1) | (x === x ? 1 : 0);
    }
    out[w] = bits;
  }
  for (let i = full << 5, bits = 0, k = n - 1; k >= i; k--) {
    const x = v[k];
    bits = (bits << 1) | (x === x ? 1 : 0);
    if (k === i) out[full] = bits;
  }
}

/** Rows whose value is exactly 1 (true in a boolean column stored as 1/0/NaN). */
export function trueBits(v: Float32Array, out: Int32Array): void {
  eqBits(v, 1, out);
}

/**
 * A comparison with a constant and the present (not NaN) rows of the same column in one loop: the final pass
 * needs both for most columns, and reading the values once halves the work. Returns the present rows' bits in
 * `present`, the comparison's in `out`.
 */
export function compareAndPresentBits(v: Float32Array, op: string, t: number, out: Int32Array, present: Int32Array): void {
  switch (op) {
    case '>=': return gePresent(v, t, out, present);
    case '>': return gtPresent(v, t, out, present);
    case '<=': return lePresent(v, t, out, present);
    case '<': return ltPresent(v, t, out, present);
    case '==': return eqPresent(v, t, out, present);
    default:
      neBits(v, t, out);
      presentBits(v, present);
  }
}

function gePresent(v: Float32Array, t: number, out: Int32Array, present: Int32Array): void {
  const n = v.length;
  for (let base = 0; base < n; base += 32) {
    let c = 0;
    let p = 0;
    for (let k = Math.min(n, base + 32) - 1; k >= base; k--) {
      const x = v[k];
      c = (c << 1) | (x >= t ? 1 : 0);
      p = (p << 1) | (x === x ? 1 : 0);
    }
    out[base >>> 5] = c;
    present[base >>> 5] = p;
  }
}

function gtPresent(v: Float32Array, t: number, out: Int32Array, present: Int32Array): void {
  const n = v.length;
  for (let base = 0; base < n; base += 32) {
    let c = 0;
    let p = 0;
    for (let k = Math.min(n, base + 32) - 1; k >= base; k--) {
      const x = v[k];
      c = (c << 1) | (x > t ? 1 : 0);
      p = (p << 1) | (x === x ? 1 : 0);
    }
    out[base >>> 5] = c;
    present[base >>> 5] = p;
  }
}

function lePresent(v: Float32Array, t: number, out: Int32Array, present: Int32Array): void {
  const n = v.length;
  for (let base = 0; base < n; base += 32) {
    let c = 0;
    let p = 0;
    for (let k = Math.min(n, base + 32) - 1; k >= base; k--) {
      const x = v[k];
      c = (c << 1) | (x <= t ? 1 : 0);
      p = (p << 1) | (x === x ? 1 : 0);
    }
    out[base >>> 5] = c;
    present[base >>> 5] = p;
  }
}

function ltPresent(v: Float32Array, t: number, out: Int32Array, present: Int32Array): void {
  const n = v.length;
  for (let base = 0; base < n; base += 32) {
    let c = 0;
    let p = 0;
    for (let k = Math.min(n, base + 32) - 1; k >= base; k--) {
      const x = v[k];
      c = (c << 1) | (x < t ? 1 : 0);
      p = (p << 1) | (x === x ? 1 : 0);
    }
    out[base >>> 5] = c;
    present[base >>> 5] = p;
  }
}

function eqPresent(v: Float32Array, t: number, out: Int32Array, present: Int32Array): void {
  const n = v.length;
  for (let base = 0; base < n; base += 32) {
    let c = 0;
    let p = 0;
    for (let k = Math.min(n, base + 32) - 1; k >= base; k--) {
      const x = v[k];
      c = (c << 1) | (x === t ? 1 : 0);
      p = (p << 1) | (x === x ? 1 : 0);
    }
    out[base >>> 5] = c;
    present[base >>> 5] = p;
  }
}
