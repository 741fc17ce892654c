/**
 * Several inference threads (one per GPU, or several CPU ones) behind the one `submit` the shard loop uses.
 * Whole shards go to one thread: the last batch of a shard borrows its negatives from the shard's previous batch,
 * which only the thread that ran it holds, and a shard's scores must not depend on how many threads there are.
 * A new shard goes to the thread with the fewest batches queued (ties: the lowest index), so a slow shard on one
 * GPU does not hold the others up; which thread ran a shard changes nothing in its scores.
 */
import type { BatchRequest, InferenceInit } from './inference-protocol.js';
import { InferenceClient, type BatchResult } from './inference-client.js';
import type { BufferPool } from './buffer-pool.js';

export class InferencePool {
  private readonly shardWorker = new Map<number, number>();

  private constructor(readonly clients: InferenceClient[]) {}

  /** Starts every thread (in parallel: loading large encoders dominates); stops them all if one fails. */
  static async start(inits: InferenceInit[], maxInFlight: number, buffers?: BufferPool): Promise<InferencePool> {
    const started = await Promise.allSettled(inits.map((init) => InferenceClient.start(init, maxInFlight, buffers)));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value.close() : undefined)));
      throw failed.reason;
    }
    return new InferencePool(started.map((s) => (s as PromiseFulfilledResult<InferenceClient>).value));
  }

  get provider(): string {
    return this.clients[0]!.provider;
  }

  get deviceId(): number | undefined {
    return this.clients[0]!.deviceId;
  }

  /** The devices in use, e.g. `cuda:0,cuda:1` or `cpu×2`. */
  get devices(): string {
    const names = this.clients.map((c) => (c.deviceId === undefined ? c.provider : `${c.provider}:${c.deviceId}`));
    return names.every((n) => n === names[0]) && names.length > 1 ? `${names[0]}×${names.length}` : names.join(',');
  }

  get busyMs(): number {
    return this.clients.reduce((a, c) => a + c.busyMs, 0);
  }

  async submit(req: Omit<BatchRequest, 'type' | 'seq'>): Promise<{ result: Promise<BatchResult> }> {
    let w = this.shardWorker.get(req.shardSeq);
    if (w === undefined) {
      w = 0;
      for (let i = 1; i < this.clients.length; i++) if (this.clients[i]!.queued < this.clients[w]!.queued) w = i;
      // Shards are read one after another, so only the latest few are ever looked up again.
      this.shardWorker.set(req.shardSeq, w);
      for (const k of this.shardWorker.keys()) if (k < req.shardSeq - 8) this.shardWorker.delete(k);
    }
    return this.clients[w]!.submit(req);
  }

  async close(): Promise<void> {
    const results = await Promise.allSettled(this.clients.map((c) => c.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
