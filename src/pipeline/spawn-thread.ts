/**
 * Starting the pipeline's worker threads: the compiled script (under a TypeScript test runner this module is the
 * .ts source, so the script comes from dist/), with the thread's log records relayed to this thread's logger.
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { log, logRelayed } from '../log.js';

export function spawnThread(script: 'inference-worker' | 'prep-worker', workerData: object): Worker {
  let url = new URL(`./${script}.js`, import.meta.url);
  if (!existsSync(fileURLToPath(url))) url = new URL(`../../dist/pipeline/${script}.js`, import.meta.url);
  const worker = new Worker(url, { workerData: { ...workerData, logLevel: log().level } });
  // Kept for the thread's whole life, beside whatever listeners its owner adds for its protocol.
  worker.on('message', logRelayed);
  return worker;
}
