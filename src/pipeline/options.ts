/**
 * The options of a scoring run (`mimic score`, `scorePool()`), with their defaults resolved in one place.
 * Everything here that changes a score file's bytes is part of the run's identity (see identity.ts).
 */
import { availableParallelism } from 'node:os';
import { DEFAULTS } from '../defaults.js';
import { MimicError } from '../errors.js';

export interface ScoreOptions {
  /** Shard specs: brace patterns, globs, `::` lists, URLs (see src/wds). */
  shards: string[];
  /** Proxy bundles, each `DIR` or `NAME=DIR`; NAME (default: the folder's name) names the output subfolder. */
  proxies: string[];
  /** The reference bundle: the direction is W_ref − W. */
  reference: string;
  /** Output folder: OUT/<checkpoint>/<shard>.arrow and OUT/_manifests/. */
  out: string;
  batchSize?: number;
  /** Score only these samples (a text file of uids, one per line, or a DataComp .npy); the rest are `skipped`. */
  uidsFile?: string;
  device?: string;
  /** Samples being prepared at once (in flight through sharp's thread pool or the prep threads). Default: defaultDecodeConcurrency. */
  decodeConcurrency?: number;
  imageKeys?: string[];
  captionKey?: string;
  metadataKey?: string;
  /** Also run the reference's encoders and record its CLIP score (`ref_clip_sim`). */
  referenceClipScore?: boolean;
  workerIndex?: number;
  numWorkers?: number;
  allowPipe?: boolean;
  /** onnxruntime threads for the encoders (0: every core). */
  intraOpThreads?: number;
  interOpThreads?: number;
  /** Batches handed to the inference thread before reading waits (bounds memory). */
  maxBatchesInFlight?: number;
  /**
   * Pixel transport: uint8 [B,S,S,3] normalised inside the image encoder's graph, float32 [B,3,S,S] normalised
   * here, or auto (DEFAULTS.score.pixels). Same scores either way (the graph does torchvision's float32 steps).
   */
  pixels?: 'auto' | 'uint8' | 'float32';
  /** Encoder build: fp32 or the bundles' fp16 variants (float32 features either way). Part of the run's identity. */
  precision?: 'fp32' | 'fp16';
  /** Inference threads per device in `device` (which may list several GPUs: cuda:0,1 or cuda:all). */
  inferenceWorkers?: number;
  /**
   * Threads that decode and tokenize (the scoring thread then only reads, batches and writes). Default: see
   * defaultPrepWorkers (from 8 cores, all but two when feeding a GPU, else a quarter; none below 8 cores).
   */
  prepWorkers?: number;
  /**
   * Who decodes plain JPEGs: 'wasm' (same pixels, more images per CPU-second, but it holds its thread),
   * 'libvips' (sharp, on libuv's pool), or 'auto': wasm on prep threads, libvips on the scoring thread, which
   * must keep reading and batching (DEFAULTS.score.jpegDecoder).
   */
  jpegDecoder?: 'auto' | 'wasm' | 'libvips';
  /**
   * Opt-in, for shards whose images all have one size (img2dataset's default writes 256×256): images of this
   * size ('WxH', e.g. '256x256') are only decoded on the CPU and resized inside the image encoder's graph (ONNX
   * Resize, PIL's cubic: within a few LSB of PIL, not bit-exact); images of another size are resized on the CPU
   * as usual. Needs uint8 pixels. Part of the run's identity.
   */
  sourceSize?: string;
  onProgress?: (p: ScoreProgress) => void;
  signal?: AbortSignal;
}

export interface ScoreProgress {
  samples: number;
  shardsDone: number;
  shardsTotal: number;
  /** Shards skipped because their scores were already complete. */
  shardsSkipped: number;
  /** Samples expected in all, when the shards' folder has an OpenCLIP sizes.json. */
  expectedSamples?: number;
  elapsedS: number;
  statuses: Record<string, number>;
}

export type ResolvedScoreOptions = Required<Omit<ScoreOptions, 'uidsFile' | 'onProgress' | 'signal' | 'workerIndex' | 'numWorkers' | 'sourceSize' | 'prepWorkers'>> &
  Pick<ScoreOptions, 'uidsFile' | 'onProgress' | 'signal'> & {
    /** 'auto': defaultPrepWorkers() once the devices are known. */
    prepWorkers: number | 'auto';
    /** Parsed --source-size. */
    sourceSize?: { width: number; height: number };
    workerIndex: number;
    /** Undefined: take it from the run record (or 1 at the first launch). */
    numWorkers?: number;
  };

const positiveInt = (v: number, what: string): number => {
  if (!Number.isInteger(v) || v < 1) throw new MimicError('E_USAGE', `${what} must be a positive integer, got ${v}`);
  return v;
};

/** 'WxH' (or one number for a square) → { width, height }; needs uint8 (or auto) pixels. */
export function parseSourceSize(spec: string, pixels: string): { width: number; height: number } {
  const m = /^\s*(\d+)(?:\s*[x×]\s*(\d+))?\s*$/i.exec(spec);
  const width = m ? Number(m[1]) : NaN;
  const height = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(width > 0 && height > 0 && width <= 16384 && height <= 16384)) {
    throw new MimicError('E_USAGE', `source size "${spec}" is not WIDTHxHEIGHT`, { hint: 'e.g. --source-size 256x256 (img2dataset\'s default image size)' });
  }
  if (pixels === 'float32') throw new MimicError('E_USAGE', '--source-size resizes inside the image encoder, which needs --pixels uint8');
  return { width, height };
}

