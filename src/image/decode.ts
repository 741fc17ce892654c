import sharp, { type Metadata, type OutputInfo, type Sharp, type SharpOptions } from 'sharp';
import { DEFAULTS } from '../defaults.js';
import { ImageDecodeError } from './errors.js';
import { gifTransparentColour } from './gif-header.js';
import { readJpegFrame } from './jpeg-header.js';
import { decodeJpegRgb } from './jpeg-wasm.js';
import { pilBicubicResizeCrop } from './pil-resample.js';
import { ensureSharpConfigured } from './sharp-setup.js';
import { resizeGeometry, type ImageSpec, type ResizeGeometry } from './spec.js';

export type FailOn = 'none' | 'truncated' | 'error' | 'warning';

export interface DecodeOptions {
  /** Refuse images with more pixels than this (0 or Infinity: no limit). */
  limitInputPixels?: number;
  /** sharp's failOn: how bad pixel data must be to fail. */
  failOn?: FailOn;
  /** Allow JPEG DCT shrink-on-load (faster on large downscales, further from PIL). */
  fastShrinkOnLoad?: boolean;
  /**
   * Who resizes: 'pil' is a bit-exact re-implementation of PIL's bicubic in JavaScript (slower on large
   * downscales), 'libvips' is sharp's resize (fast, a few LSB from PIL, and far from it when upsizing), 'auto'
   * uses libvips to shrink and the PIL re-implementation to enlarge.
   */
  resampler?: 'auto' | 'pil' | 'libvips';
  /**
   * Who decodes plain 8-bit JPEGs: 'wasm' (src/image/jpeg-wasm.ts: the same pixels, 1.3–1.5× the images per
   * CPU-second, but it blocks the calling thread) or 'libvips' (sharp, on libuv's thread pool; the default, as
   * callers expect decodes to run beside their thread). Other formats,
   * large JPEGs, JPEGs that libvips shrinks (it decodes and resizes in one call, which is faster) and any JPEG
   * the wasm decoder warns about go to libvips either way.
   */
  jpegDecoder?: 'wasm' | 'libvips';
  /** Formats accepted, as sharp's metadata names them. */
  formats?: readonly string[];
  /** Named in error messages (e.g. `shard.tar:key.jpg`). */
  file?: string;
}

/** What the source image was, for logs and for filters that look at original sizes. */
export interface SourceInfo {
  format: string;
  width: number;
  height: number;
  /** libvips' interpretation before conversion: 'srgb', 'b-w', 'cmyk', 'rgb16', 'grey16', ... */
  space: string;
  channels: number;
  hasAlpha: boolean;
  /** Frames in an animated image; only the first is used. */
  pages: number;
}

export interface DecodedImage {
  /** S×S×3 RGB, row-major, uint8 (HWC). */
  pixels: Buffer;
  source: SourceInfo;
}

const PIXEL_LIMIT_MESSAGE = 'exceeds pixel limit';

function limitOf(opts: DecodeOptions): number | false {
  const limit = opts.limitInputPixels ?? DEFAULTS.image.limitInputPixels;
  return limit > 0 && Number.isFinite(limit) ? limit : false;
}

function inputOptions(opts: DecodeOptions): SharpOptions {
  return {
    limitInputPixels: limitOf(opts),
    failOn: opts.failOn ?? DEFAULTS.image.failOn,
    // PIL ignores embedded ICC profiles, and so does OpenAI's preprocessing; converting through them would
    // change the pixels the model was trained on (and costs time).
    ignoreIcc: true,
    // PIL does not apply EXIF orientation on open; neither do we (sharp's default, stated for the reader).
    autoOrient: false,
  };
}

function decodeError(opts: DecodeOptions, what: string, cause?: unknown): ImageDecodeError {
  return new ImageDecodeError('decode_error', `image could not be decoded: ${what}`, {
    file: opts.file,
    cause,
    hint: 'the sample is recorded as decode_error and skipped',
  });
}

function tooLarge(opts: DecodeOptions, width: number | undefined, height: number | undefined): ImageDecodeError {
  const limit = limitOf(opts);
  const size = width && height ? `${width}×${height} = ${(width * height).toLocaleString('en-US')} pixels` : 'the image';
  return new ImageDecodeError('image_too_large', `${size} is over the limit of ${Number(limit).toLocaleString('en-US')} pixels`, {
    file: opts.file,
    hint: 'a possible decompression bomb; raise image.limitInputPixels (--limit-input-pixels) if such images are expected',
  });
}

async function headerDimensions(bytes: Uint8Array): Promise<{ width?: number; height?: number }> {
  try {
    const m = await sharp(bytes, { limitInputPixels: false }).metadata();
    return { width: m.width, height: m.pageHeight ?? m.height };
  } catch {
    return {};
  }
}

