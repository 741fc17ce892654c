/**
 * Runs the filter's passes over the pool's units, in the calling thread (one worker) or in worker threads.
 * Tasks (runs of consecutive units) go to whichever thread is free; their results come back in any order and
 * are handed to the caller in task order, with at most `inFlight` tasks per thread sent and not yet handed
 * over, so memory stays bounded however the threads race. At the end of a pass every thread returns its
 * accumulated state (histogram counts), which the caller adds up.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PassExecutor, reviveError, type ErrorData, type PassEnd, type PassInit, type PassPlan, type Task, type TaskResult } from './passes.js';
import type { SideColumns } from './side.js';

export type ThreadMessage =
  | { type: 'result'; index: number; result: TaskResult }
  | { type: 'end'; end: PassEnd }
  | { type: 'error'; error: ErrorData };

export type MainMessage = { type: 'begin'; plan: PassPlan } | { type: 'task'; task: Task } | { type: 'end' };

export interface PassRunnerOptions {
  /** Threads; 1 runs everything in the calling thread. */
  workers: number;
  init: PassInit;
  /** Side columns object for the calling thread (threads open init.side themselves). */
  side?: SideColumns | null;
  /** Tasks per thread sent and not yet handed to the caller. */
  inFlight?: number;
}

function threadScript(): URL {
  const here = new URL('./pass-thread.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  // Running from the TypeScript sources (tests): the threads run the build.
  return new URL('../../dist/filter/pass-thread.js', import.meta.url);
}

export class PassRunner {
  private readonly local: PassExecutor | null;
  private readonly threads: Worker[];
  private readonly inFlight: number;
  private failure: Error | null = null;

  private constructor(local: PassExecutor | null, threads: Worker[], inFlight: number) {
    this.local = local;
    this.threads = threads;
    this.inFlight = inFlight;
  }

  /** Threads doing the work (1 when it is the calling thread). */
  get workers(): number {
    return this.local ? 1 : this.threads.length;
  }

  static start(opts: PassRunnerOptions): PassRunner {
    const inFlight = Math.max(1, opts.inFlight ?? 4);
    if (opts.workers <= 1) return new PassRunner(new PassExecutor(opts.init, opts.side ?? null), [], inFlight);
    const script = threadScript();
    const threads = Array.from({ length: opts.workers }, () => new Worker(script, { workerData: opts.init }));
    const runner = new PassRunner(null, threads, inFlight);
    for (const t of threads) {
      // A thread that dies outside a task (out of memory, a crash in its startup) fails the run.
      t.on('error', (e) => runner.fail(e));
      t.on('exit', (code) => {
        if (code !== 0) runner.fail(new Error(`a filter worker thread exited with code ${code}`));
      });
    }
    return runner;
  }

  private failListeners: ((e: Error) => void)[] = [];

  private fail(e: Error): void {
    if (this.failure !== null) return;
    this.failure = e;
    for (const f of this.failListeners) f(e);
  }

  /**
   * One pass: `onResult` gets every task's result in task order; resolves with each thread's end state.
   * An error in a thread or in `onResult` rejects (call close() afterwards).
   */
  async run(plan: PassPlan, tasks: Task[], onResult: (task: Task, result: TaskResult) => void): Promise<PassEnd[]> {
    if (this.failure) throw this.failure;
    if (this.local) {
      this.local.begin(plan);
      for (const t of tasks) onResult(t, this.local.run(t));
      return [this.local.end()];
    }
    return new Promise<PassEnd[]>((resolve, reject) => {
      const threads = this.threads;
      const ends: PassEnd[] = [];
      const ready = new Map<number, TaskResult>();
      const idle: Worker[] = [...threads];
      let sent = 0;
      let consumed = 0;
      let ending = false;
      let settled = false;
      const window = this.inFlight * threads.length;
      const cleanup = () => {
        settled = true;
        for (const t of threads) t.off('message', listeners.get(t)!);
        this.failListeners = this.failListeners.filter((f) => f !== onFail);
      };
      const onFail = (e: Error) => {
        if (settled) return;
        cleanup();
        reject(e);
      };
      this.failListeners.push(onFail);
      const pump = () => {
        while (idle.length > 0 && sent < tasks.length && sent - consumed < window) {
          const t = idle.pop()!;
          t.postMessage({ type: 'task', task: tasks[sent++] } satisfies MainMessage);
        }
        if (!ending && consumed === tasks.length) {
          ending = true;
          for (const t of threads) t.postMessage({ type: 'end' } satisfies MainMessage);
        }
      };
      const listeners = new Map<Worker, (m: ThreadMessage) => void>();
      for (const t of threads) {
        const listener = (m: ThreadMessage) => {
          if (settled) return;
          try {
            if (m.type === 'error') throw reviveError(m.error);
            if (m.type === 'end') {
              ends.push(m.end);
              if (ends.length === threads.length) {
                cleanup();
                resolve(ends);
              }
              return;
            }
            ready.set(m.index, m.result);
            idle.push(t);
            while (ready.has(consumed)) {
              const r = ready.get(consumed)!;
              ready.delete(consumed);
              onResult(tasks[consumed], r);
              consumed++;
            }
            pump();
          } catch (e) {
            this.fail(e instanceof Error ? e : new Error(String(e)));
          }
        };
        listeners.set(t, listener);
        t.on('message', listener);
      }
      for (const t of threads) t.postMessage({ type: 'begin', plan } satisfies MainMessage);
      pump();
    });
  }

  /** Stop the threads (idempotent). */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    for (const t of threads) t.removeAllListeners('exit');
    await Promise.all(threads.map((t) => t.terminate()));
  }
}
