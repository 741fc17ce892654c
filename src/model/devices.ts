/**
 * Device lists for several inference threads: `cuda:0,1` (or `cuda:0,cuda:1`), `cuda:all` (every GPU
 * `nvidia-smi -L` lists, or the ones CUDA_VISIBLE_DEVICES names), and any single device (`cpu`, `auto`, `cuda`,
 * `cuda:N`). Each entry becomes one inference thread; `perDevice` threads share each device (on the CPU they
 * split its cores, on a GPU they overlap one batch's host copies with another's kernels).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MimicError } from '../errors.js';
import { parseDevice, resolveDevice } from './session.js';

const run = promisify(execFile);

/** GPUs visible to this process: CUDA_VISIBLE_DEVICES when set, else `nvidia-smi -L`. */
export async function countGpus(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined && visible.trim() !== '') {
    // CUDA renumbers the visible devices 0..n-1; an invalid entry hides the ones after it, as CUDA does.
    let n = 0;
    for (const d of visible.split(',')) {
      if (!/^\s*(\d+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-zA-Z/-]+)\s*$/.test(d)) break;
      n++;
    }
    return n;
  }
  try {
    const { stdout } = await run('nvidia-smi', ['-L'], { timeout: 20_000 });
    return stdout.split('\n').filter((l) => /^GPU \d+:/.test(l)).length;
  } catch {
    return 0;
  }
}

/** The device of each inference thread, in order (`auto` resolved to `cpu` or `cuda:N`). Throws E_USAGE for malformed lists, E_DEVICE for `cuda:all` without GPUs. */
export async function expandDevices(spec: string, perDevice = 1, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  if (!Number.isInteger(perDevice) || perDevice < 1) throw new MimicError('E_USAGE', `inference threads per device must be a positive integer, got ${perDevice}`);
  const s = spec.trim().toLowerCase();
  let devices: string[];
  if (s === 'cuda:all') {
    const n = await countGpus(env);
    if (n === 0) {
      throw new MimicError('E_DEVICE', 'cuda:all found no GPU (nvidia-smi lists none, or it is not installed)', {
        hint: 'check `nvidia-smi -L`, or name the GPUs: --device cuda:0,1',
      });
    }
    devices = Array.from({ length: n }, (_, i) => `cuda:${i}`);
  } else if (s.includes(',')) {
    const m = /^cuda:(.+)$/.exec(s);
    const ids = m ? m[1]!.split(',').map((x) => x.trim().replace(/^cuda:/, '')) : [];
    if (!m || ids.some((x) => !/^\d+$/.test(x))) {
      throw new MimicError('E_USAGE', `unknown device list "${spec}"`, { hint: 'list GPUs as cuda:0,1 (or cuda:0,cuda:1), or use cuda:all' });
    }
    if (new Set(ids.map(Number)).size !== ids.length) throw new MimicError('E_USAGE', `device list "${spec}" names a GPU twice`, { hint: 'for several threads on one GPU use --inference-workers' });
    devices = ids.map((x) => `cuda:${Number(x)}`);
  } else if (parseDevice(s).kind === 'auto') {
    // Decided once, here, so that every thread uses the same provider and the choice is logged once.
    const r = await resolveDevice(s);
    devices = [r.provider === 'cuda' ? `cuda:${r.deviceId ?? 0}` : 'cpu'];
  } else {
    devices = [s];
  }
  return devices.flatMap((d) => Array.from({ length: perDevice }, () => d));
}
