/**
 * configs/k8s: the structure Kubernetes and the worker rely on (an Indexed Job whose completions, parallelism and
 * --num-workers agree, retries per index, a GPU request, every path the command uses on the shared volume), and
 * the commands themselves: each pod's `mimic score` is run here as Kubernetes would run it (the same arguments,
 * JOB_COMPLETION_INDEX = 0..N-1, /data mapped to a temporary folder, CPU instead of CUDA), then the filter Job's
 * script, and the result is checked.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { buildDemoDataset } from '../../src/demo/index.js';
import { REPO, tinyBundle } from '../helpers/bundles.js';
import { tempDir } from '../helpers/shards.js';

const exec = promisify(execFile);
const K8S = join(REPO, 'configs', 'k8s');

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function load(file: string): Doc[] {
  const docs = parseAllDocuments(readFileSync(join(K8S, file), 'utf8'));
  for (const d of docs) expect(d.errors, file).toEqual([]);
  return docs.map((d) => d.toJS() as Doc);
}

function flagValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Whether `path` lies inside one of the container's volume mounts. */
function mountedAt(container: Doc, path: string): Doc | undefined {
  return (container.volumeMounts as Doc[]).find((m) => path === m.mountPath || path.startsWith(`${String(m.mountPath).replace(/\/$/, '')}/`));
}

describe('configs/k8s/score-job.yaml', () => {
  const docs = load('score-job.yaml');
  const job = docs.find((d) => d.kind === 'Job')!;
  const pvc = docs.find((d) => d.kind === 'PersistentVolumeClaim')!;
  const pod = job?.spec.template.spec;
  const container = pod?.containers[0];
  const args = (container?.args ?? []) as string[];

  it('is an Indexed Job with one completion per worker, all running at once', () => {
    expect(job.apiVersion).toBe('batch/v1');
    expect(job.spec.completionMode).toBe('Indexed');
    const workers = Number(flagValue(args, '--num-workers'));
    expect(Number.isInteger(workers) && workers > 0).toBe(true);
    expect(job.spec.completions).toBe(workers);
    expect(job.spec.parallelism).toBe(workers);
  });

  it('runs mimic score with the worker index from JOB_COMPLETION_INDEX, not from its arguments', () => {
    expect(pod.containers).toHaveLength(1);
    expect(container.command).toEqual(['mimic', 'score']);
    expect(args.some((a) => a.startsWith('--worker-index'))).toBe(false);
    // Kubernetes sets it; a value here would override the pod's own index.
    expect(((container.env ?? []) as Doc[]).map((e) => e.name)).not.toContain('JOB_COMPLETION_INDEX');
    for (const flag of ['--proxy', '--reference', '--out', '--device']) expect(flagValue(args, flag), flag).toBeTruthy();
    expect(flagValue(args, '--device')).toBe('cuda');
  });

  it('retries each index on its own and fails the Job at once on a usage error', () => {
    expect(job.spec.backoffLimitPerIndex).toBeGreaterThan(0);
    expect(pod.restartPolicy).toBe('Never');
    const rule = (job.spec.podFailurePolicy.rules as Doc[]).find((r) => r.action === 'FailJob')!;
    expect(rule.onExitCodes).toEqual({ containerName: container.name, operator: 'In', values: [2] });
  });

  it('asks for one GPU per pod', () => {
    expect(container.resources.requests['nvidia.com/gpu']).toBe(1);
    // Extended resources must have equal requests and limits.
    expect(container.resources.limits['nvidia.com/gpu']).toBe(1);
  });

  it('keeps the shards, the bundles and --out on the shared ReadWriteMany volume', () => {
    expect(pvc.spec.accessModes).toEqual(['ReadWriteMany']);
    const paths = [args[0]!, flagValue(args, '--proxy')!.replace(/^[^=/]+=/, ''), flagValue(args, '--reference')!, flagValue(args, '--out')!];
    for (const p of paths) {
      const mount = mountedAt(container, p);
      expect(mount, p).toBeDefined();
      const volume = (pod.volumes as Doc[]).find((v) => v.name === mount!.name)!;
      expect(volume.persistentVolumeClaim.claimName).toBe(pvc.metadata.name);
    }
  });

  it('has a filter Job on the same volume that reads the score Job\'s --out', () => {
    const filter = load('filter-job.yaml').find((d) => d.kind === 'Job')!;
    const spec = filter.spec.template.spec;
    expect(spec.containers[0].image).toBe(container.image);
    expect(spec.volumes[0].persistentVolumeClaim.claimName).toBe(pvc.metadata.name);
    const script = (spec.containers[0].args as string[]).join(' ');
    expect(script).toMatch(new RegExp(`^mimic status ${flagValue(args, '--out')} &&`));
    expect(mountedAt(spec.containers[0], flagValue(args, '--out')!)).toBeDefined();
  });
});

