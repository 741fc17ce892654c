/**
 * `mimic score` as a Slurm job array on a real one-node cluster (slurmctld + slurmd + munged, see cluster.ts),
 * submitted with scripts/slurm/submit.sh exactly as a user would: three array tasks score the demo pool with tiny
 * bundles, a dependent job checks and filters. Two tasks fail part way: worker 1 is cancelled (scancel) while it
 * is inside a shard (its source blocks until the test releases it), and worker 2 is SIGKILLed while renaming a
 * finished score file into place (MIMIC_FAULT, src/faults.ts), which leaves a partial shard. The finish job never
 * runs; `mimic status` names the unfinished shards and their workers; resubmit.sh reruns only those two workers,
 * which skip their finished shards, and the merged scores are byte for byte those of a single-process run.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemoDataset } from '../../src/demo/index.js';
import { REPO, tinyBundle } from '../helpers/bundles.js';
import { tempDir } from '../helpers/shards.js';
import { ensureSlurm, LocalSlurm, waitFor } from './cluster.js';

const exec = promisify(execFile);
const MIMIC = join(REPO, 'bin', 'mimic');
const SLURM = join(REPO, 'scripts', 'slurm');
const WORKERS = 3;

async function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, timeout: 240_000, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

function scoreFiles(out: string): string[] {
  return readdirSync(join(out, 'p')).filter((f) => f.endsWith('.arrow')).sort();
}

describe('mimic score on a Slurm job array', () => {
  const t = tempDir('mimic-slurm-test-');
  let cluster: LocalSlurm;
  let spec: string;
  let scoreArgs: string[];
  let shardNames: string[];
  const out = t.path('run');
  const release = t.path('release');
  let installS = 0;
  let startS = 0;

  beforeAll(async () => {
    installS = await ensureSlurm();
    const t0 = performance.now();
    cluster = await LocalSlurm.start({ cpus: 4, gpus: 2 });
    startS = (performance.now() - t0) / 1000;
    const reference = await tinyBundle({ seed: 1 });
    const proxy = await tinyBundle({ from: reference, perturb: 0.05, seed: 2 });
    const demo = await buildDemoDataset({ out: t.path('demo'), limit: 40, referenceOnly: 0, writeReference: false, samplesPerShard: 6, seed: 3 });
    const shards = [...demo.poolShards].sort();
    expect(shards.length).toBeGreaterThanOrEqual(8);
    // Shard 4 belongs to worker 1 (4 mod 3). Its source sends the first few KB and then blocks until the test
    // creates `release`: worker 1 is then certainly inside a shard when it is cancelled. The spec is the same
    // string in every run, so every run has the same shard names and identity.
    const gate = t.path('gate.sh');
    writeFileSync(gate, `#!/bin/sh\nif [ -e ${release} ]; then exec cat "$1"; fi\nhead -c 3000 "$1"\nexec sleep 300\n`);
    spec = shards.map((s, i) => (i === 4 ? `pipe:sh ${gate} ${s}` : s)).join('::');
    shardNames = shards.map((s) => s.slice(s.lastIndexOf('/') + 1));
    scoreArgs = [spec, '--allow-pipe', '--proxy', `p=${proxy}`, '--reference', reference, '--batch-size', '4', '--device', 'cpu'];
  });

  afterAll(async () => {
    await cluster?.stop();
    t.cleanup();
  });

  it('scores the pool as an array, reruns only the failed workers (scancelled, killed), and matches a single-process run byte for byte', async () => {
    // The rerun's "scoring plan" log lines (info) are checked below.
    const env = { ...cluster.env, MIMIC, MIMIC_LOG_LEVEL: 'info' };
    // Worker 2 owns shards 2 and 5: it dies right before its score file for shard 5 is renamed into place.
    const faultEnv = { ...env, MIMIC_FAULT: `before-rename:1:${shardNames[5]}.arrow` };
    const submitted = await sh(join(SLURM, 'submit.sh'), [
      // One (device-node) GPU per task: two of the three workers run at a time. Scoring itself runs on the CPU.
      '--workers', String(WORKERS), '--cpus-per-task', '1', '--gpus-per-task', '1', '--',
      ...scoreArgs, '--out', out, '--filter', '--keep', 'mimic_visual >= p50', '--npy', t.path('kept.npy'),
    ], { env: faultEnv, cwd: t.dir });
    expect(submitted.code, submitted.stderr).toBe(0);
    const [arrayJob, finishJob] = submitted.stdout.trim().split(/\s+/);
    expect(arrayJob).toMatch(/^\d+$/);
    expect(finishJob).toMatch(/^\d+$/);

    // Worker 0 finishes, worker 2 is killed, worker 1 scores shard 1 and then waits inside shard 4.
    await waitFor(async () => {
      const tasks = await cluster.arrayTasks(arrayJob!);
      return tasks.get(0)?.state === 'COMPLETED' && tasks.get(2)?.state === 'FAILED' && tasks.get(1)?.state === 'RUNNING' &&
        existsSync(join(out, 'p', `${shardNames[1]}.arrow`));
    }, 180_000, 'worker 0 to finish, worker 2 to fail and worker 1 to be inside shard 4', async () =>
      `${JSON.stringify([...(await cluster.arrayTasks(arrayJob!)).values()])}\n${logsOf(out)}\n${cluster.logs()}`);
    await cluster.run('scancel', [`${arrayJob}_1`]);
    await cluster.waitIdle(60_000);
    expect((await cluster.arrayTasks(arrayJob!)).get(1)?.state).toBe('CANCELLED');
    // afterok can no longer be met: the finish job is cancelled rather than left pending.
    expect((await cluster.job(finishJob!)).state).toBe('CANCELLED');

    const status = await sh(MIMIC, ['status', out]);
    expect(status.code).toBe(1);
    const owned = (w: number) => shardNames.map((_, i) => i).filter((i) => i % WORKERS === w);
    expect(owned(1).slice(0, 3)).toEqual([1, 4, 7]);
    expect(owned(2).slice(0, 2)).toEqual([2, 5]);
    // Worker 1: shard 1 done, the rest never written. Worker 2: shard 5 left as a temporary file only.
    const open1 = owned(1).slice(1);
    const open2 = owned(2).slice(1);
    const rx = (state: string, i: number, w: number) => new RegExp(`${state}\\s+${shardNames[i]!.replace('.', '\\.')} \\(worker ${w}\\)`);
    for (const i of open1) expect(status.stdout).toMatch(rx('missing', i, 1));
    expect(status.stdout).toMatch(rx('partial', 5, 2));
    expect(status.stdout).toContain(`worker 1: done 1, to do ${open1.length}`);
    expect(status.stdout).toContain(`worker 2: done 1, to do ${open2.length}`);
    expect(status.stdout).toMatch(/worker 0: done \d+, to do 0\n/);
    const json = JSON.parse((await sh(MIMIC, ['status', out, '--json'])).stdout) as { shards: { name: string; state: string; worker: number }[] };
    expect(json.shards.filter((s) => s.state !== 'done').map((s) => s.name).sort()).toEqual([...open1, ...open2].map((i) => shardNames[i]).sort());

    const before = new Map(scoreFiles(out).map((f) => [f, statSync(join(out, 'p', f))]));
    expect(before.size).toBe(shardNames.length - open1.length - open2.length);

    // Rerun: only workers 1 and 2 (found by resubmit.sh from `mimic status`), with the first launch's arguments.
    writeFileSync(release, '');
    const resubmitted = await sh(join(SLURM, 'resubmit.sh'), [out], { env });
    expect(resubmitted.code, resubmitted.stderr).toBe(0);
    expect(resubmitted.stderr).toContain(`rerunning workers 1,2 of ${WORKERS}`);
    const [rerunJob, finish2] = resubmitted.stdout.trim().split(/\s+/);
    await cluster.waitIdle(180_000);
    const rerunTasks = await cluster.arrayTasks(rerunJob!);
    expect([...rerunTasks.keys()].sort()).toEqual([1, 2]);
    expect([...rerunTasks.values()].map((t) => t.state)).toEqual(['COMPLETED', 'COMPLETED']);
    expect((await cluster.job(finish2!)).state).toBe('COMPLETED');

    // Each worker skipped the shard it had finished and scored only the ones it had not.
    for (const [w, open] of [[1, open1], [2, open2]] as const) {
      const rerunLog = readFileSync(join(out, '_slurm', 'logs', `score-${rerunJob}_${w}.log`), 'utf8');
      const plan = rerunLog.split('\n').filter((l) => l.includes('"scoring plan"')).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(plan).toEqual([expect.objectContaining({ worker: `${w}/${WORKERS}`, alreadyDone: 1, todo: open.length })]);
    }
    expect(readdirSync(join(out, 'p')).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // Every task was given one of the node's GPUs, as score.sbatch logs it.
    const logs = readdirSync(join(out, '_slurm', 'logs')).filter((f) => f.startsWith('score-'));
    expect(logs).toHaveLength(WORKERS + 2);
    for (const f of logs) expect(readFileSync(join(out, '_slurm', 'logs', f), 'utf8'), f).toMatch(/CPUs 1, CUDA_VISIBLE_DEVICES=[01]\n/);
    for (const [f, st] of before) {
      const now = statSync(join(out, 'p', f));
      expect({ f, ino: now.ino, mtime: now.mtimeMs }).toEqual({ f, ino: st.ino, mtime: st.mtimeMs });
    }
    expect((await sh(MIMIC, ['status', out])).code).toBe(0);
    const finishLog = readFileSync(join(out, '_slurm', 'logs', `finish-${finish2}.log`), 'utf8');
    expect(finishLog).toContain('complete');
    expect(existsSync(t.path('kept.npy'))).toBe(true);

    // One process, the same arguments: the same bytes.
    const single = t.path('single');
    const one = await sh(MIMIC, ['score', ...scoreArgs, '--out', single, '--threads', '1']);
    expect(one.code, one.stderr).toBe(0);
    expect(scoreFiles(single)).toEqual(scoreFiles(out));
    expect(scoreFiles(out)).toHaveLength(shardNames.length);
    for (const f of scoreFiles(out)) {
      expect(readFileSync(join(out, 'p', f)).equals(readFileSync(join(single, 'p', f))), f).toBe(true);
    }
    const filtered = await sh(MIMIC, ['filter', single, '--keep', 'mimic_visual >= p50', '--npy', t.path('kept-single.npy')]);
    expect(filtered.code, filtered.stderr).toBe(0);
    expect(readFileSync(t.path('kept.npy')).equals(readFileSync(t.path('kept-single.npy')))).toBe(true);
    console.log(`slurm: apt install ${installS.toFixed(1)} s (0 = already installed), cluster start ${startS.toFixed(1)} s`);
  }, 600_000);
});

function logsOf(out: string): string {
  const dir = join(out, '_slurm', 'logs');
  if (!existsSync(dir)) return '(no logs)';
  return readdirSync(dir).map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-8).join('\n')}`).join('\n');
}
