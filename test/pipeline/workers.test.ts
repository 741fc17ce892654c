/**
 * Two workers: shard i belongs to worker i mod n; each writes only its own shards' files and its own manifest;
 * together they produce exactly the files of one worker; `mimic status` names what is missing and whose it is,
 * and exits 0 only when everything is done. The index comes from --worker-index, $SLURM_ARRAY_TASK_ID or
 * $JOB_COMPLETION_INDEX; the count is fixed by the first launch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { scorePool } from '../../src/pipeline/index.js';
import { buildTar, tempDir, writeBytes } from '../helpers/shards.js';
import { bundles, entriesOf, goodSamples, listFiles, mimic, mimicAsync, scoreFileHashes, tempFilesIn } from './helpers.js';

const t = tempDir('mimic-score-workers-');
afterAll(t.cleanup);

let refs: Awaited<ReturnType<typeof bundles>>;
let single: Record<string, string>;
const SHARDS = ['x/a.tar', 'x/b.tar', 'y/a.tar', 'y/c.tar', 'y/d.tar'];

const args = (out: string, extra: string[] = []) => [
  'score', ...SHARDS.map((s) => t.path('pool', s)), '--proxy', `p=${refs.proxy}`, '--reference', refs.reference,
  '--out', out, '--batch-size', '4', '--device', 'cpu', ...extra,
];

beforeAll(async () => {
  refs = await bundles();
  for (const [i, s] of SHARDS.entries()) {
    writeBytes(t.path('pool', s), await buildTar(entriesOf(await goodSamples(5 + i, { seed: 90 + i, prefix: `w${i}-` }))));
  }
  await scorePool({ shards: SHARDS.map((s) => t.path('pool', s)), proxies: [`p=${refs.proxy}`], reference: refs.reference, out: t.path('one'), batchSize: 4, device: 'cpu' });
  single = scoreFileHashes(t.path('one'));
  // Same basename in two folders: the layout keeps the relative path.
  expect(Object.keys(single).sort()).toEqual(SHARDS.map((s) => `p/${s}.arrow`).sort());
}, 300_000);

describe('two workers', () => {
  it('worker 0 writes shards 0, 2, 4 only; status names the rest as worker 1\'s; worker 1 (from $SLURM_ARRAY_TASK_ID) completes the run', () => {
    const out = t.path('two');
    const w0 = mimic(args(out, ['--num-workers', '2', '--worker-index', '0']));
    expect(w0.status, w0.stderr).toBe(0);
    expect(w0.stdout).toMatch(/scored 3 shard\(s\) of 3 \(worker 0 of 2/);
    expect(listFiles(out).filter((f) => f.endsWith('.arrow'))).toEqual(['p/x/a.tar.arrow', 'p/y/a.tar.arrow', 'p/y/d.tar.arrow']);

    const st = mimic(['status', out]);
    expect(st.status).toBe(1);
    expect(st.stdout).toMatch(/done 3\s+failed 0\s+partial 0\s+missing 2/);
    expect(st.stdout).toMatch(/missing\s+x\/b\.tar \(worker 1\)/);
    expect(st.stdout).toMatch(/missing\s+y\/c\.tar \(worker 1\)/);
    expect(st.stdout).toMatch(/worker 1: done 0, to do 2 .*never started/);
    const json = JSON.parse(mimic(['status', out, '--json']).stdout);
    expect(json.shards.map((s: { name: string; worker: number; state: string }) => [s.name, s.worker, s.state])).toEqual([
      ['x/a.tar', 0, 'done'], ['x/b.tar', 1, 'missing'], ['y/a.tar', 0, 'done'], ['y/c.tar', 1, 'missing'], ['y/d.tar', 0, 'done'],
    ]);

    // Worker 1 takes its index from the environment and the count from the run record.
    const w1 = mimic(args(out), { env: { SLURM_ARRAY_TASK_ID: '1' } });
    expect(w1.status, w1.stderr).toBe(0);
    expect(w1.stdout).toMatch(/scored 2 shard\(s\) of 2 \(worker 1 of 2/);
    expect(scoreFileHashes(out)).toEqual(single);
    const done = mimic(['status', out]);
    expect(done.status, done.stdout).toBe(0);
    expect(done.stdout).toMatch(/done 5 .*complete/);

    const m0 = JSON.parse(readFileSync(`${out}/_manifests/worker-0-of-2.json`, 'utf8'));
    const m1 = JSON.parse(readFileSync(`${out}/_manifests/worker-1-of-2.json`, 'utf8'));
    expect(m0.assigned).toEqual(['x/a.tar', 'y/a.tar', 'y/d.tar']);
    expect(m1.assigned).toEqual(['x/b.tar', 'y/c.tar']);
    expect(Object.keys(m1.shards).sort()).toEqual(m1.assigned);
  });

  it('two workers started at once (index from $JOB_COMPLETION_INDEX) agree on one run record and write the same files', async () => {
    const out = t.path('concurrent');
    const [a, b] = await Promise.all([
      mimicAsync(args(out, ['--num-workers', '2']), { env: { JOB_COMPLETION_INDEX: '0' } }),
      mimicAsync(args(out, ['--num-workers', '2']), { env: { JOB_COMPLETION_INDEX: '1' } }),
    ]);
    expect(a.status, a.stderr).toBe(0);
    expect(b.status, b.stderr).toBe(0);
    expect(scoreFileHashes(out)).toEqual(single);
    expect(tempFilesIn(out)).toEqual([]);
    expect(listFiles(`${out}/_manifests`)).toEqual(['run.json', 'worker-0-of-2.json', 'worker-1-of-2.json']);
  });

  it('a worker index beyond the count is a usage error', () => {
    const r = mimic(args(t.path('two'), ['--worker-index', '2']));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/worker index 2 is not below the run's worker count 2/);
  });
});
