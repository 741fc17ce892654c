/**
 * A bundle's two encoder sessions on one device, with their declared signature checked again against the
 * session's own metadata (the authority once onnxruntime has parsed the file), and typed run helpers.
 *
 * When textual.onnx's sequence axis is symbolic, `textFeatures` cuts each batch's ids after its last end token
 * (text-length.ts): same features up to float rounding, a fraction of the work. A probe on opening runs two
 * captions padded to the full context and cut, and cuts only if they agree, so a text tower that is not causal
 * or not pooled at the end token (an export from another tool) is run at the full length instead.
 */
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { MimicError, errorMessage } from '../errors.js';
import { log } from '../log.js';
import { TEXTUAL_IO, VISUAL_IO, type Bundle } from './bundle.js';
import { maxRelError } from './linalg.js';
import { RESIZED_MASK_INPUT, withResizingUint8Input, withUint8Input } from './onnx/index.js';
import { cleanOrtMessage } from './providers.js';
import { createSession, resolveDevice, type Provider, type SessionOptions } from './session.js';
import { cutIds, pooledLength } from './text-length.js';

/** How pixels reach the image encoder: float32 [B,3,S,S] normalised on the host, or uint8 [B,S,S,3] normalised in the graph. */
export type PixelFormat = 'float32' | 'uint8';
/** Which build of the encoders runs: the float32 files, or the bundle's fp16 variant (float32 in and out). */
export type EncoderPrecision = 'fp32' | 'fp16';

export interface EncoderOptions extends SessionOptions {
  /** Cut each batch's ids after its last end token when textual.onnx takes any length (default true). */
  trimText?: boolean;
  /** Pixel format of `imageFeatures` (default float32). */
  pixels?: PixelFormat;
  /**
   * uint8 only: `imageFeatures` takes frames of this size [B,H,W,3] and the graph resizes and crops them
   * (resize-input.ts); rows the caller resized to S×S itself are flagged in `imageFeatures`' mask.
   */
  sourceSize?: { width: number; height: number };
  /** Encoder build (default fp32). */
  precision?: EncoderPrecision;
}

export interface TextLength {
  /** textual.onnx declares a symbolic (or unknown) sequence axis rather than L = context_length. */
  dynamic: boolean;
  /** `textFeatures` cuts each batch's ids after its last end token. */
  trimmed: boolean;
  /** Why the ids are not cut, when they are not. */
  reason?: string;
}

/**
 * The probe's tolerance for cut against padded features, by precision: rounding of the smaller products is
 * ~1e-7 relative in float32 (fp16 arithmetic rounds ~1e-3); a tower that reads the padding differs by far more.
 */
export const TRIM_PROBE_RTOL = { fp32: 1e-4, fp16: 1e-2 } as const;

export interface Encoders {
  provider: Provider;
  deviceId?: number;
  visual: ort.InferenceSession;
  textual: ort.InferenceSession;
  pixels: PixelFormat;
  precision: EncoderPrecision;
  /** pixels: float32 [batch,3,S,S] (normalised) or uint8 [batch,S,S,3] (as decoded), per `pixels` → image features [batch, dv]. */
  imageFeatures(pixels: Float32Array | Uint8Array, batch: number, resizedMask?: Uint8Array): Promise<Float32Array>;
  /** How the text encoder's sequence axis is used. */
  textLength: TextLength;
  /** ids: int64 [batch, L] (L = context_length) → text features [batch, dt]; cut first when textLength.trimmed. */
  textFeatures(ids: BigInt64Array, batch: number): Promise<Float32Array>;
  release(): Promise<void>;
}

/** The encoder files for a precision; fp16 needs the bundle to declare the variant. */
export function encoderFiles(bundle: Bundle, precision: EncoderPrecision): { visual: string; textual: string } {
  if (precision === 'fp32') return { visual: bundle.paths.visual, textual: bundle.paths.textual };
  const v = bundle.paths.variants?.fp16;
  if (!v) {
    throw new MimicError('E_BUNDLE', `${bundle.dir} has no fp16 encoders (variants.fp16 in model.json)`, {
      file: bundle.paths.manifest,
      hint: `add them with \`scripts/add-fp16 ${bundle.dir}\` (or export with --fp16), or run with --precision fp32`,
    });
  }
  return v;
}

/**
 * The image encoder's model for the pixel format: its file, or for uint8 its bytes with the normalisation
 * prepended (withUint8Input), so the session takes uint8 NHWC batches as the decoder writes them.
 */
async function visualModel(bundle: Bundle, file: string, pixels: PixelFormat, sourceSize?: { width: number; height: number }): Promise<string | Uint8Array> {
  if (pixels === 'float32') return file;
  const { mean, std, size, resize } = bundle.manifest.image;
  if (sourceSize) return withResizingUint8Input(await readFile(file), { mean, std, from: sourceSize, size, resize });
  return withUint8Input(await readFile(file), { mean, std, layout: 'NHWC' });
}

