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

/**
 * Messages carry their bytes in one buffer each (moved, not copied) and the items refer to it by [offset, length];
 * each side sends the other's buffers back once read, to be filled again. A transfer per member or image, and
 * ~200 kB of new external memory per sample (which V8 answers with collections), cost the scoring thread more
 * than a GPU's rate leaves it.
 */
export type Span = [offset: number, length: number];

/** The parts of a sample that preparation reads; its member bytes are copied (the tar reader's buffers stay). */
export interface PrepItem {
  id: number;
  shard: string;
  row: number;
  key: string;
  files: [ext: string, bytes: Span][];
  problem?: { status: string; message: string };
}

export type PrepParentMessage =
  /** `spare`: buffers of earlier answers, read and free, for the thread's next answers. */
  | { type: 'items'; items: PrepItem[]; bytes: ArrayBuffer; spare: ArrayBuffer[] }
  | { type: 'close' };

/** A prepared sample on the wire: its pixels (uint8) and token ids (int32, 4-aligned) are spans of the message's bytes. */
export type WirePreparedSample = Omit<PreparedSample, 'pixels' | 'ids' | 'release'> & { pixels?: Span; ids?: Span };

export type PrepWorkerMessage =
  | RelayedLog
  | { type: 'ready' }
  | { type: 'fatal'; message: string; stack?: string }
  /** `spare`: the items' buffer, read and free, for the parent's next items. */
  | { type: 'done'; results: { id: number; sample?: WirePreparedSample; error?: { message: string; stack?: string } }[]; bytes: ArrayBuffer; spare: ArrayBuffer };

/** Free buffers of one direction, reused by `pack` (a few, of whatever sizes came back). */
export class Spares {
  private readonly free: ArrayBuffer[] = [];

  constructor(private readonly keep = 4) {}

  add(b: ArrayBuffer): void {
    if (b.byteLength === 0) return; // detached: it went elsewhere
    this.free.push(b);
    if (this.free.length > this.keep) {
      // The smallest is the least likely to fit the next message.
      let k = 0;
      for (let i = 1; i < this.free.length; i++) if (this.free[i]!.byteLength < this.free[k]!.byteLength) k = i;
      this.free.splice(k, 1);
    }
  }

  take(bytes: number): ArrayBuffer {
    const i = this.free.findIndex((b) => b.byteLength >= bytes);
    if (i >= 0) return this.free.splice(i, 1)[0]!;
    // Rounded up, so that a buffer fits the next messages of about this size too.
    return new ArrayBuffer(Math.ceil(bytes / 65536) * 65536 || 65536);
  }
}

/** Copies `parts` into one buffer (each at a 4-aligned offset; a spare when one fits) with their spans. */
export function pack(parts: readonly Uint8Array[], spares: Spares): { bytes: ArrayBuffer; spans: Span[] } {
  const spans: Span[] = [];
  let end = 0;
  for (const p of parts) {
    spans.push([end, p.byteLength]);
    end += (p.byteLength + 3) & ~3;
  }
  const bytes = spares.take(end);
  const view = new Uint8Array(bytes);
  parts.forEach((p, i) => view.set(p, spans[i]![0]));
  return { bytes, spans };
}