function rethrow(e: unknown, bytes: Uint8Array, opts: DecodeOptions): Promise<never> {
  const message = e instanceof Error ? e.message : String(e);
  if (message.includes(PIXEL_LIMIT_MESSAGE)) {
    return headerDimensions(bytes).then(({ width, height }) => {
      // The message may be another image's (libvips' error buffer is shared): believe it only if the header agrees.
      const limit = limitOf(opts);
      if (width && height && limit !== false && width * height <= limit) throw decodeError(opts, stableReason(bytes), e);
      throw tooLarge(opts, width, height);
    });
  }
  throw decodeError(opts, stableReason(bytes), e);
}

/** The container the first bytes announce, as sharp names formats. */
function sniffFormat(b: Uint8Array): string | undefined {
  const at = (i: number, ...v: number[]) => v.every((x, k) => b[i + k] === x);
  if (at(0, 0xff, 0xd8, 0xff)) return 'jpeg';
  if (at(0, 0x89, 0x50, 0x4e, 0x47)) return 'png';
  if (at(0, 0x47, 0x49, 0x46, 0x38)) return 'gif';
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'webp';
  if (at(0, 0x49, 0x49, 0x2a, 0x00) || at(0, 0x4d, 0x4d, 0x00, 0x2a)) return 'tiff';
  return undefined;
}

/**
 * What went wrong, in words that depend only on the bytes. libvips keeps one error buffer for all its threads,
 * so its message for one image can carry lines of another image's failure; the text ends up in the score files,
 * which must be the same on every run. libvips' own words stay on the error's cause.
 */
function stableReason(bytes: Uint8Array): string {
  if (bytes.length === 0) return 'the image member is empty';
  const format = sniffFormat(bytes);
  if (format === undefined) {
    const head = Array.from(bytes.subarray(0, 4), (x) => x.toString(16).padStart(2, '0')).join(' ');
    return `not an image in a known format (${bytes.length} bytes, starting ${head})`;
  }
  return `${format} data is ${endsEarly(format, bytes) ? 'truncated' : 'corrupt'} (${bytes.length} bytes)`;
}

/** Whether the file lacks its format's end marker (JPEG EOI, PNG IEND), i.e. was cut short. */
function endsEarly(format: string, b: Uint8Array): boolean {
  const tail = b.subarray(Math.max(0, b.length - 64));
  const has = (...seq: number[]) => tail.some((_, i) => seq.every((x, k) => tail[i + k] === x));
  if (format === 'jpeg') return !has(0xff, 0xd9);
  if (format === 'png') return !has(0x49, 0x45, 0x4e, 0x44);
  return false;
}

function checkLimit(width: number, height: number, opts: DecodeOptions): void {
  const limit = limitOf(opts);
  if (limit !== false && width * height > limit) throw tooLarge(opts, width, height);
}

/** The common case, an 8-bit Huffman-coded grey or colour JPEG, read without a trip through sharp. */
function fastJpegSource(bytes: Uint8Array, opts: DecodeOptions): SourceInfo | undefined {
  const f = readJpegFrame(bytes);
  if (!f || f.precision !== 8 || f.marker > 0xc2 || (f.components !== 3 && f.components !== 1)) return undefined;
  if (!(opts.formats ?? DEFAULTS.image.formats).includes('jpeg')) return undefined;
  checkLimit(f.width, f.height, opts);
  return {
    format: 'jpeg',
    width: f.width,
    height: f.height,
    space: f.components === 1 ? 'b-w' : 'srgb',
    channels: f.components,
    hasAlpha: false,
    pages: 1,
  };
}

/** The source, and whether the wasm decoder takes it (an 8-bit grey or colour JPEG of at most wasmJpegMaxPixels). */
interface ReadSource {
  source: SourceInfo;
  wasm: boolean;
}

async function readSource(bytes: Uint8Array, opts: DecodeOptions): Promise<ReadSource> {
  const fast = fastJpegSource(bytes, opts);
  if (fast) {
    const wasm = (opts.jpegDecoder ?? DEFAULTS.image.jpegDecoder) === 'wasm' && fast.width * fast.height <= DEFAULTS.image.wasmJpegMaxPixels;
    return { source: fast, wasm };
  }
  let m: Metadata;
  try {
    m = await sharp(bytes, inputOptions(opts)).metadata();
  } catch (e) {
    return rethrow(e, bytes, opts);
  }
  const formats = opts.formats ?? DEFAULTS.image.formats;
  if (!formats.includes(m.format)) {
    throw decodeError(opts, `format "${m.format}" is not one of ${formats.join(', ')}`);
  }
  // With the default pages: 1, sharp reports the first frame's size for animated images.
  const width = m.width;
  const height = m.pageHeight ?? m.height;
  if (!width || !height) throw decodeError(opts, 'no image dimensions in the header');
  checkLimit(width, height, opts);
  const source: SourceInfo = {
    format: m.format,
    width,
    height,
    space: m.space ?? 'srgb',
    channels: m.channels ?? 3,
    hasAlpha: m.hasAlpha ?? false,
    pages: m.pages ?? 1,
  };
  return { source, wasm: false };
}