export async function openEncoders(bundle: Bundle, opts: EncoderOptions = {}): Promise<Encoders> {
  const pixelFormat = opts.pixels ?? 'float32';
  const precision = opts.precision ?? 'fp32';
  const files = encoderFiles(bundle, precision);
  // Resolve once so both towers land on the same provider even under `auto`.
  const target = await resolveDevice(opts.device);
  const device = target.provider === 'cuda' ? `cuda:${target.deviceId ?? 0}` : 'cpu';
  const sourceSize = opts.sourceSize;
  if (sourceSize && pixelFormat !== 'uint8') throw new MimicError('E_USAGE', 'resizing in the graph (a source size) needs uint8 pixels');
  const visualLabel = pixelFormat === 'uint8' ? `${files.visual} (with a uint8 pixel input${sourceSize ? `, resized from ${sourceSize.width}×${sourceSize.height} in the graph` : ''})` : files.visual;
  const visual = await createSession(await visualModel(bundle, files.visual, pixelFormat, sourceSize), { ...opts, device, label: visualLabel });
  let textual;
  try {
    textual = await createSession(files.textual, { ...opts, device });
  } catch (e) {
    await visual.session.release();
    throw e;
  }
  const s = bundle.manifest.image.size;
  const L = bundle.manifest.text.context_length;
  try {
    checkMetadata(visual.session, files.visual, VISUAL_IO.input, pixelFormat, VISUAL_IO.output, sourceSize ? RESIZED_MASK_INPUT : undefined);
    checkMetadata(textual.session, files.textual, TEXTUAL_IO.input, 'int64', TEXTUAL_IO.output);
  } catch (e) {
    await visual.session.release();
    await textual.session.release();
    throw e;
  }
  const { dv, dt } = bundle.heads;

  const runOne = async (
    session: ort.InferenceSession, file: string, input: string, output: string, tensor: ort.Tensor, width: number, batch: number,
    extra: Record<string, ort.Tensor> = {},
  ): Promise<Float32Array> => {
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await session.run({ [input]: tensor, ...extra });
    } catch (e) {
      throw new MimicError('E_ONNX', `running ${file} failed: ${cleanOrtMessage(errorMessage(e))}`, { file, cause: e });
    }
    const t = out[output] as ort.Tensor;
    if (t.dims.length !== 2 || t.dims[0] !== batch || t.dims[1] !== width) {
      throw new MimicError('E_ONNX', `${file} returned ${output} of shape [${t.dims.join(',')}], expected [${batch},${width}]`, { file });
    }
    return t.data as Float32Array;
  };

  const runText = (ids: BigInt64Array, batch: number, n: number): Promise<Float32Array> =>
    runOne(textual.session, files.textual, TEXTUAL_IO.input, TEXTUAL_IO.output,
      new ort.Tensor('int64', cutIds(ids, batch, L, n), [batch, n]), dt, batch);
  let textLength: TextLength;
  try {
    textLength = await textLengthOf(textual.session, bundle, files.textual, opts.trimText ?? true, TRIM_PROBE_RTOL[precision], runText);
  } catch (e) {
    await visual.session.release();
    await textual.session.release();
    throw e;
  }

  return {
    provider: visual.provider,
    ...(visual.deviceId === undefined ? {} : { deviceId: visual.deviceId }),
    visual: visual.session,
    textual: textual.session,
    pixels: pixelFormat,
    precision,
    textLength,
    imageFeatures(pixels, batch, resizedMask) {
      if (sourceSize) {
        const { width: w, height: h } = sourceSize;
        if (pixels.length !== batch * 3 * w * h || !(pixels instanceof Uint8Array)) {
          throw new MimicError('E_USAGE', `frame batch has ${pixels.length} values, expected uint8 ${batch}×${h}×${w}×3`);
        }
        const mask = resizedMask ?? new Uint8Array(batch);
        if (mask.length !== batch) throw new MimicError('E_USAGE', `resized-row mask has ${mask.length} values, expected ${batch}`);
        return runOne(visual.session, files.visual, VISUAL_IO.input, VISUAL_IO.output, new ort.Tensor('uint8', pixels, [batch, h, w, 3]), dv, batch,
          { [RESIZED_MASK_INPUT]: new ort.Tensor('bool', mask, [batch]) });
      }
      if (pixels.length !== batch * 3 * s * s) {
        throw new MimicError('E_USAGE', `pixel batch has ${pixels.length} values, expected ${batch}×3×${s}×${s}`);
      }
      const isUint8 = pixels instanceof Uint8Array;
      if (isUint8 !== (pixelFormat === 'uint8')) {
        throw new MimicError('E_USAGE', `the image encoder takes ${pixelFormat} pixels, got ${isUint8 ? 'uint8' : 'float32'}`);
      }
      const tensor = isUint8
        ? new ort.Tensor('uint8', pixels, [batch, s, s, 3])
        : new ort.Tensor('float32', pixels as Float32Array, [batch, 3, s, s]);
      return runOne(visual.session, files.visual, VISUAL_IO.input, VISUAL_IO.output, tensor, dv, batch);
    },
    textFeatures(ids, batch) {
      if (ids.length !== batch * L) throw new MimicError('E_USAGE', `id batch has ${ids.length} values, expected ${batch}×${L}`);
      return runText(ids, batch, textLength.trimmed ? pooledLength(ids, batch, L) : L);
    },
    async release() {
      await visual.session.release();
      await textual.session.release();
    },
  };
}

