/**
 * The buffers that go round between the scoring thread and its helper threads (batch buffers to the inference
 * thread and back, message buffers to the prep threads and back): what is kept, what is reused, and that a batch
 * built in a reused buffer carries nothing of the batch before it.
 */
import { describe, expect, it } from 'vitest';
import { BatchBuilder } from '../../src/pipeline/batch-builder.js';
import { BufferPool } from '../../src/pipeline/buffer-pool.js';
import { ChunkedRoundRobin } from '../../src/pipeline/prep-pool.js';
import { pack, Spares } from '../../src/pipeline/prep-protocol.js';
import type { PreparedSample } from '../../src/pipeline/sample-prep.js';

describe('BufferPool', () => {
  it('gives back what it was given, of the kept sizes only, and at most perSize of each', () => {
    const pool = new BufferPool([64, 32], 2);
    const a = new ArrayBuffer(64);
    pool.give(a);
    pool.give(new ArrayBuffer(48)); // not a kept size: left to the collector
    expect(pool.take(64)).toBe(a);
    expect(pool.take(64)).not.toBe(a); // empty again: a new one
    const kept = [new ArrayBuffer(32), new ArrayBuffer(32), new ArrayBuffer(32)];
    for (const b of kept) pool.give(b);
    expect([pool.take(32), pool.take(32)]).toEqual([kept[1], kept[0]]);
    expect(kept).not.toContain(pool.take(32)); // the third was over the limit
    expect(pool.take(48).byteLength).toBe(48);
  });

  it('a batch built in a reused buffer equals one built in a fresh buffer (frames and CPU-resized rows)', () => {
    const S = 4;
    const frame = { width: 6, height: 5 };
    const sample = (row: number, fill: number, resized: boolean): PreparedSample => ({
      row, key: String(row), uid: null, status: 'ok', error: null,
      pixels: Buffer.alloc(resized ? S * S * 3 : frame.width * frame.height * 3, fill),
      ids: Int32Array.from({ length: 3 }, (_, j) => row * 10 + j),
      cpuResized: resized,
    });
    const build = (pool: BufferPool | undefined, rows: PreparedSample[]) => {
      const b = new BatchBuilder(0, 2, S, 3, new Float32Array(0), 'uint8', frame, pool);
      for (const r of rows) b.add(r);
      return b.finish();
    };
    const sizes = BatchBuilder.bufferSizes(2, S, 3, 'uint8', frame);
    expect(sizes).toEqual([2 * 3 * 30, 2 * 3 * 8]);
    const pool = new BufferPool(sizes, 2);
    // A first batch of full frames of 0xAA, its buffers returned as the inference thread would return them.
    const first = build(pool, [sample(0, 0xaa, false), sample(1, 0xaa, false)]);
    pool.give(first.pixels.buffer as ArrayBuffer);
    pool.give(first.ids.buffer as ArrayBuffer);
    // The next batch reuses them: a resized row must not show the old frame around its S×S corner.
    const rows = [sample(2, 7, true), sample(3, 9, false)];
    const reused = build(pool, rows);
    expect(reused.pixels.buffer).toBe(first.pixels.buffer);
    const fresh = build(undefined, rows);
    expect(Buffer.from(reused.pixels).equals(Buffer.from(fresh.pixels))).toBe(true);
    expect(Array.from(reused.ids)).toEqual(Array.from(fresh.ids));
    expect(Array.from(reused.resizedMask!)).toEqual([1, 0]);
  });

  it('a short last batch is sent as a copy and its full-size buffers go back to the pool', () => {
    const pool = new BufferPool(BatchBuilder.bufferSizes(4, 2, 1, 'uint8'), 2);
    const b = new BatchBuilder(0, 4, 2, 1, new Float32Array(0), 'uint8', undefined, pool);
    b.add({ row: 0, key: '0', uid: null, status: 'ok', error: null, pixels: Buffer.alloc(12, 5), ids: Int32Array.of(1) });
    const out = b.finish();
    expect(out.pixels.length).toBe(12);
    expect(pool.take(4 * 12).byteLength).toBe(48);
    expect(pool.take(4 * 8)).not.toBe(out.ids.buffer);
  });
});

describe('prep thread turns', () => {
  it('gives each thread chunk samples in turn, however few arrive at a time', () => {
    const rr = new ChunkedRoundRobin(3, 2);
    expect(Array.from({ length: 8 }, () => rr.pick())).toEqual([0, 0, 1, 1, 2, 2, 0, 0]);
    const one = new ChunkedRoundRobin(1, 8);
    expect(new Set(Array.from({ length: 20 }, () => one.pick()))).toEqual(new Set([0]));
  });
});

describe('prep message buffers', () => {
  it('pack puts each part at a 4-aligned offset of one buffer, reusing a spare that fits', () => {
    const spares = new Spares(2);
    const parts = [Uint8Array.of(1, 2, 3), Uint8Array.of(4), new Uint8Array(Int32Array.of(-1, 7).buffer)];
    const { bytes, spans } = pack(parts, spares);
    expect(spans).toEqual([[0, 3], [4, 1], [8, 8]]);
    expect(Array.from(new Int32Array(bytes, 8, 2))).toEqual([-1, 7]);
    expect(Array.from(new Uint8Array(bytes, 0, 3))).toEqual([1, 2, 3]);
    spares.add(bytes);
    const again = pack([new Uint8Array(10)], spares);
    expect(again.bytes).toBe(bytes); // rounded up to 64 kB, so it fits the next message
    expect(pack([new Uint8Array(70_000)], spares).bytes.byteLength).toBe(131_072);
  });

  it('keeps the largest few spares and ignores detached buffers', () => {
    const spares = new Spares(2);
    const [a, b, c] = [new ArrayBuffer(100), new ArrayBuffer(300), new ArrayBuffer(200)];
    spares.add(a);
    spares.add(b);
    spares.add(c); // over the limit: the smallest (a) goes
    spares.add(new ArrayBuffer(0));
    expect(spares.take(50)).toBe(b); // the first that fits
    expect(spares.take(50)).toBe(c);
    expect([a, b, c]).not.toContain(spares.take(50));
  });
});