/** Full-size RGB from the wasm decoder, or undefined where sharp must decode (see jpeg-wasm.ts). */
function wasmRgb(bytes: Uint8Array, source: SourceInfo, wasm: boolean): Promise<Buffer | undefined> | undefined {
  return wasm ? decodeJpegRgb(bytes, source.width, source.height) : undefined;
}

function resizeAndCrop(pipeline: Sharp, source: SourceInfo, g: ResizeGeometry, size: number, opts: DecodeOptions): Sharp {
  if (g.width !== source.width || g.height !== source.height) {
    pipeline = pipeline.resize(g.width, g.height, {
      fit: 'fill',
      // Catmull-Rom (a = -0.5), the cubic PIL's BICUBIC uses; libvips widens it on downscale like PIL does.
      kernel: 'cubic',
      fastShrinkOnLoad: opts.fastShrinkOnLoad ?? DEFAULTS.image.fastShrinkOnLoad,
    });
  }
  if (g.width !== size || g.height !== size) {
    pipeline = pipeline.extract({ left: g.left, top: g.top, width: size, height: size });
  }
  return pipeline;
}

async function toRgb(pipeline: Sharp, width: number, height: number, bytes: Uint8Array, opts: DecodeOptions): Promise<Buffer> {
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await pipeline.toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    return rethrow(e, bytes, opts);
  }
  const { info } = out;
  if (info.channels !== 3 || info.width !== width || info.height !== height) {
    throw decodeError(opts, `unexpected decoded layout ${info.width}×${info.height}×${info.channels}`);
  }
  return out.data;
}

/**
 * PIL's CMYK → RGB (`Image.convert('RGB')`): R = (255 − C)(255 − K)/255 with its integer rounding. Naive, but
 * it is what CLIP models saw; libvips would go through an ICC profile and give other colours.
 */
function cmykToRgbLikePil(cmyk: Buffer, pixels: number, channels: number): Buffer {
  const rgb = Buffer.allocUnsafe(pixels * 3);
  for (let i = 0, j = 0; i < pixels; i++, j += channels) {
    const nc = 255 - cmyk[j + 3]!;
    for (let c = 0; c < 3; c++) {
      const t = cmyk[j + c]! * nc + 128;
      rgb[i * 3 + c] = nc - (((t >> 8) + t) >> 8);
    }
  }
  return rgb;
}

/**
 * The full-size RGB image PIL's `.convert('RGB')` gives, for the modes where dropping channels must happen
 * before resizing: alpha is dropped, not composited (and not premultiplied into the resize, which libvips
 * would do), and CMYK uses PIL's formula.
 */
async function fullSizeRgb(bytes: Uint8Array, source: SourceInfo, opts: DecodeOptions): Promise<Buffer> {
  if (source.space === 'cmyk') {
    let out: { data: Buffer; info: OutputInfo };
    try {
      out = await sharp(bytes, inputOptions(opts))
        .pipelineColourspace('cmyk')
        .toColourspace('cmyk')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
    } catch (e) {
      return rethrow(e, bytes, opts);
    }
    if (out.info.channels < 4) throw decodeError(opts, `CMYK image decoded to ${out.info.channels} channels`);
    return cmykToRgbLikePil(out.data, source.width * source.height, out.info.channels);
  }
  const key = source.format === 'gif' && source.hasAlpha ? gifTransparentColour(bytes) : undefined;
  if (key) return gifWithTransparentColour(bytes, source, key, opts);
  return toRgb(sharp(bytes, inputOptions(opts)).removeAlpha(), source.width, source.height, bytes, opts);
}

