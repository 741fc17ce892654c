/**
 * The command line of `mimic score`: `--config FILE` (YAML keys are the long flags; flags win; unknown keys are
 * an error), the presets in configs/, usage errors, the progress line (ETA from OpenCLIP's sizes.json) and the
 * final summary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { scorePool, type ScoreProgress } from '../../src/pipeline/index.js';
import { progressLine } from '../../src/cli/score.js';
import { buildTar, tempDir, writeBytes } from '../helpers/shards.js';
import { REPO } from '../helpers/bundles.js';
import { bundles, entriesOf, goodSamples, mimic, readScores } from './helpers.js';

const t = tempDir('mimic-score-cli-');
afterAll(t.cleanup);
let refs: Awaited<ReturnType<typeof bundles>>;
let shard: string;

beforeAll(async () => {
  refs = await bundles();
  shard = writeBytes(t.path('pool/s.tar'), await buildTar(entriesOf(await goodSamples(6, { seed: 3 }))));
}, 300_000);

const writeConfig = (name: string, doc: Record<string, unknown>): string => {
  const file = t.path(name);
  writeFileSync(file, stringify(doc));
  return file;
};

describe('--config', () => {
  it('takes shards, bundles and flags from YAML; flags on the command line win', () => {
    const cfg = writeConfig('run.yaml', {
      shards: [shard],
      proxy: [`p=${refs.proxy}`],
      reference: refs.reference,
      out: t.path('cfg-out'),
      'batch-size': 2,
      device: 'cpu',
    });
    const r = mimic(['score', '--config', cfg]);
    expect(r.status, r.stderr).toBe(0);
    expect(readScores(t.path('cfg-out/p/s.tar.arrow')).num('batch_size')).toEqual([2, 2, 2, 2, 2, 2]);

    const o = mimic(['score', '--config', cfg, '--batch-size', '4', '--out', t.path('cfg-out-4')]);
    expect(o.status, o.stderr).toBe(0);
    expect(readScores(t.path('cfg-out-4/p/s.tar.arrow')).num('batch')).toEqual([0, 0, 0, 0, 1, 1]);
    expect(JSON.parse(readFileSync(t.path('cfg-out-4/_manifests/run.json'), 'utf8')).batchSize).toBe(4);
  });

  it('an unknown key is an error (exit 2) that names it and lists the known ones', () => {
    const cfg = writeConfig('typo.yaml', { 'batch-sise': 4, device: 'cpu' });
    const r = mimic(['score', shard, '--proxy', refs.proxy, '--reference', refs.reference, '--out', t.path('typo'), '--config', cfg]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/E_CONFIG: unknown key "batch-sise"/);
    expect(r.stderr).toMatch(/batch-size/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a bad value is an error that names the key', () => {
    const cfg = writeConfig('bad.yaml', { 'batch-size': 'many' });
    const r = mimic(['score', shard, '--proxy', refs.proxy, '--reference', refs.reference, '--out', t.path('bad'), '--config', cfg]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/"batch-size"/);
  });

  it('the presets in configs/ parse and run (the CPU one here)', () => {
    const gpu = mimic(['score', '--config', join(REPO, 'configs/score-gpu.yaml'), '--help']);
    expect(gpu.status).toBe(0);
    const r = mimic(['score', '--config', join(REPO, 'configs/score-cpu.yaml'), shard, '--proxy', `p=${refs.proxy}`, '--reference', refs.reference,
      '--out', t.path('preset'), '--batch-size', '4']);
    expect(r.status, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(t.path('preset/_manifests/worker-0-of-1.json'), 'utf8'));
    expect(m).toMatchObject({ device: 'cpu', provider: 'cpu' });
    const run = JSON.parse(readFileSync(t.path('preset/_manifests/run.json'), 'utf8'));
    expect(run).toMatchObject({ batchSize: 4, imageKeys: ['jpg', 'jpeg', 'png', 'webp'], captionKey: 'txt', metadataKey: 'json' });
  });
});

describe('usage', () => {
  it('names what is missing', () => {
    const r = mimic(['score', shard, '--reference', refs.reference]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/mimic score needs --proxy, --out/);
  });

  it('refuses a proxy whose heads do not fit the reference, before creating the output folder', async () => {
    const other = await (await import('../helpers/bundles.js')).tinyBundle({ seed: 1, embedDim: 16 });
    const r = mimic(['score', shard, '--proxy', other, '--reference', refs.reference, '--out', t.path('mismatch')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/E_BUNDLE: .*cannot be paired/);
    expect(existsSync(t.path('mismatch'))).toBe(false);
  });
});

describe('progress and summary', () => {
  it('reports progress per sample with the ETA from sizes.json, and a summary by status', async () => {
    const dir = t.path('sized');
    writeBytes(join(dir, 'a.tar'), await buildTar(entriesOf(await goodSamples(5, { seed: 8 }))));
    const samples = await goodSamples(4, { seed: 9 });
    samples[0]!.files.txt = '';
    writeBytes(join(dir, 'b.tar'), await buildTar(entriesOf(samples)));
    writeFileSync(join(dir, 'sizes.json'), JSON.stringify({ 'a.tar': 5, 'b.tar': 4 }));
    const seen: ScoreProgress[] = [];
    const s = await scorePool({
      shards: [join(dir, '{a,b}.tar')], proxies: [`p=${refs.proxy}`], reference: refs.reference, out: t.path('sized-out'), batchSize: 4, device: 'cpu',
      onProgress: (p) => seen.push(structuredClone(p)),
    });
    expect(seen.length).toBeGreaterThanOrEqual(9);
    expect(seen.every((p) => p.expectedSamples === 9 && p.shardsTotal === 2)).toBe(true);
    expect(seen.map((p) => p.samples)).toEqual([...seen.map((p) => p.samples)].sort((a, b) => a - b));
    const last = seen.at(-1)!;
    expect(last).toMatchObject({ samples: 9, shardsDone: 2, statuses: { ok: 8, bad_caption: 1 } });
    expect(s.statuses).toEqual({ ok: 8, bad_caption: 1 });

    const line = progressLine({ ...last, samples: 3, elapsedS: 2, statuses: { ok: 2, bad_caption: 1 } });
    expect(line).toBe('score 3/9 samples · 1.5/s · shards 2/2 · 1 not ok · ETA 4s');
    expect(progressLine({ samples: 2500, shardsDone: 1, shardsTotal: 4, shardsSkipped: 3, elapsedS: 10, statuses: { ok: 2500 } }))
      .toBe('score 2.5k samples · 250.0/s · shards 1/4 (+3 done before)');
  });

  it('prints the summary, and --json prints it as JSON', () => {
    const out = t.path('json-out');
    const r = mimic(['score', shard, '--proxy', `p=${refs.proxy}`, '--reference', refs.reference, '--out', out, '--batch-size', '4', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ samples: 6, statuses: { ok: 6 }, shards: { run: 1, scored: 1, failed: 0 }, provider: 'cpu' });
    expect(s.samplesPerS).toBeGreaterThan(0);
    const again = mimic(['score', shard, '--proxy', `p=${refs.proxy}`, '--reference', refs.reference, '--out', out, '--batch-size', '4']);
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/scored 0 shard\(s\) of 1 \(worker 0 of 1; 1 already done\)/);
  });
});

describe('signals', () => {
  it('SIGINT and SIGTERM stop the run with 130 / 143, say how to go on, leave no temporary file; a rerun finishes it', async () => {
    const { spawn } = await import('node:child_process');
    const { readdirSync } = await import('node:fs');
    const BIN = join(REPO, 'bin', 'mimic');
    // The second shard's source sends a few KB and then hangs: the run is certainly inside it when signalled.
    const gate = t.path('gate.sh');
    writeFileSync(gate, `#!/bin/sh\nif [ -e ${t.path('open')} ]; then exec cat "$1"; fi\nhead -c 3000 "$1"\nexec sleep 299.25\n`);
    const spec = `${shard}::pipe:sh ${gate} ${shard}`;
    for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      const out = t.path(`sig-${sig}`);
      const args = ['score', spec, '--allow-pipe', '--proxy', `p=${refs.proxy}`, '--reference', refs.reference, '--out', out, '--batch-size', '2', '--device', 'cpu', '--log-format', 'json'];
      const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, MIMIC_LOG_LEVEL: 'info' } });
      let stderr = '';
      const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the first shard was not scored: ${stderr}`)), 60_000);
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('"shard scored"')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.kill(sig);
      expect(await exited).toBe(code);
      expect(stderr).toContain(`mimic: stopped by ${sig}; finished outputs are kept`);
      expect(stderr).toContain('rerun the same command to resume');
      expect(stderr).not.toMatch(/\n\s+at /);
      const files = readdirSync(join(out, 'p'), { recursive: true }).map(String);
      expect(files.filter((f) => f.includes('.tmp-'))).toEqual([]);
      expect(files.filter((f) => f.endsWith('.arrow'))).toHaveLength(1);
      // The pipe command (a grandchild: sh -c → sh gate.sh → sleep) was stopped with the run.
      await new Promise((r) => setTimeout(r, 200));
      const { execFileSync } = await import('node:child_process');
      expect(execFileSync('ps', ['-eo', 'args']).toString()).not.toContain('sleep 299.25');

      writeFileSync(t.path('open'), '');
      try {
        const r = mimic(args);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/scored 1 shard\(s\) of 2 \(worker 0 of 1; 1 already done\)/);
      } finally {
        (await import('node:fs')).rmSync(t.path('open'));
      }
    }
  });
});
