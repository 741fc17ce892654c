/**
 * Assembles one model batch from prepared samples: float32 [B,3,S,S] pixels (normalised here, through a
 * per-channel lookup table) or, with pixel format uint8, the decoded bytes as they are ([B,S,S,3], normalised by
 * the image encoder's graph: a plain copy here and a quarter of the bytes to move), and int64 [B,L] token ids.
 * The buffers are handed to the inference thread without copying.
 */
import { normalizeHwcToChw } from '../image/index.js';
import type { PreparedSample } from './sample-prep.js';

export interface ModelBatch {
  /** Batch number within the shard (the `batch` column). */
  index: number;
  /** Real samples in the batch (rows of the shard, in order). */
  rows: number[];
  pixels: Float32Array | Uint8Array;
  ids: BigInt64Array;
}

export class BatchBuilder {
  private readonly pixels: Float32Array | Uint8Array;
  private readonly ids: BigInt64Array;
  private readonly rows: number[] = [];
  private readonly pixelCount: number;

  constructor(
    readonly index: number,
    readonly capacity: number,
    private readonly size: number,
    private readonly contextLength: number,
    private readonly table: Float32Array,
    private readonly pixelFormat: 'float32' | 'uint8' = 'float32',
  ) {
    this.pixelCount = size * size;
    this.pixels = pixelFormat === 'uint8' ? new Uint8Array(capacity * 3 * this.pixelCount) : new Float32Array(capacity * 3 * this.pixelCount);
    this.ids = new BigInt64Array(capacity * contextLength);
  }

  get length(): number {
    return this.rows.length;
  }

  get full(): boolean {
    return this.rows.length === this.capacity;
  }

  add(s: PreparedSample): void {
    const k = this.rows.length;
    if (this.pixels instanceof Uint8Array) this.pixels.set(s.pixels!.subarray(0, 3 * this.pixelCount), k * 3 * this.pixelCount);
    else normalizeHwcToChw(s.pixels!, this.pixelCount, this.table, this.pixels, k * 3 * this.pixelCount);
    const L = this.contextLength;
    for (let j = 0; j < L; j++) this.ids[k * L + j] = BigInt(s.ids![j]!);
    this.rows.push(s.row);
  }

  /** The batch, trimmed to the samples added (a copy only for a short last batch). */
  finish(): ModelBatch {
    const n = this.rows.length;
    const full = n === this.capacity;
    return {
      index: this.index,
      rows: this.rows,
      pixels: full ? this.pixels : this.pixels.slice(0, n * 3 * this.pixelCount),
      ids: full ? this.ids : this.ids.slice(0, n * this.contextLength),
    };
  }
}
