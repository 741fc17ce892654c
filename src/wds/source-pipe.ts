/**
 * `pipe:CMD` shards: the command's standard output is the shard, as in webdataset. The stream ends only once
 * the command has exited, so that a command failing after its last byte (e.g. `curl` on a broken transfer)
 * still fails the shard, with the tail of its standard error in the message.
 */
import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { MimicError } from '../errors.js';
import type { ShardInfo } from './types.js';

const STDERR_TAIL = 2000;
/** How long a command killed by a termination signal waits before it fails its shard (see the close handler). */
const JOB_STOP_GRACE_MS = 500;

/**
 * Commands still running, by process group. Each command gets its own group (a `sh -c` may start children that a
 * signal to the shell alone would leave running), and whatever is still running when this process exits — on an
 * interrupt, say — is stopped with it.
 */
const running = new Set<number>();
let exitHook = false;

function stopGroup(pid: number | undefined): void {
  if (pid === undefined || !running.delete(pid)) return;
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    /* the group has already gone */
  }
}

export function openPipe(url: string, opts: { signal?: AbortSignal }): { info: ShardInfo; stream: Readable } {
  const command = url.slice('pipe:'.length);
  const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (child.pid !== undefined) running.add(child.pid);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const pid of [...running]) stopGroup(pid);
    });
  }
  const onAbort = () => stopGroup(child.pid);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  let stderr = '';
  let given = false; // the reader stopped early: the command's exit status no longer matters
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    stderr = (stderr + s).slice(-STDERR_TAIL);
  });
  child.stdout.pipe(out, { end: false });
  child.on('error', (e) => {
    if (!given) out.destroy(pipeError(url, `cannot run the command: ${e.message}`, stderr));
  });
  child.on('close', (code, signal) => {
    // The shell is gone; anything it left behind in its group goes too.
    stopGroup(child.pid);
    opts.signal?.removeEventListener('abort', onAbort);
    if (given) return;
    if (code === 0) {
      out.end();
      return;
    }
    const fail = () => out.destroy(pipeError(url, `the command ${code === null ? `was killed by ${signal}` : `exited with status ${code}`}`, stderr));
    // A job manager stopping the job (scancel, a Kubernetes eviction) signals every process of it at once: this
    // process is about to stop too (src/cli/main.ts), and the shard is not a failure to record. Wait a moment.
    if (signal === 'SIGTERM' || signal === 'SIGINT' || signal === 'SIGHUP') setTimeout(fail, JOB_STOP_GRACE_MS);
    else fail();
  });
  out.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) {
      given = true;
      stopGroup(child.pid);
    }
  });
  return { info: { url }, stream: out };
}

function pipeError(url: string, what: string, stderr: string): MimicError {
  const tail = stderr.trim();
  return new MimicError('E_SOURCE', `pipe shard "${url}": ${what}${tail ? `; its stderr ends with: ${tail}` : ''}`, {
    file: url,
    hint: 'run the command by hand to see why it fails',
  });
}