/** A transparent GIF's first frame as PIL shows it: transparent pixels take their palette colour. */
async function gifWithTransparentColour(bytes: Uint8Array, source: SourceInfo, key: [number, number, number], opts: DecodeOptions): Promise<Buffer> {
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await sharp(bytes, inputOptions(opts)).ensureAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    return rethrow(e, bytes, opts);
  }
  const n = source.width * source.height;
  if (out.info.channels !== 4 || out.data.length !== n * 4) throw decodeError(opts, `GIF decoded to ${out.info.channels} channels`);
  const rgb = Buffer.allocUnsafe(n * 3);
  const src = out.data;
  for (let i = 0; i < n; i++) {
    const transparent = src[i * 4 + 3] === 0;
    rgb[i * 3] = transparent ? key[0] : src[i * 4]!;
    rgb[i * 3 + 1] = transparent ? key[1] : src[i * 4 + 1]!;
    rgb[i * 3 + 2] = transparent ? key[2] : src[i * 4 + 2]!;
  }
  return rgb;
}

/**
 * Alpha, CMYK and 16-bit images go through a full-size 8-bit RGB first, as PIL converts before it resizes;
 * plain 8-bit RGB and grey images resize straight from the decoder (grey channels replicate either way).
 */
function needsFullSizeRgb(source: SourceInfo): boolean {
  return source.hasAlpha || source.space === 'cmyk' || source.space === 'rgb16' || source.space === 'grey16';
}

/**
 * Decodes one image and brings it to the spec's S×S RGB, matching torchvision's `Resize(S, BICUBIC)`,
 * `CenterCrop(S)` on `Image.open(f).convert('RGB')`. Throws ImageDecodeError (E_IMAGE) with a kind.
 */
export async function decodeResized(bytes: Uint8Array, spec: ImageSpec, opts: DecodeOptions = {}): Promise<DecodedImage> {
  ensureSharpConfigured();
  const read = await readSource(bytes, opts);
  return { pixels: await resized(bytes, read, spec, opts), source: read.source };
}

/**
 * Decodes one image to its full-size RGB, as PIL's `.convert('RGB')` gives it (no resize): for encoders that
 * resize in their graph (src/model/onnx/resize-input.ts). Same checks and errors as decodeResized.
 */
export async function decodeRgb(bytes: Uint8Array, opts: DecodeOptions = {}): Promise<DecodedImage> {
  ensureSharpConfigured();
  const read = await readSource(bytes, opts);
  return { pixels: await fullSize(bytes, read, opts), source: read.source };
}

/**
 * For an encoder that resizes frames of one size in its graph: images of `frame` size come back full size
 * (`resized: false`), others resized to S×S as decodeResized does. The header is read once, so an image of
 * another size is decoded once too.
 */
export async function decodeForFrame(
  bytes: Uint8Array,
  spec: ImageSpec,
  frame: { width: number; height: number },
  opts: DecodeOptions = {},
): Promise<DecodedImage & { resized: boolean }> {
  ensureSharpConfigured();
  const read = await readSource(bytes, opts);
  const { source } = read;
  if (source.width === frame.width && source.height === frame.height) return { pixels: await fullSize(bytes, read, opts), source, resized: false };
  return { pixels: await resized(bytes, read, spec, opts), source, resized: true };
}

async function fullSize(bytes: Uint8Array, { source, wasm }: ReadSource, opts: DecodeOptions): Promise<Buffer> {
  const decoded = await wasmRgb(bytes, source, wasm);
  if (decoded) return decoded;
  if (needsFullSizeRgb(source) || source.format === 'gif') return fullSizeRgb(bytes, source, opts);
  return toRgb(sharp(bytes, inputOptions(opts)), source.width, source.height, bytes, opts);
}

async function resized(bytes: Uint8Array, { source, wasm }: ReadSource, spec: ImageSpec, opts: DecodeOptions): Promise<Buffer> {
  const g = resizeGeometry(source.width, source.height, spec);
  const resampler = opts.resampler ?? DEFAULTS.image.resampler;
  const enlarges = g.width > source.width || g.height > source.height;
  if (resampler === 'pil' || (resampler === 'auto' && enlarges)) {
    const rgb = (await wasmRgb(bytes, source, wasm)) ?? (await fullSizeRgb(bytes, source, opts));
    const pixels = pilBicubicResizeCrop(rgb, source.width, source.height, g.width, g.height, g.left, g.top, spec.size);
    return Buffer.from(pixels.buffer, pixels.byteOffset, pixels.length);
  }
  // libvips decodes and resizes in one call: decoding in wasm first and handing sharp raw pixels measured slower.
  let pipeline: Sharp;
  if (needsFullSizeRgb(source)) {
    const rgb = await fullSizeRgb(bytes, source, opts);
    pipeline = sharp(rgb, { raw: { width: source.width, height: source.height, channels: 3 } });
  } else {
    pipeline = sharp(bytes, inputOptions(opts));
  }
  pipeline = resizeAndCrop(pipeline, source, g, spec.size, opts);
  return toRgb(pipeline, spec.size, spec.size, bytes, opts);
}
