/** Messages between the scoring loop and its sample-preparation threads (structured-clone friendly). */
import type { DecodeOptions, ImageSpec } from '../image/index.js';
import type { PreparedSample } from './sample-prep.js';
import type { RelayedLog } from '../log.js';

export interface PrepInit {
  imageKeys: readonly string[];
  captionKey: string;
  metadataKey: string;
  image: ImageSpec;
  decode: DecodeOptions;
  /** The tokenizer's vocabulary file (each thread loads its own tokenizer). */
  vocab: string;
  contextLength: number;
  padId: number;
  sourceSize?: { width: number; height: number };
  /** The parent's log level: the thread's records are relayed to the parent's logger. */
  logLevel?: string;
}

/** The parts of a sample that preparation reads; its member bytes are copied (the tar reader's buffers stay). */
export interface PrepItem {
  id: number;
  shard: string;
  row: number;
  key: string;
  files: [string, Uint8Array][];
  problem?: { status: string; message: string };
}

export type PrepParentMessage = { type: 'items'; items: PrepItem[] } | { type: 'close' };

export type PrepWorkerMessage =
  | RelayedLog
  | { type: 'ready' }
  | { type: 'fatal'; message: string; stack?: string }
  | { type: 'done'; results: { id: number; sample?: PreparedSample; error?: { message: string; stack?: string } }[] };