function prepWorkersOf(n: number | undefined): number | 'auto' {
  if (n === undefined) return 'auto';
  if (!Number.isInteger(n) || n < 0) throw new MimicError('E_USAGE', `sample preparation threads must be a whole number ≥ 0, got ${n}`);
  return n;
}

/**
 * The default prep threads, once the devices are known. Below prepWorkersMinCores: none. Feeding a GPU, the wasm
 * decoder works on the prep threads themselves, so they get the cores the scoring and inference threads leave;
 * with libvips (which decodes on libuv's pool) or on a CPU device (the encoders take the cores and set the pace)
 * a quarter of the cores carry sharp's synchronous part and the tokenizer. Each thread costs ~100 MB.
 */
export function defaultPrepWorkers(devices: readonly string[], jpegDecoder: 'auto' | 'wasm' | 'libvips'): number {
  const cores = availableParallelism();
  if (cores < DEFAULTS.score.prepWorkersMinCores) return 0;
  const gpu = devices.some((d) => d !== 'cpu');
  return gpu && jpegDecoder !== 'libvips' ? cores - DEFAULTS.score.coresForOtherThreads : Math.floor(cores / 4);
}

/**
 * Images in flight when not given: twice the cores (sharp decodes on libuv's pool), and with prep threads enough
 * that each can have two messages of prepChunk samples (one being prepared, one on its way).
 */
export function defaultDecodeConcurrency(prepWorkers: number): number {
  return Math.max(2 * availableParallelism(), 2 * DEFAULTS.score.prepChunk * prepWorkers);
}

export function resolveScoreOptions(o: ScoreOptions): ResolvedScoreOptions {
  if (!o.shards?.length) throw new MimicError('E_USAGE', 'no shards given', { hint: 'mimic score SHARDS... --proxy DIR --reference DIR --out DIR' });
  if (!o.proxies?.length) throw new MimicError('E_USAGE', 'no proxy bundle given', { hint: 'pass --proxy DIR (once per checkpoint)' });
  if (!o.reference) throw new MimicError('E_USAGE', 'no reference bundle given', { hint: 'pass --reference DIR' });
  if (!o.out) throw new MimicError('E_USAGE', 'no output folder given', { hint: 'pass --out DIR' });
  const d = DEFAULTS.score;
  const workerIndex = o.workerIndex ?? 0;
  if (!Number.isInteger(workerIndex) || workerIndex < 0) {
    throw new MimicError('E_USAGE', `worker index must be a non-negative integer, got ${workerIndex}`);
  }
  if (o.numWorkers !== undefined) positiveInt(o.numWorkers, 'the worker count');
  const pixels = o.pixels ?? d.pixels;
  if (!['auto', 'uint8', 'float32'].includes(pixels)) throw new MimicError('E_USAGE', `pixels must be auto, uint8 or float32, got "${pixels}"`);
  const jpegDecoder = o.jpegDecoder ?? d.jpegDecoder;
  if (!['auto', 'wasm', 'libvips'].includes(jpegDecoder)) throw new MimicError('E_USAGE', `the JPEG decoder must be auto, wasm or libvips, got "${jpegDecoder}"`);
  const precision = o.precision ?? d.precision;
  if (!['fp32', 'fp16'].includes(precision)) throw new MimicError('E_USAGE', `precision must be fp32 or fp16, got "${precision}"`);
  if (o.numWorkers !== undefined && workerIndex >= o.numWorkers) {
    throw new MimicError('E_USAGE', `worker index ${workerIndex} is not below the worker count ${o.numWorkers}`);
  }
  return {
    shards: o.shards,
    proxies: o.proxies,
    reference: o.reference,
    out: o.out,
    batchSize: positiveInt(o.batchSize ?? d.batchSize, 'the batch size'),
    uidsFile: o.uidsFile,
    device: o.device ?? DEFAULTS.model.device,
    // 0: decided with the prep threads (defaultDecodeConcurrency).
    decodeConcurrency: o.decodeConcurrency === undefined ? d.decodeConcurrency : positiveInt(o.decodeConcurrency, 'the decode concurrency'),
    imageKeys: o.imageKeys ?? [...DEFAULTS.wds.imageKeys],
    captionKey: o.captionKey ?? DEFAULTS.wds.captionKey,
    metadataKey: o.metadataKey ?? DEFAULTS.wds.metadataKey,
    referenceClipScore: o.referenceClipScore ?? false,
    workerIndex,
    numWorkers: o.numWorkers,
    allowPipe: o.allowPipe ?? false,
    intraOpThreads: o.intraOpThreads ?? DEFAULTS.model.intraOpThreads,
    interOpThreads: o.interOpThreads ?? DEFAULTS.model.interOpThreads,
    maxBatchesInFlight: positiveInt(o.maxBatchesInFlight ?? d.maxBatchesInFlight, 'batches in flight'),
    pixels,
    precision,
    inferenceWorkers: positiveInt(o.inferenceWorkers ?? d.inferenceWorkers, 'the inference threads per device'),
    prepWorkers: prepWorkersOf(o.prepWorkers),
    jpegDecoder,
    ...(o.sourceSize === undefined ? {} : { sourceSize: parseSourceSize(o.sourceSize, pixels) }),
    onProgress: o.onProgress,
    signal: o.signal,
  };
}
