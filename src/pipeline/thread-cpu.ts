/**
 * CPU seconds used by the process's main thread, which reads shards, batches and writes score files: next to the
 * inference thread's busy time it says which of the two holds a run back. Node 20 has no per-thread CPU clock
 * (process.threadCpuUsage came in 23), so this reads Linux's /proc; elsewhere, or off the main thread, undefined.
 */
import { readFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

/** Linux reports thread times in clock ticks of 1/100 s (USER_HZ) on every architecture Node runs on. */
const TICKS_PER_S = 100;

export function mainThreadCpuS(): number | undefined {
  if (!isMainThread || process.platform !== 'linux') return undefined;
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'latin1');
    // The command name may hold spaces and parentheses: fields are counted from its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / TICKS_PER_S : undefined;
  } catch {
    return undefined;
  }
}
