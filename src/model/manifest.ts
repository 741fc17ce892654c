/**
 * `model.json` of a `mimic-clip/1` bundle, checked by hand: every field's type and range, and unknown keys in the
 * fixed sections are errors (a misspelt `context_lenght` must not silently fall back to a default).
 */
import { MimicError } from '../errors.js';

export const BUNDLE_FORMAT = 'mimic-clip/1';

export type ResizeMode = 'shortest' | 'squash';
export type Interpolation = 'bicubic' | 'bilinear';

export interface ImageSpec {
  /** Side of the square input, S in pixel_values [B,3,S,S]. */
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
  /** 'shortest': shorter side to S then centre crop (CLIP); 'squash': both sides to S. */
  resize: ResizeMode;
  /** Resampling kernel; CLIP uses bicubic. */
  interpolation: Interpolation;
}

export interface TextSpec {
  tokenizer: 'clip-bpe';
  /** File name of the vocabulary inside the bundle folder. */
  vocab: string;
  context_length: number;
  pad_id: number;
}

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  name: string;
  image: ImageSpec;
  text: TextSpec;
  /** Optional file of fixed inputs and the source model's outputs, for `verifyBundle`. */
  check?: string;
  /** How the bundle was made (free-form provenance, e.g. the exporter's recipe). */
  source?: Record<string, unknown>;
  /**
   * Optional other builds of the encoders, by precision: same inputs and outputs (float32 features), other
   * arithmetic inside. `fp16` is written by `scripts/add-fp16` (or `export_bundle.py --fp16`).
   */
  variants?: { fp16?: EncoderFiles };
}

/** File names (inside the bundle folder) of one build of the two encoders. */
export interface EncoderFiles {
  visual: string;
  textual: string;
}

/** Precisions a bundle may carry encoder variants for. */
export const ENCODER_VARIANTS = ['fp16'] as const;
export type EncoderVariant = (typeof ENCODER_VARIANTS)[number];

const TOP_KEYS = new Set(['format', 'name', 'image', 'text', 'check', 'source', 'variants']);
const IMAGE_KEYS = new Set(['size', 'mean', 'std', 'resize', 'interpolation']);
const TEXT_KEYS = new Set(['tokenizer', 'vocab', 'context_length', 'pad_id']);

/** Validate parsed model.json; `file` is named in every error. */
export function validateManifest(json: unknown, file: string): BundleManifest {
  const fail = (what: string, hint?: string): never => {
    throw new MimicError('E_BUNDLE', `${file}: ${what}`, {
      file,
      hint: hint ?? 'see the bundle format (mimic-clip/1) in the README; scripts/export_bundle.py writes valid bundles',
    });
  };
  const obj = (v: unknown, where: string): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${where} must be an object`);
    return v as Record<string, unknown>;
  };
  const unknownKeys = (o: Record<string, unknown>, allowed: Set<string>, where: string): void => {
    const extra = Object.keys(o).filter((k) => !allowed.has(k));
    if (extra.length) fail(`unknown key${extra.length > 1 ? 's' : ''} ${extra.map((k) => `"${where}${k}"`).join(', ')}`);
  };
  const posInt = (v: unknown, where: string): number => {
    if (!Number.isSafeInteger(v) || (v as number) <= 0) fail(`${where} must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const str = (v: unknown, where: string): string => {
    if (typeof v !== 'string' || v.length === 0) fail(`${where} must be a non-empty string, got ${JSON.stringify(v)}`);
    return v as string;
  };
  const triple = (v: unknown, where: string, positive: boolean): [number, number, number] => {
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
      fail(`${where} must be three ${positive ? 'positive ' : ''}numbers (R, G, B), got ${JSON.stringify(v)}`);
    }
    return v as [number, number, number];
  };
  const oneOf = <T extends string>(v: unknown, allowed: readonly T[], where: string): T => {
    if (!allowed.includes(v as T)) fail(`${where} must be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  };

  const top = obj(json, 'the manifest');
  if (top.format !== BUNDLE_FORMAT) {
    fail(`format is ${JSON.stringify(top.format)}, this version of mimic reads "${BUNDLE_FORMAT}"`,
      'export the model again with scripts/export_bundle.py, or upgrade grad-mimic');
  }
  unknownKeys(top, TOP_KEYS, '');
  const image = obj(top.image, 'image');
  unknownKeys(image, IMAGE_KEYS, 'image.');
  const text = obj(top.text, 'text');
  unknownKeys(text, TEXT_KEYS, 'text.');

  const vocab = str(text.vocab, 'text.vocab');
  if (vocab.includes('/') || vocab.includes('\\') || vocab === '.' || vocab === '..') {
    fail(`text.vocab must be a file name inside the bundle folder, got ${JSON.stringify(vocab)}`);
  }
  const contextLength = posInt(text.context_length, 'text.context_length');
  if (contextLength < 2) fail(`text.context_length must be at least 2 (start and end tokens), got ${contextLength}`);
  const padId = text.pad_id;
  if (!Number.isSafeInteger(padId) || (padId as number) < 0) fail(`text.pad_id must be an integer >= 0, got ${JSON.stringify(padId)}`);
  let check: string | undefined;
  if (top.check !== undefined) {
    check = str(top.check, 'check');
    if (check.includes('/') || check.includes('\\')) fail(`check must be a file name inside the bundle folder`);
  }
  const source = top.source === undefined ? undefined : obj(top.source, 'source');
  let variants: BundleManifest['variants'];
  if (top.variants !== undefined) {
    const v = obj(top.variants, 'variants');
    unknownKeys(v, new Set(ENCODER_VARIANTS), 'variants.');
    variants = {};
    for (const k of ENCODER_VARIANTS) {
      if (v[k] === undefined) continue;
      const files = obj(v[k], `variants.${k}`);
      unknownKeys(files, new Set(['visual', 'textual']), `variants.${k}.`);
      const name = (x: unknown, where: string): string => {
        const f = str(x, where);
        if (f.includes('/') || f.includes('\\') || f === '.' || f === '..') fail(`${where} must be a file name inside the bundle folder, got ${JSON.stringify(f)}`);
        return f;
      };
      variants[k] = { visual: name(files.visual, `variants.${k}.visual`), textual: name(files.textual, `variants.${k}.textual`) };
    }
  }

  return {
    format: BUNDLE_FORMAT,
    name: str(top.name, 'name'),
    image: {
      size: posInt(image.size, 'image.size'),
      mean: triple(image.mean, 'image.mean', false),
      std: triple(image.std, 'image.std', true),
      resize: oneOf(image.resize, ['shortest', 'squash'] as const, 'image.resize'),
      interpolation: image.interpolation === undefined
        ? 'bicubic'
        : oneOf(image.interpolation, ['bicubic', 'bilinear'] as const, 'image.interpolation'),
    },
    text: {
      tokenizer: oneOf(text.tokenizer, ['clip-bpe'] as const, 'text.tokenizer'),
      vocab,
      context_length: contextLength,
      pad_id: padId as number,
    },
    ...(check === undefined ? {} : { check }),
    ...(source === undefined ? {} : { source }),
    ...(variants === undefined ? {} : { variants }),
  };
}
