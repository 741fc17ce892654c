import { MimicError } from '../errors.js';

/**
 * How a model wants its images: side S, per-channel mean/std (on the 0..1 scale), and how a non-square image
 * becomes S×S. Comes from a bundle's model.json `image` section.
 */
export interface ImageSpec {
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
  /**
   * 'shortest': torchvision `Resize(S, BICUBIC)` + `CenterCrop(S)`, as OpenAI CLIP and OpenCLIP preprocess.
   * 'squash': `Resize((S, S), BICUBIC)`, both sides to S, aspect ratio not kept, nothing cropped.
   */
  resize: 'shortest' | 'squash';
}

/** OpenAI CLIP's normalisation, the usual bundle values. */
export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** Where the resized image lands and which S×S window of it is kept. */
export interface ResizeGeometry {
  width: number;
  height: number;
  left: number;
  top: number;
}

/** Python's round(): halves go to the even neighbour, which torchvision's CenterCrop inherits. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The resized size and crop offset torchvision computes: the longer side is truncated, not rounded
 * (`int(S * long / short)`), and the crop offset is `int(round((side - S) / 2.0))`. Matching these integers
 * exactly matters more than the filter: a one-pixel shift costs more than any interpolation difference.
 */
export function resizeGeometry(width: number, height: number, spec: ImageSpec): ResizeGeometry {
  const s = spec.size;
  if (spec.resize === 'squash') return { width: s, height: s, left: 0, top: 0 };
  let w: number;
  let h: number;
  if (width <= height) {
    w = s;
    h = Math.trunc((s * height) / width);
  } else {
    h = s;
    w = Math.trunc((s * width) / height);
  }
  return { width: w, height: h, left: roundHalfEven((w - s) / 2), top: roundHalfEven((h - s) / 2) };
}

/** Rejects a spec that cannot be right (a bundle typo), naming the field. */
export function checkImageSpec(spec: ImageSpec, file?: string): ImageSpec {
  const bad = (what: string): never => {
    throw new MimicError('E_BUNDLE', `image spec: ${what}`, {
      file,
      hint: 'model.json image must be {size, mean[3], std[3], resize: "shortest" | "squash"}',
    });
  };
  if (!Number.isInteger(spec.size) || spec.size < 1 || spec.size > 4096) bad(`size ${spec.size} is not an integer in 1..4096`);
  for (const key of ['mean', 'std'] as const) {
    const v = spec[key];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      bad(`${key} must be three finite numbers`);
    }
  }
  if (!spec.std.every((x) => x > 0)) bad('std must be positive');
  if (spec.resize !== 'shortest' && spec.resize !== 'squash') bad(`resize "${String(spec.resize)}" is not "shortest" or "squash"`);
  return spec;
}
