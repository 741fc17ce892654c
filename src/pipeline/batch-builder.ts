/**
 * Assembles one model batch from prepared samples: float32 [B,3,S,S] pixels (normalised here, through a
 * per-channel lookup table) or, with pixel format uint8, the decoded bytes as they are ([B,S,S,3], normalised by
 * the image encoder's graph: a plain copy here and a quarter of the bytes to move), and int64 [B,L] token ids.
 * The buffers are handed to the inference thread without copying.
 */
import { normalizeHwcToChw } from '../image/index.js';
import type { BufferPool } from './buffer-pool.js';
import type { PreparedSample } from './sample-prep.js';

export interface ModelBatch {
  /** Batch number within the shard (the `batch` column). */
  index: number;
  /** Real samples in the batch (rows of the shard, in order). */
  rows: number[];
  pixels: Float32Array | Uint8Array;
  ids: BigInt64Array;
  /** With a source size: 1 for the rows resized on the CPU (S×S in the top-left of their H×W frame). */
  resizedMask?: Uint8Array;
}

/** Pixels per row: a source-size frame, or the model's S×S. */
function pixelCountOf(size: number, sourceSize?: { width: number; height: number }): number {
  return sourceSize ? sourceSize.width * sourceSize.height : size * size;
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
    /** Frames of the source size, resized in the graph (uint8 only). */
    private readonly sourceSize?: { width: number; height: number },
    /** Where the buffers come from (and a short last batch's go back to); every row in use is overwritten. */
    private readonly buffers?: BufferPool,
  ) {
    this.pixelCount = pixelCountOf(size, sourceSize);
    if (sourceSize) this.mask = new Uint8Array(capacity);
    const [pixelBytes, idBytes] = BatchBuilder.bufferSizes(capacity, size, contextLength, pixelFormat, sourceSize);
    const take = (bytes: number) => buffers?.take(bytes) ?? new ArrayBuffer(bytes);
    this.pixels = pixelFormat === 'uint8' ? new Uint8Array(take(pixelBytes)) : new Float32Array(take(pixelBytes));
    this.ids = new BigInt64Array(take(idBytes));
  }

  /** The byte lengths of a full batch's pixel and id buffers (what a BufferPool keeps). */
  static bufferSizes(capacity: number, size: number, contextLength: number, pixelFormat: 'float32' | 'uint8', sourceSize?: { width: number; height: number }): [number, number] {
    return [capacity * 3 * pixelCountOf(size, sourceSize) * (pixelFormat === 'uint8' ? 1 : 4), capacity * contextLength * 8];
  }

  get length(): number {
    return this.rows.length;
  }

  get full(): boolean {
    return this.rows.length === this.capacity;
  }

  private readonly mask?: Uint8Array;

  add(s: PreparedSample): void {
    const k = this.rows.length;
    if (this.mask) this.addFrame(s, k);
    else if (this.pixels instanceof Uint8Array) this.pixels.set(s.pixels!.subarray(0, 3 * this.pixelCount), k * 3 * this.pixelCount);
    else normalizeHwcToChw(s.pixels!, this.pixelCount, this.table, this.pixels, k * 3 * this.pixelCount);
    const L = this.contextLength;
    for (let j = 0; j < L; j++) this.ids[k * L + j] = BigInt(s.ids![j]!);
    this.rows.push(s.row);
  }

  /** A source-size row: the decoded frame as it is, or a CPU-resized S×S image in its top-left corner. */
  private addFrame(s: PreparedSample, k: number): void {
    const { width } = this.sourceSize!;
    const at = k * 3 * this.pixelCount;
    const px = s.pixels!;
    const frame = this.pixels as Uint8Array;
    if (!s.cpuResized) {
      frame.set(px.subarray(0, 3 * this.pixelCount), at);
      return;
    }
    this.mask![k] = 1;
    frame.fill(0, at, at + 3 * this.pixelCount); // the rest of a reused buffer must not carry another image
    for (let y = 0; y < this.size; y++) frame.set(px.subarray(y * 3 * this.size, (y + 1) * 3 * this.size), at + y * 3 * width);
  }

  /** The batch, trimmed to the samples added (a copy only for a short last batch). */
  finish(): ModelBatch {
    const n = this.rows.length;
    const full = n === this.capacity;
    const batch: ModelBatch = {
      index: this.index,
      rows: this.rows,
      pixels: full ? this.pixels : this.pixels.slice(0, n * 3 * this.pixelCount),
      ids: full ? this.ids : this.ids.slice(0, n * this.contextLength),
      ...(this.mask ? { resizedMask: full ? this.mask : this.mask.slice(0, n) } : {}),
    };
    if (!full && this.buffers) {
      this.buffers.give(this.pixels.buffer as ArrayBuffer);
      this.buffers.give(this.ids.buffer as ArrayBuffer);
    }
    return batch;
  }
}