/**
 * Whether textual.onnx takes a symbolic sequence axis (onnxruntime's view of the input), and whether cutting is
 * safe: two captions padded to the context and cut after their end tokens must give the same features. The
 * padded run also proves that the graph runs at the manifest's context length, which a symbolic axis no longer
 * shows (a positional table shorter than it would otherwise fail on the first long caption).
 */
async function textLengthOf(
  session: ort.InferenceSession, bundle: Bundle, file: string, trim: boolean, rtol: number,
  run: (ids: BigInt64Array, batch: number, n: number) => Promise<Float32Array>,
): Promise<TextLength> {
  const L = bundle.manifest.text.context_length;
  const meta = session.inputMetadata[0];
  const axis = meta && meta.isTensor ? meta.shape[1] : undefined;
  const dynamic = !(typeof axis === 'number' && axis > 0);
  if (!dynamic) return { dynamic, trimmed: false, reason: `${file} takes a fixed length (${axis} tokens)` };
  if (!trim) return { dynamic, trimmed: false, reason: 'turned off (trimText: false)' };
  // Start, three words, end; and an empty caption (start, end). CLIP's ids: 49406 start, 49407 end.
  const words = [49406n, 320n, 1125n, 539n, 49407n];
  if (L <= words.length) return { dynamic, trimmed: false, reason: `the context (${L} tokens) is too short to gain from cutting` };
  const ids = new BigInt64Array(2 * L).fill(BigInt(bundle.manifest.text.pad_id));
  ids.set(words, 0);
  ids.set([49406n, 49407n], L);
  let padded: Float32Array;
  try {
    padded = await run(ids, 2, L);
  } catch (e) {
    throw new MimicError('E_ONNX', `${file} does not run on ${L} tokens, the text.context_length of ` +
      `${bundle.paths.manifest}: ${errorMessage(e)}`, {
      file,
      hint: 'set text.context_length to the length the text encoder was trained for (its positional embedding)',
    });
  }
  const n = pooledLength(ids, 2, L);
  let cut: Float32Array;
  try {
    cut = await run(ids, 2, n);
  } catch (e) {
    const reason = `${file} declares a symbolic sequence axis but does not run on ${n} tokens (${errorMessage(e)})`;
    log().warn({ file }, `${reason}: running every caption at the full ${L} tokens`);
    return { dynamic, trimmed: false, reason };
  }
  const err = maxRelError(cut, padded);
  if (!(err <= rtol)) {
    const reason = `captions cut after their end token give other features than padded ones (max relative error ` +
      `${err.toExponential(1)}): the text tower is not causal or not pooled at the end token`;
    log().warn({ file }, `${reason}; running every caption at the full ${L} tokens`);
    return { dynamic, trimmed: false, reason };
  }
  return { dynamic, trimmed: true };
}

function checkMetadata(session: ort.InferenceSession, file: string, input: string, type: string, output: string, second?: string): void {
  const ins = session.inputMetadata;
  const outs = session.outputMetadata;
  const fail = (msg: string): never => {
    throw new MimicError('E_ONNX', `${file}: ${msg}`, { file, hint: 'export the bundle again with scripts/export_bundle.py' });
  };
  const want = second ? [input, second] : [input];
  if (ins.length !== want.length || want.some((n, i) => ins[i]!.name !== n)) fail(`onnxruntime sees inputs [${session.inputNames.join(', ')}], expected [${want.join(', ')}]`);
  const i = ins[0]!;
  if (!i.isTensor || i.type !== type) fail(`input ${input} is ${i.isTensor ? i.type : 'not a tensor'}, expected ${type}`);
  if (outs.length !== 1 || outs[0]!.name !== output) fail(`onnxruntime sees outputs [${session.outputNames.join(', ')}], expected [${output}]`);
  const o = outs[0]!;
  if (!o.isTensor || o.type !== 'float32') fail(`output ${output} is ${o.isTensor ? o.type : 'not a tensor'}, expected float32`);
}
