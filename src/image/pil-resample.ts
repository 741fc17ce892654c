/**
 * PIL's BICUBIC resampling (Pillow's Resample.c, 8-bit path) re-implemented so that results are bit-identical:
 * the same double-precision coefficients (Catmull-Rom, a = −0.5, support widened by the downscale factor,
 * normalised per output pixel), the same 22-bit fixed point, horizontal pass first with a uint8 intermediate.
 *
 * libvips upsizes through an interpolator that is not PIL's, which costs several LSB on small images
 * (measured: mean 7–10 LSB on 64-px photo crops), so upsizing always comes here; downsizing can, on request.
 * Only the pixels inside the crop window are computed: each output pixel depends on its own coefficients only,
 * so resize-then-crop equals computing the window alone.
 */

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);
const BICUBIC_SUPPORT = 2;

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coefficients {
  /** Per output index: first source index, number of taps. */
  start: Int32Array;
  count: Int32Array;
  /** outSize × ksize fixed-point weights. */
  weights: Int32Array;
  ksize: number;
}

function coefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubic((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? k[x]! / ww : k[x]!;
      weights[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  return { start, count, weights, ksize };
}

function clip8(v: number): number {
  const x = v >> PRECISION_BITS;
  return x < 0 ? 0 : x > 255 ? 255 : x;
}

/**
 * Resizes RGB `src` (w×h×3) to outW×outH as PIL's `Image.resize((outW, outH), BICUBIC)` and returns the
 * size×size window at (left, top) of the result, as RGB.
 */
export function pilBicubicResizeCrop(
  src: Uint8Array,
  w: number,
  h: number,
  outW: number,
  outH: number,
  left: number,
  top: number,
  size: number,
): Uint8Array {
  const out = new Uint8Array(size * size * 3);
  const needH = outW !== w;
  const needV = outH !== h;
  const vc = needV ? coefficients(h, outH) : undefined;
  // Source rows the vertical pass reads for the window's rows.
  let yFirst = top;
  let yLast = top + size;
  if (vc) {
    yFirst = vc.start[top]!;
    yLast = 0;
    for (let yy = top; yy < top + size; yy++) yLast = Math.max(yLast, vc.start[yy]! + vc.count[yy]!);
  }
  const rows = yLast - yFirst;
  // Horizontal pass: the window's columns for every needed row (or those columns copied as they are).
  const mid = new Uint8Array(rows * size * 3);
  if (needH) {
    const hc = coefficients(w, outW);
    const { start, count, weights, ksize } = hc;
    for (let r = 0; r < rows; r++) {
      const rowBase = (yFirst + r) * w * 3;
      let o = r * size * 3;
      for (let xx = left; xx < left + size; xx++) {
        const n = count[xx]!;
        const kb = xx * ksize;
        let p = rowBase + start[xx]! * 3;
        let s0 = HALF;
        let s1 = HALF;
        let s2 = HALF;
        for (let x = 0; x < n; x++, p += 3) {
          const kx = weights[kb + x]!;
          s0 += src[p]! * kx;
          s1 += src[p + 1]! * kx;
          s2 += src[p + 2]! * kx;
        }
        mid[o++] = clip8(s0);
        mid[o++] = clip8(s1);
        mid[o++] = clip8(s2);
      }
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const from = ((yFirst + r) * w + left) * 3;
      mid.set(src.subarray(from, from + size * 3), r * size * 3);
    }
  }
  if (!vc) {
    out.set(mid.subarray(0, size * size * 3));
    return out;
  }
  // Vertical pass over the intermediate rows.
  const { start, count, weights, ksize } = vc;
  const stride = size * 3;
  for (let yy = top; yy < top + size; yy++) {
    const n = count[yy]!;
    const kb = yy * ksize;
    const base = (start[yy]! - yFirst) * stride;
    const o = (yy - top) * stride;
    for (let c = 0; c < stride; c++) {
      let s = HALF;
      let p = base + c;
      for (let y = 0; y < n; y++, p += stride) s += mid[p]! * weights[kb + y]!;
      out[o + c] = clip8(s);
    }
  }
  return out;
}
