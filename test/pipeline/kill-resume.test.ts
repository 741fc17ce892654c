/**
 * Kill and resume: `mimic score` is SIGKILLed at exact points (just before and just after a score file's rename,
 * before a manifest write: MIMIC_FAULT, src/faults.ts) and at seeded random times, each rerun picking up where
 * the last one stopped; the final score files are byte-identical to an uninterrupted run's, no temporary file is
 * left, and the worker manifest records every shard.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { buildTar, tempDir, writeBytes } from '../helpers/shards.js';
import { bundles, entriesOf, goodSamples, mimic, mimicAsync, rng, scoreFileHashes, tempFilesIn } from './helpers.js';

const t = tempDir('mimic-score-kill-');
afterAll(t.cleanup);

let refs: Awaited<ReturnType<typeof bundles>>;
let baseline: Record<string, string>;
let baselineMs = 0;

const args = (out: string) => [
  'score', t.path('pool/s{0..4}.tar'), '--proxy', `a=${refs.proxy}`, '--proxy', `b=${refs.proxy2}`, '--reference', refs.reference,
  '--out', out, '--batch-size', '4', '--device', 'cpu',
];

beforeAll(async () => {
  refs = await bundles();
  for (let i = 0; i < 5; i++) {
    const samples = await goodSamples(7 + 2 * i, { seed: 60 + i, prefix: `s${i}-` });
    // One unreadable sample per shard, so that the status column varies too.
    samples[1]!.files.jpg = Buffer.from('not an image');
    writeBytes(t.path(`pool/s${i}.tar`), await buildTar(entriesOf(samples)));
  }
  const started = Date.now();
  const r = mimic(args(t.path('baseline')));
  baselineMs = Date.now() - started;
  expect(r.status, r.stderr).toBe(0);
  baseline = scoreFileHashes(t.path('baseline'));
  expect(Object.keys(baseline)).toHaveLength(10);
}, 300_000);

function expectComplete(out: string): void {
  expect(scoreFileHashes(out)).toEqual(baseline);
  expect(tempFilesIn(out)).toEqual([]);
  const m = JSON.parse(readFileSync(`${out}/_manifests/worker-0-of-1.json`, 'utf8'));
  expect(Object.keys(m.shards).sort()).toEqual(['s0.tar', 's1.tar', 's2.tar', 's3.tar', 's4.tar']);
  for (const [name, rec] of Object.entries(m.shards) as [string, { state: string; rows: number; statuses: Record<string, number> }][]) {
    const i = Number(name[1]);
    expect(rec, name).toMatchObject({ state: 'done', rows: 7 + 2 * i, statuses: { ok: 6 + 2 * i, decode_error: 1 } });
  }
}

describe('kill and resume', () => {
  it('at exact points: before and after a score file rename, before and during a manifest write', async () => {
    const out = t.path('faults');
    // Each launch dies at its point; the next one resumes. Renames are counted per launch, so `before-rename:3`
    // is the first file of the second shard it writes (two checkpoints per shard).
    const faults = [
      'before-rename:1:.arrow',
      'after-rename:1:.arrow',
      'before-rename:3:.arrow',
      'after-rename:2:.arrow',
      'before-manifest:1',
      'before-rename:1:worker-0-of-1.json',
      // One shard is left: its files are renamed, then the launch dies at its final manifest write, so the
      // next launch has nothing to score and must still record that shard in the manifest.
      'before-manifest:2',
    ];
    for (const [k, fault] of faults.entries()) {
      const r = await mimicAsync(args(out), { env: { MIMIC_FAULT: fault } });
      expect(r.signal, `${fault}: ${r.stderr}`).toBe('SIGKILL');
      if (k === 0) {
        // Killed before its first rename: only a temporary file of shard 0, which status calls partial.
        expect(tempFilesIn(out)).toEqual([expect.stringMatching(/^a\/s0\.tar\.arrow\.tmp-/)]);
        const st = mimic(['status', out]);
        expect(st.status).toBe(1);
        expect(st.stdout).toMatch(/done 0\s+failed 0\s+partial 1\s+missing 4/);
        expect(st.stdout).toMatch(/partial\s+s0\.tar \(worker 0\)/);
      }
    }
    // A kill before a rename leaves the temporary file, which the next launch removes.
    const last = mimic(args(out));
    expect(last.status, last.stderr).toBe(0);
    expect(last.stdout).toMatch(/scored 0 shard\(s\) of 5 \(worker 0 of 1; 5 already done\)/);
    expectComplete(out);
  }, 120_000);

  it('at seeded random times', async () => {
    const out = t.path('random');
    const next = rng(20250601);
    let kills = 0;
    for (let k = 0; k < 4; k++) {
      // Anywhere from process start to the end of an uninterrupted run: planning, loading, reading, writing.
      const at = Math.floor(200 + next() * baselineMs);
      const r = await mimicAsync(args(out), { killAfterMs: at });
      if (r.killed) kills++;
      else expect(r.status, r.stderr).toBe(0);
    }
    const last = mimic(args(out));
    expect(last.status, last.stderr).toBe(0);
    expectComplete(out);
    expect(kills).toBeGreaterThan(0);
  }, 120_000);
});
