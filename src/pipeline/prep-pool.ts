/**
 * Sample preparation (image decode, caption tokenization) on worker threads, behind the same
 * `(sample) => Promise<PreparedSample>` the scoring loop calls on its own thread otherwise. Requests made in the
 * same turn of the event loop travel together (one message per thread per turn), round robin over the threads;
 * the loop's ordered map keeps the shard order whatever finishes first.
 */
import type { Worker } from 'node:worker_threads';
import { spawnThread } from './spawn-thread.js';
import type { Sample } from '../wds/index.js';
import type { PrepInit, PrepItem, PrepWorkerMessage } from './prep-protocol.js';
import type { PreparedSample } from './sample-prep.js';


interface Pending {
  resolve: (s: PreparedSample) => void;
  reject: (e: Error) => void;
}

export class PrepPool {
  private nextId = 0;
  private next = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly outbox: PrepItem[][];
  private flushScheduled = false;
  private failure: Error | null = null;

  private constructor(private readonly workers: Worker[]) {
    this.outbox = workers.map(() => []);
    for (const w of workers) {
      w.on('message', (m: PrepWorkerMessage) => {
        if (m.type !== 'done') return;
        for (const r of m.results) {
          const p = this.pending.get(r.id);
          this.pending.delete(r.id);
          if (!p) continue;
          if (r.sample) {
            // Buffers arrive as plain Uint8Arrays: give the pixels back their Buffer type.
            const s = r.sample;
            if (s.pixels && !Buffer.isBuffer(s.pixels)) s.pixels = Buffer.from((s.pixels as Uint8Array).buffer, (s.pixels as Uint8Array).byteOffset, (s.pixels as Uint8Array).byteLength);
            p.resolve(s);
          } else {
            const err = new Error(`sample preparation thread: ${r.error?.message}`);
            if (r.error?.stack) err.stack = r.error.stack;
            p.reject(err);
          }
        }
      });
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => {
        if (this.pending.size > 0 || (code !== 0 && !this.closing)) this.fail(new Error(`a sample preparation thread exited (code ${code})`));
      });
    }
  }

  private closing = false;

  /** Starts `n` threads; each loads its own tokenizer before the pool is returned. */
  static async start(n: number, init: PrepInit): Promise<PrepPool> {
    const workers = Array.from({ length: n }, () => spawnThread('prep-worker', init));
    try {
      await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
        const onMessage = (m: PrepWorkerMessage) => {
          if (m.type === 'ready') { w.off('message', onMessage); resolve(); }
          else if (m.type === 'fatal') reject(new Error(`sample preparation thread: ${m.message}`));
        };
        w.on('message', onMessage).once('error', reject).once('exit', (code) => reject(new Error(`a sample preparation thread exited while starting (code ${code})`)));
      })));
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
    for (const w of workers) w.removeAllListeners('error').removeAllListeners('exit');
    return new PrepPool(workers);
  }

  get size(): number {
    return this.workers.length;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  prepare(sample: Sample): Promise<PreparedSample> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const files: [string, Uint8Array][] = [];
    // Copies: the member bytes are views into the tar reader's chunks, which must not be detached.
    for (const [ext, bytes] of sample.files) files.push([ext, new Uint8Array(bytes)]);
    const item: PrepItem = { id, shard: sample.shard, row: sample.row, key: sample.key, files, ...(sample.problem ? { problem: { ...sample.problem } } : {}) };
    const p = new Promise<PreparedSample>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.outbox[this.next]!.push(item);
    this.next = (this.next + 1) % this.workers.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return p;
  }

  private flush(): void {
    this.flushScheduled = false;
    this.workers.forEach((w, i) => {
      const items = this.outbox[i]!;
      if (items.length === 0) return;
      this.outbox[i] = [];
      const transfer = items.flatMap((it) => it.files.map(([, b]) => b.buffer as ArrayBuffer));
      w.postMessage({ type: 'items', items }, transfer);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => new Promise<void>((resolve) => {
      w.once('exit', () => resolve());
      w.postMessage({ type: 'close' });
    })));
  }
}
