/** Messages between the scoring loop and its inference thread (structured-clone friendly). */
import type { BatchScores } from '../mimic/index.js';
import type { RelayedLog } from '../log.js';

export interface InferenceInit {
  checkpoints: { name: string; dir: string }[];
  reference: string;
  referenceClipScore: boolean;
  device: string;
  intraOpThreads: number;
  interOpThreads: number;
  /** The parent's log level: the thread's records are relayed to the parent's logger. */
  logLevel?: string;
  /** Pixel format of the batches (uint8: the image encoders get the in-graph normalisation). Default float32. */
  pixels?: 'float32' | 'uint8';
  /** Encoder build: fp32, or the bundles' fp16 variants. Default fp32. */
  precision?: 'fp32' | 'fp16';
  /** Batches are frames of this size, resized by the image encoder's graph (uint8 pixels only). */
  sourceSize?: { width: number; height: number };
}

export interface BatchRequest {
  type: 'batch';
  seq: number;
  /** Identifies the shard, so that filler rows are only ever taken from the same shard's previous batch. */
  shardSeq: number;
  /** Real samples in the batch. */
  n: number;
  /** Filler rows (negatives only) taken from the tail of this shard's previous batch. */
  fill: number;
  pixels: Float32Array | Uint8Array;
  ids: BigInt64Array;
  /** With a source size: 1 for the rows the CPU resized (see BatchBuilder). */
  resizedMask?: Uint8Array;
}

export interface SerializedError {
  name: string;
  code?: string;
  message: string;
  hint?: string;
  file?: string;
  stack?: string;
}

export type WorkerMessage =
  | RelayedLog
  | { type: 'ready'; provider: string; deviceId?: number }
  | { type: 'fatal'; error: SerializedError }
  | {
      type: 'result';
      seq: number;
      scores: Record<string, BatchScores>;
      refClipSim: Float32Array | null;
      busyMs: number;
      /** The batch's pixel and id buffers, moved back for the next batches (see BufferPool). */
      returned: ArrayBuffer[];
    }
  | { type: 'error'; seq: number; error: SerializedError };

export type ParentMessage = BatchRequest | { type: 'close' };
