/**
 * Sample preparation (image decode, caption tokenization) on worker threads, behind the same
 * `(sample) => Promise<PreparedSample>` the scoring loop calls on its own thread otherwise. Requests made in the
 * same turn of the event loop travel together (one message per thread per turn), prepChunk at a time per thread;
 * the loop's ordered map keeps the shard order whatever finishes first.
 */
import type { Worker } from 'node:worker_threads';
import { DEFAULTS } from '../defaults.js';
import { spawnThread } from './spawn-thread.js';
import type { Sample } from '../wds/index.js';
import { pack, Spares, type PrepInit, type PrepItem, type PrepWorkerMessage } from './prep-protocol.js';
import type { PreparedSample } from './sample-prep.js';


interface Pending {
  resolve: (s: PreparedSample) => void;
  reject: (e: Error) => void;
}

/**
 * Which thread prepares the next sample: `chunk` consecutive samples to one, then the next, whatever the event
 * loop turns they arrive in (fewer, fuller messages; see DEFAULTS.score.prepChunk), and every thread in its turn.
 */
export class ChunkedRoundRobin {
  private current = 0;
  private given = 0;

  constructor(private readonly threads: number, private readonly chunk: number) {}

  pick(): number {
    if (this.given === this.chunk) {
      this.current = (this.current + 1) % this.threads;
      this.given = 0;
    }
    this.given++;
    return this.current;
  }
}

/** An item waiting for the next flush, with the member bytes that flush packs. */
interface Outgoing {
  item: Omit<PrepItem, 'files'>;
  files: [string, Uint8Array][];
}

export class PrepPool {
  private nextId = 0;
  private readonly turns: ChunkedRoundRobin;
  private readonly pending = new Map<number, Pending>();
  private readonly outbox: Outgoing[][];
  /** Per thread: its answers' buffers, read and free, to go back with its next items. */
  private readonly answerSpares: ArrayBuffer[][];
  /** The items' buffers the threads sent back, for the next flushes. */
  private readonly itemSpares = new Spares();
  private flushScheduled = false;
  private failure: Error | null = null;

  private constructor(private readonly workers: Worker[]) {
    this.outbox = workers.map(() => []);
    this.answerSpares = workers.map(() => []);
    this.turns = new ChunkedRoundRobin(workers.length, DEFAULTS.score.prepChunk);
    workers.forEach((w, wi) => {
      w.on('message', (m: PrepWorkerMessage) => {
        if (m.type !== 'done') return;
        this.itemSpares.add(m.spare);
        // The answer's buffer goes back once every sample that views it has been copied (released).
        let views = m.results.filter((r) => r.sample?.pixels || r.sample?.ids).length;
        const release = () => {
          if (--views === 0) this.answerSpares[wi]!.push(m.bytes);
        };
        if (views === 0) this.answerSpares[wi]!.push(m.bytes);
        for (const r of m.results) {
          const p = this.pending.get(r.id);
          this.pending.delete(r.id);
          if (!p) continue;
          if (r.sample) {
            const { pixels, ids, ...facts } = r.sample;
            let released = false;
            p.resolve({
              ...facts,
              ...(pixels ? { pixels: Buffer.from(m.bytes, pixels[0], pixels[1]) } : {}),
              ...(ids ? { ids: new Int32Array(m.bytes, ids[0], ids[1] / 4) } : {}),
              ...(pixels || ids ? { release: () => { if (!released) { released = true; release(); } } } : {}),
            });
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
    });
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
    // The member bytes are views into the tar reader's chunks: the flush copies them into its message's buffer.
    const item = { id, shard: sample.shard, row: sample.row, key: sample.key, ...(sample.problem ? { problem: { ...sample.problem } } : {}) };
    const p = new Promise<PreparedSample>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.outbox[this.turns.pick()]!.push({ item, files: [...sample.files] });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return p;
  }

  private flush(): void {
    this.flushScheduled = false;
    this.workers.forEach((w, i) => {
      const out = this.outbox[i]!;
      if (out.length === 0) return;
      this.outbox[i] = [];
      const { bytes, spans } = pack(out.flatMap((o) => o.files.map(([, b]) => b)), this.itemSpares);
      let k = 0;
      const items: PrepItem[] = out.map((o) => ({ ...o.item, files: o.files.map(([ext]) => [ext, spans[k++]!]) }));
      const spare = this.answerSpares[i]!.splice(0);
      w.postMessage({ type: 'items', items, bytes, spare }, [bytes, ...spare]);
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
