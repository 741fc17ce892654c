/**
 * The scoring loop's handle on the inference thread: submit batches in order, get their scores back as
 * promises. `submit` waits while `maxInFlight` batches are queued, which is the pipeline's backpressure: when
 * the model is the bottleneck, reading and decoding pause instead of filling memory.
 */
import type { Worker } from 'node:worker_threads';
import { spawnThread } from './spawn-thread.js';
import { MimicError, type ErrorCode } from '../errors.js';
import type { BatchScores } from '../mimic/index.js';
import type { BatchRequest, InferenceInit, SerializedError, WorkerMessage } from './inference-protocol.js';
import type { BufferPool } from './buffer-pool.js';

export interface BatchResult {
  scores: Record<string, BatchScores>;
  refClipSim: Float32Array | null;
}

function revive(e: SerializedError): Error {
  if (e.code) return new MimicError(e.code as ErrorCode, e.message, { hint: e.hint, file: e.file });
  const err = new Error(`inference thread: ${e.message}`);
  err.stack = e.stack;
  return err;
}


export class InferenceClient {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (r: BatchResult) => void; reject: (e: Error) => void }>();
  private waiters: (() => void)[] = [];
  private failure: Error | null = null;
  /** Time the inference thread spent running batches: next to the wall time, it tells model-bound from input-bound. */
  busyMs = 0;

  private constructor(
    private readonly worker: Worker,
    readonly provider: string,
    readonly deviceId: number | undefined,
    private readonly maxInFlight: number,
    private readonly buffers?: BufferPool,
  ) {
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'result' || m.type === 'error') {
        const p = this.pending.get(m.seq);
        this.pending.delete(m.seq);
        if (m.type === 'result') {
          this.busyMs += m.busyMs;
          for (const b of m.returned) this.buffers?.give(b);
          p?.resolve({ scores: m.scores, refClipSim: m.refClipSim });
        }
        else p?.reject(revive(m.error));
        this.wake();
      }
    });
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => {
      if (this.pending.size > 0 || code !== 0) this.fail(new Error(`the inference thread exited (code ${code})`));
    });
  }

  /** `buffers` receives each batch's buffers back once it has run. */
  static async start(init: InferenceInit, maxInFlight: number, buffers?: BufferPool): Promise<InferenceClient> {
    const worker = spawnThread('inference-worker', init);
    let onMessage: (m: WorkerMessage) => void = () => undefined;
    let onError: (e: Error) => void = () => undefined;
    let onExit: (code: number) => void = () => undefined;
    const ready = await new Promise<Extract<WorkerMessage, { type: 'ready' }>>((resolve, reject) => {
      onMessage = (m) => {
        if (m.type === 'ready') resolve(m);
        else if (m.type === 'fatal') reject(revive(m.error));
      };
      onError = reject;
      onExit = (code) => reject(new Error(`the inference thread exited while starting (code ${code})`));
      worker.on('message', onMessage).on('error', onError).on('exit', onExit);
    }).catch(async (e) => {
      await worker.terminate();
      throw e;
    });
    worker.off('message', onMessage).off('error', onError).off('exit', onExit);
    return new InferenceClient(worker, ready.provider, ready.deviceId, maxInFlight, buffers);
  }

  /** Batches submitted and not yet answered. */
  get queued(): number {
    return this.pending.size;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /**
   * Queue a batch (its buffers move to the inference thread). Resolves once it is queued, to a handle on its
   * scores (wrapped: a promise cannot resolve to a promise), so the caller goes on reading while it runs.
   */
  async submit(req: Omit<BatchRequest, 'type' | 'seq'>): Promise<{ result: Promise<BatchResult> }> {
    while (this.pending.size >= this.maxInFlight && !this.failure) await new Promise<void>((r) => this.waiters.push(r));
    if (this.failure) throw this.failure;
    const seq = this.seq++;
    const result = new Promise<BatchResult>((resolve, reject) => this.pending.set(seq, { resolve, reject }));
    result.catch(() => undefined); // handled by whoever awaits it; never an unhandled rejection
    this.worker.postMessage({ type: 'batch', seq, ...req } satisfies BatchRequest, [
      req.pixels.buffer as ArrayBuffer,
      req.ids.buffer as ArrayBuffer,
      ...(req.resizedMask ? [req.resizedMask.buffer as ArrayBuffer] : []),
    ]);
    return { result };
  }

  async close(): Promise<void> {
    if (this.failure) {
      await this.worker.terminate();
      return;
    }
    const exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
    this.worker.postMessage({ type: 'close' });
    await exited;
  }
}
