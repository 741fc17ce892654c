/**
 * Batch buffers, used again. A batch's pixel and token-id buffers go to the inference thread with the batch and
 * come back with its scores, for a later BatchBuilder. Allocating them anew (38–50 MB of pixels per batch of 256)
 * cost the scoring thread their zeroing, the page faults of the first copy into them and the collections that
 * V8 starts on external-memory pressure: together the largest part of its time per sample at GPU rates.
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();

  /**
   * @param sizes the byte lengths worth keeping (a full batch's pixels and ids; a short last batch's are not)
   * @param perSize at most this many of each are kept (the batches that can be in flight, and a spare)
   */
  constructor(sizes: readonly number[], private readonly perSize: number) {
    for (const s of sizes) this.free.set(s, []);
  }

  take(byteLength: number): ArrayBuffer {
    return this.free.get(byteLength)?.pop() ?? new ArrayBuffer(byteLength);
  }

  /** Keeps `b` if it has a kept size and there is room; anything else is left to the garbage collector. */
  give(b: ArrayBuffer): void {
    const list = this.free.get(b.byteLength);
    if (list && list.length < this.perSize) list.push(b);
  }
}
