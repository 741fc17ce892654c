/**
 * A filter worker thread (pass-runner.ts): a PassExecutor driven by messages. Each task's result goes back
 * with its typed arrays transferred, not copied; an error goes back as data and the thread waits for the next
 * message (the main thread decides to stop).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PassExecutor, errorData, transferables, type PassInit } from './passes.js';
import type { MainMessage, ThreadMessage } from './pass-runner.js';

const port = parentPort!;
const exec = new PassExecutor(workerData as PassInit);

port.on('message', (m: MainMessage) => {
  try {
    if (m.type === 'begin') exec.begin(m.plan);
    else if (m.type === 'task') {
      const result = exec.run(m.task);
      port.postMessage({ type: 'result', index: m.task.index, result } satisfies ThreadMessage, transferables(result));
    } else {
      const end = exec.end();
      port.postMessage({ type: 'end', end } satisfies ThreadMessage, transferables(end));
    }
  } catch (e) {
    port.postMessage({ type: 'error', error: errorData(e) } satisfies ThreadMessage);
  }
});
