/**
 * Determinism and resume: the same run twice gives the same bytes; a rerun skips shards whose files are complete
 * and match (verified from the files, not assumed) and redoes the rest; another set of arguments against an
 * existing output folder stops with exit 2 and says what differs; a shard that breaks part way is scored as far
 * as it reads, reported failed (exit 1) and retried by the next run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scorePool, type ScoreOptions } from '../../src/pipeline/index.js';
import { buildTar, tempDir, writeBytes } from '../helpers/shards.js';
import { bundles, entriesOf, goodSamples, logMessages, mimic, readScores, scoreFileHashes, tempFilesIn } from './helpers.js';

const t = tempDir('mimic-score-resume-');
afterAll(t.cleanup);

let refs: Awaited<ReturnType<typeof bundles>>;
let baseline: Record<string, string>;
const B = 4;
const shardGlob = () => t.path('pool/shard-{0..3}.tar');

const options = (out: string, extra: Partial<ScoreOptions> = {}): ScoreOptions => ({
  shards: [shardGlob()],
  proxies: [`p=${refs.proxy}`],
  reference: refs.reference,
  out,
  batchSize: B,
  device: 'cpu',
  ...extra,
});

const cliArgs = (out: string, extra: string[] = []) => [
  'score', shardGlob(), '--proxy', `p=${refs.proxy}`, '--reference', refs.reference, '--out', out, '--batch-size', String(B), '--device', 'cpu', ...extra,
];

async function writePoolShard(i: number, n: number): Promise<void> {
  writeBytes(t.path(`pool/shard-${i}.tar`), await buildTar(entriesOf(await goodSamples(n, { seed: 40 + i, prefix: `k${i}-` }))));
}

beforeAll(async () => {
  refs = await bundles();
  for (let i = 0; i < 4; i++) await writePoolShard(i, 6 + i);
  await scorePool(options(t.path('a')));
  baseline = scoreFileHashes(t.path('a'));
}, 300_000);

describe('determinism', () => {
  it('a second run into another folder, in another process, writes byte-identical score files', () => {
    const r = mimic(cliArgs(t.path('b')));
    expect(r.status, r.stderr).toBe(0);
    expect(Object.keys(baseline)).toHaveLength(4);
    expect(scoreFileHashes(t.path('b'))).toEqual(baseline);
  });
});

describe('resume', () => {
  it('skips every complete shard and leaves its file untouched', async () => {
    const file = t.path('a/p/shard-0.tar.arrow');
    const before = statSync(file);
    const s = await scorePool(options(t.path('a')));
    expect(s.shards).toMatchObject({ mine: 4, alreadyDone: 4, scored: 0 });
    expect(statSync(file).mtimeMs).toBe(before.mtimeMs);
    expect(statSync(file).ino).toBe(before.ino);
  });

  it('redoes a shard whose file is truncated, whose footer is damaged, or that belongs to other arguments', async () => {
    const out = t.path('a');
    truncateSync(join(out, 'p/shard-1.tar.arrow'), statSync(join(out, 'p/shard-1.tar.arrow')).size - 9);
    const damaged = readFileSync(join(out, 'p/shard-2.tar.arrow'));
    // The footer (schema with its metadata) sits just before the trailing length and magic.
    damaged.fill(0xee, damaged.length - 120, damaged.length - 10);
    writeFileSync(join(out, 'p/shard-2.tar.arrow'), damaged);
    // A complete, valid score file of another run (batch size 2) in place of shard 3's.
    await scorePool(options(t.path('other'), { shards: [t.path('pool/shard-3.tar')], batchSize: 2 }));
    copyFileSync(t.path('other/p/shard-3.tar.arrow'), join(out, 'p/shard-3.tar.arrow'));
    expect(scoreFileHashes(out)).not.toEqual(baseline);

    const s = await scorePool(options(out));
    expect(s.shards).toMatchObject({ alreadyDone: 1, scored: 3, failed: 0 });
    expect(scoreFileHashes(out)).toEqual(baseline);
    expect(tempFilesIn(out)).toEqual([]);
  });

  it('redoes a shard whose input changed size', async () => {
    const out = t.path('b');
    await writePoolShard(2, 11);
    try {
      const r = mimic(cliArgs(out));
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/scored 1 shard\(s\) of 4 \(worker 0 of 1; 3 already done\)/);
      expect(readScores(join(out, 'p/shard-2.tar.arrow')).length).toBe(11);
      const { 'p/shard-2.tar.arrow': changed, ...rest } = scoreFileHashes(out);
      const { 'p/shard-2.tar.arrow': was, ...restBefore } = baseline;
      expect(changed).not.toBe(was);
      expect(rest).toEqual(restBefore);
    } finally {
      await writePoolShard(2, 8);
    }
  });

  it('redoes a shard rewritten with the same size (its modification time changed)', async () => {
    const out = t.path('c');
    const r0 = mimic(cliArgs(out));
    expect(r0.status, r0.stderr).toBe(0);
    const before = scoreFileHashes(out);
    const shard = t.path('pool/shard-1.tar');
    const size = statSync(shard).size;
    // Same bytes, same size, a new mtime: the input may have been regenerated, so it is scored again.
    writeFileSync(shard, readFileSync(shard));
    utimesSync(shard, new Date(), new Date(Date.now() + 5000));
    expect(statSync(shard).size).toBe(size);
    const r = mimic(cliArgs(out));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/scored 1 shard\(s\) of 4 \(worker 0 of 1; 3 already done\)/);
    const after = scoreFileHashes(out);
    expect(after['p/shard-1.tar.arrow']).not.toBe(before['p/shard-1.tar.arrow']);
    const { 'p/shard-1.tar.arrow': _a, ...restAfter } = after;
    const { 'p/shard-1.tar.arrow': _b, ...restBefore } = before;
    expect(restAfter).toEqual(restBefore);
  });

  it('keeps a manifest per worker with every shard, its rows and statuses', () => {
    const m = JSON.parse(readFileSync(t.path('b/_manifests/worker-0-of-1.json'), 'utf8'));
    expect(m.assigned).toEqual(['shard-0.tar', 'shard-1.tar', 'shard-2.tar', 'shard-3.tar']);
    expect(Object.keys(m.shards).sort()).toEqual(m.assigned);
    expect(m.shards['shard-2.tar']).toMatchObject({ state: 'done', rows: 11, statuses: { ok: 11 } });
    const run = JSON.parse(readFileSync(t.path('b/_manifests/run.json'), 'utf8'));
    expect(run).toMatchObject({ numWorkers: 1, batchSize: B, fillPolicy: 'previous-batch-tail', shardNames: m.assigned });
  });
});

describe('another run in the same folder', () => {
  it('exits 2 and names each argument that differs', () => {
    const cases: [string[], RegExp][] = [
      [['--batch-size', '8'], /batchSize: was 4, now 8/],
      [['--reference-clip-score'], /referenceClipScore: was false, now true/],
      [['--caption-key', 'caption'], /captionKey: was "txt", now "caption"/],
    ];
    for (const [extra, message] of cases) {
      const r = mimic(cliArgs(t.path('a'), extra));
      expect(r.status, extra.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/holds a run with other arguments/);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('names another proxy and another shard list', () => {
    const proxy = mimic(['score', shardGlob(), '--proxy', `p=${refs.proxy2}`, '--reference', refs.reference, '--out', t.path('a'), '--batch-size', String(B)]);
    expect(proxy.status).toBe(2);
    expect(proxy.stderr).toMatch(/checkpoints: was \[\{"name":"p","hash":"[0-9a-f]+"\}\], now/);
    const shards = mimic(['score', t.path('pool/shard-{0..2}.tar'), '--proxy', `p=${refs.proxy}`, '--reference', refs.reference, '--out', t.path('a'), '--batch-size', String(B)]);
    expect(shards.status).toBe(2);
    expect(shards.stderr).toMatch(/shardNames: 0 added, 1 removed \(e\.g\. -shard-3\.tar\)/);
  });

  it('refuses a worker count other than the first launch\'s', () => {
    const r = mimic(cliArgs(t.path('a'), ['--num-workers', '2']));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/launched with 1 workers, not 2/);
    expect(r.stderr).toMatch(/fixed at the first launch/);
  });

  it('refuses a worker index at a first launch without --num-workers, before recording anything', () => {
    const out = t.path('fresh');
    const r = mimic(cliArgs(out), { env: { SLURM_ARRAY_TASK_ID: '3' } });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/worker index 3 is not below the run's worker count 1/);
    expect(r.stderr).toMatch(/--num-workers/);
    expect(existsSync(join(out, '_manifests/run.json'))).toBe(false);
    // The corrected launch is accepted.
    const ok = mimic(cliArgs(out, ['--num-workers', '4']), { env: { SLURM_ARRAY_TASK_ID: '3' } });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/scored 1 shard\(s\) of 1 \(worker 3 of 4/);
    expect(Object.keys(scoreFileHashes(out))).toEqual(['p/shard-3.tar.arrow']);
  });
});

describe('a truncated shard', () => {
  it('scores what it can read, exits 1, shows as failed, and is retried by the next run', async () => {
    const samples = await goodSamples(9, { seed: 77, prefix: 'tr' });
    const whole = await buildTar(entriesOf(samples));
    // Cut right after the 7th sample's image member: six complete samples, then the 7th without its caption,
    // marked truncated (nothing says it ended).
    const probe = await buildTar(entriesOf(samples.slice(0, 6)));
    const cut = probe.length - 1024 + 512 + Math.ceil(samples[6]!.files.jpg.length / 512) * 512;
    const shard = writeBytes(t.path('trunc/t.tar'), whole.subarray(0, cut));
    const out = t.path('trunc-out');
    const args = ['score', shard, '--proxy', `p=${refs.proxy}`, '--reference', refs.reference, '--out', out, '--batch-size', String(B)];

    const r1 = mimic(args);
    expect(r1.status, r1.stderr).toBe(1);
    expect(r1.stdout).toMatch(/1 failed/);
    expect(r1.stdout).toMatch(/samples: 7 {2}ok 6 {2}truncated 1/);
    expect(r1.stdout).toContain(`failed: ${shard}: `);
    expect(r1.stdout).toMatch(/right after member "tr0006\.jpg".*cut short/);
    expect(logMessages(r1.stderr).some((l) => l.msg.includes('shard failed'))).toBe(true);
    const f = readScores(join(out, 'p/t.tar.arrow'));
    expect(f.col('status')).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'truncated']);
    expect(f.num('loss').slice(0, 6).every((v) => typeof v === 'number')).toBe(true);
    expect(f.num('batch_size').slice(0, 6)).toEqual([4, 4, 4, 4, 4, 4]);
    expect(f.metadata['mimic.shard_status']).toBe('failed');
    expect(f.metadata['mimic.shard_error']).toMatch(/cut short/);

    const st = mimic(['status', out]);
    expect(st.status).toBe(1);
    expect(st.stdout).toMatch(/failed 1/);
    expect(st.stdout).toMatch(/failed\s+t\.tar \(worker 0\): .*cut short/);

    const r2 = mimic(args);
    expect(r2.status).toBe(1);
    expect(r2.stdout).toMatch(/scored 1 shard\(s\) of 1 \(worker 0 of 1; 0 already done\), 1 failed/);

    writeBytes(shard, whole);
    const r3 = mimic(args);
    expect(r3.status, r3.stderr).toBe(0);
    expect(r3.stdout).toMatch(/samples: 9 {2}ok 9/);
    expect(readScores(join(out, 'p/t.tar.arrow')).metadata['mimic.shard_status']).toBe('ok');
    const st2 = mimic(['status', out]);
    expect(st2.status).toBe(0);
    expect(st2.stdout).toMatch(/done 1 .*complete/);
  });
});

describe('a shard that cannot be reached', () => {
  it('is recorded failed while the others are scored (exit 1), scored by the rerun once it is back, and a done shard whose source vanished is kept', async () => {
    const out = t.path('gone-out');
    const gone = t.path('gone/shard-x.tar');
    const args = ['score', `${t.path('pool/shard-0.tar')}::${gone}`, '--proxy', `p=${refs.proxy}`, '--reference', refs.reference, '--out', out, '--batch-size', String(B)];
    const r1 = mimic(args);
    expect(r1.status, r1.stderr).toBe(1);
    expect(r1.stdout).toMatch(/scored 2 shard\(s\) of 2 .*1 failed/);
    expect(r1.stdout).toContain(`failed: ${gone}: no such shard`);
    expect(logMessages(r1.stderr).some((l) => l.msg === 'cannot reach the shard' && l.shard === gone)).toBe(true);
    expect(readScores(join(out, 'p/pool/shard-0.tar.arrow')).num('mimic_proj_both')).toEqual(readScores(t.path('a/p/shard-0.tar.arrow')).num('mimic_proj_both'));
    const st = mimic(['status', out]);
    expect(st.status).toBe(1);
    expect(st.stdout).toMatch(/failed\s+gone\/shard-x\.tar \(worker 0\)/);

    // Back again: the rerun scores it and only it.
    writeBytes(gone, readFileSync(t.path('pool/shard-1.tar')));
    const r2 = mimic(args);
    expect(r2.status, r2.stderr).toBe(0);
    expect(r2.stdout).toMatch(/scored 1 shard\(s\) of 2 \(worker 0 of 1; 1 already done\)/);
    expect(readScores(join(out, 'p/gone/shard-x.tar.arrow')).length).toBe(7);

    // Gone again after it was scored: its complete score file cannot be checked against it, and is kept.
    const before = scoreFileHashes(out);
    rmSync(gone);
    const r3 = mimic(args);
    expect(r3.status, r3.stderr).toBe(0);
    expect(r3.stdout).toMatch(/2 already done/);
    expect(scoreFileHashes(out)).toEqual(before);
  });

  it('stops with exit 2 naming the first file when none of the worker\'s shards can be read', () => {
    const r = mimic(['score', t.path('nowhere/a.tar'), t.path('nowhere/b.tar'), '--proxy', `p=${refs.proxy}`, '--reference', refs.reference, '--out', t.path('nowhere-out')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/none of this worker's 2 shard\(s\) can be read; the first: cannot read .*nowhere\/a\.tar/);
    expect(r.stderr).toMatch(/hint: check the shard paths/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
