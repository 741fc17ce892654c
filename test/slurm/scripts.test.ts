/**
 * The Slurm scripts' own checks, without a cluster: the sbatch lines submit.sh builds from its knobs (--dry-run),
 * and the mistakes it and score.sbatch refuse before anything is queued.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/bundles.js';

const exec = promisify(execFile);
const SLURM = join(REPO, 'scripts', 'slurm');

async function run(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(join(SLURM, script), args, { env: { PATH: process.env.PATH, MIMIC: '/opt/mimic/bin/mimic', ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

describe('scripts/slurm', () => {
  it('submit.sh turns its knobs into an array job and an afterok finish job', async () => {
    const r = await run('submit.sh', [
      '--workers', '16', '--gpus-per-task', '2', '--cpus-per-task', '12', '--max-parallel', '4', '--partition', 'gpu',
      '--time', '02:00:00', '--sbatch=--qos=low', '--dry-run', '--',
      'pool/{00000..00999}.tar', '--proxy', 'p=ckpt', '--reference', 'ref', '--out', 'runs/a', '--device', 'cuda',
      '--filter', '--keep', 'mimic_visual >= p70', '--npy', 'kept.npy',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const [score, finish] = r.stdout.trim().split('\n').map((l) => l.trim());
    expect(score).toContain('--array=0-15%4');
    expect(score).toContain('--gres=gpu:2');
    expect(score).toContain('--cpus-per-task=12');
    expect(score).toContain('--partition=gpu');
    expect(score).toContain('--time=02:00:00');
    expect(score).toContain('--qos=low');
    expect(score).toContain('--export=ALL\\,MIMIC=/opt/mimic/bin/mimic');
    expect(score).toContain('--output=runs/a/_slurm/logs/score-%A_%a.log');
    expect(score).toMatch(/score\.sbatch pool\/\\\{00000\.\.00999\\\}\.tar .*--out runs\/a --device cuda --num-workers 16$/);
    expect(finish).toContain('--dependency=afterok:JOBID');
    expect(finish).toContain('--kill-on-invalid-dep=yes');
    expect(finish).toContain('--partition=gpu');
    expect(finish).not.toContain('--gres');
    expect(finish).toMatch(/finish\.sbatch runs\/a --keep mimic_visual\\ \\>=\\ p70 --npy kept\.npy$/);
  });

  it('submit.sh asks for no GPU with --gpus-per-task 0', async () => {
    const r = await run('submit.sh', ['--workers', '2', '--gpus-per-task', '0', '--dry-run', '--', 's.tar', '--proxy', 'p', '--reference', 'r', '--out=o']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('--gres');
    expect(r.stdout).toContain('--array=0-1 ');
    // No --filter part: the finish job only checks the run.
    expect(r.stdout.trim().split('\n')[1]!.trim()).toMatch(/finish\.sbatch o$/);
  });

  it.each([
    [['--', 's.tar', '--out', 'o'], /--workers N is required/],
    [['--workers', '0', '--', 's.tar', '--out', 'o'], /--workers N is required/],
    [['--workers', '2', '--', 's.tar', '--proxy', 'p'], /--out OUT must be on the command line/],
    [['--workers', '2', '--', 's.tar', '--out', 'o', '--num-workers', '2'], /--num-workers is set by submit\.sh/],
    [['--workers', '2', '--', 's.tar', '--out', 'o', '--worker-index=1'], /--worker-index is set by submit\.sh/],
    [['--workers', '2', '--gpus-per-task', 'x', '--', 's.tar', '--out', 'o'], /--gpus-per-task must be a whole number/],
    [['--workers', '2', '--bogus', '--', 's.tar', '--out', 'o'], /unknown option --bogus/],
    [['--workers', '2'], /no mimic score arguments/],
  ])('submit.sh refuses %j', async (args, message) => {
    const r = await run('submit.sh', [...args, '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('score.sbatch refuses to run outside a job array', async () => {
    const r = await run('score.sbatch', ['s.tar', '--out', 'o']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not an array task');
  });

  it('finish.sbatch stops when the run is not complete', async () => {
    const r = await run('finish.sbatch', ['/nonexistent-run'], { MIMIC: join(REPO, 'bin', 'mimic') });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('holds no scoring run');
    expect(r.stderr).toContain('resubmit.sh /nonexistent-run');
  });

  it('resubmit.sh needs a run that submit.sh launched', async () => {
    const r = await run('resubmit.sh', [REPO]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('_slurm/submission.sh not found');
  });
});