describe('the Jobs\' commands, run as the pods would run them', () => {
  const t = tempDir('mimic-k8s-');
  const data = t.path('data');
  const bin = t.path('bin');
  beforeAll(async () => {
    const reference = await tinyBundle({ seed: 1 });
    const proxy = await tinyBundle({ from: reference, perturb: 0.05, seed: 2 });
    mkdirSync(join(data, 'models'), { recursive: true });
    cpSync(reference, join(data, 'models', 'reference'), { recursive: true });
    cpSync(proxy, join(data, 'models', 'proxy'), { recursive: true });
    await buildDemoDataset({ out: t.path('demo'), limit: 24, samplesPerShard: 5, seed: 4 });
    cpSync(t.path('demo', 'pool'), join(data, 'pool'), { recursive: true });
    mkdirSync(bin);
    symlinkSync(join(REPO, 'bin', 'mimic'), join(bin, 'mimic'));
  });
  afterAll(() => t.cleanup());

  it('N pods score the pool, then the filter Job selects and reshards it', async () => {
    const job = load('score-job.yaml').find((d) => d.kind === 'Job')!;
    const container = job.spec.template.spec.containers[0];
    const workers = job.spec.completions as number;
    const shards = readdirSync(join(data, 'pool')).filter((f) => f.endsWith('.tar')).sort();
    // The pool here is small: its shard list replaces the 1280-shard pattern; CUDA is not on this machine.
    const num = (f: string) => /^pool-(\d+)\.tar$/.exec(f)![1];
    const args = [`/data/pool/pool-{${num(shards[0]!)}..${num(shards.at(-1)!)}}.tar`, ...(container.args as string[]).slice(1)];
    const mapped = args.map((a) => (a === 'cuda' ? 'cpu' : a.replace(/\/data\b/g, data)));
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, SLURM_ARRAY_TASK_ID: '' };
    // Two pods at a time (two cores here); the order of completion does not matter.
    const pods = Array.from({ length: workers }, (_, i) => i);
    const failures: string[] = [];
    await Promise.all([0, 1].map(async (lane) => {
      for (const i of pods.filter((p) => p % 2 === lane)) {
        try {
          await exec(container.command[0], [...container.command.slice(1), ...mapped, '--threads', '1'], { env: { ...env, JOB_COMPLETION_INDEX: String(i) } });
        } catch (e) {
          failures.push(`pod ${i}: ${(e as { stderr?: string }).stderr}`);
        }
      }
    }));
    expect(failures).toEqual([]);
    const out = join(data, 'scores');
    const manifests = readdirSync(join(out, '_manifests')).filter((f) => f.startsWith('worker-')).sort();
    expect(manifests).toEqual(pods.map((i) => `worker-${i}-of-${workers}.json`).sort());
    for (const i of pods) {
      const m = JSON.parse(readFileSync(join(out, '_manifests', `worker-${i}-of-${workers}.json`), 'utf8')) as { workerIndex: number; assigned: string[] };
      expect(m.workerIndex).toBe(i);
      expect(m.assigned).toEqual(shards.filter((_, k) => k % workers === i));
    }

    const filter = load('filter-job.yaml').find((d) => d.kind === 'Job')!;
    const fc = filter.spec.template.spec.containers[0];
    const script = (fc.args as string[]).map((a) => a.replace(/\/data\b/g, data));
    const r = await exec(fc.command[0], [...fc.command.slice(1), ...script], { env: { ...env, MIMIC_LOG_LEVEL: 'warn' } });
    expect(r.stdout).toContain('complete');
    expect(existsSync(join(data, 'selection', 'uids.npy'))).toBe(true);
    const kept = (JSON.parse(readFileSync(join(data, 'selection', 'summary.json'), 'utf8')) as { kept: number }).kept;
    expect(kept).toBeGreaterThan(0);
    const sizes = JSON.parse(readFileSync(join(data, 'kept', 'sizes.json'), 'utf8')) as Record<string, number>;
    expect(Object.values(sizes).reduce((a, b) => a + b, 0)).toBe(kept);
  }, 240_000);
});
