/** `mimic doctor` and `mimic check` as a user runs them (the compiled CLI; `npm test` builds it first). */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { CUDA_EP_LIBS, ortNativeDir } from '../../src/model/providers.js';
import { tinyBundle } from '../helpers/bundles.js';

const bin = fileURLToPath(new URL('../../bin/mimic', import.meta.url));
const mimic = (...args: string[]) =>
  spawnSync(process.execPath, [bin, '--log-level', 'warn', ...args], { encoding: 'utf8', timeout: 120_000 });
const cudaInstalled = CUDA_EP_LIBS.every((l) => existsSync(join(ortNativeDir(), l)));
const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at /);

let ref: string;
let proxy: string;
let other: string;
beforeAll(async () => {
  ref = await tinyBundle({ seed: 1 });
  proxy = await tinyBundle({ from: ref, seed: 5, perturb: 0.1 });
  other = await tinyBundle({ seed: 2 });
});

describe('mimic doctor', () => {
  it('prints versions, cores and providers as a table', () => {
    const r = mimic('doctor');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^onnxruntime-node\s+1\.29\.0$/m);
    expect(r.stdout).toMatch(/^libvips\s+\d+\.\d+/m);
    expect(r.stdout).toMatch(/^apache-arrow\s+\d+\.\d+/m);
    expect(r.stdout).toMatch(/^cpu\s+\d+ cores available/m);
    expect(r.stdout).toMatch(/^provider cpu\s+loads$/m);
    if (!cudaInstalled) {
      expect(r.stdout).toMatch(/^provider cuda\s+unavailable: the CUDA EP libraries libonnxruntime_providers_cuda\.so/m);
      expect(r.stdout).toMatch(/to fix: .*scripts\/install-cuda-ep/);
    }
  });

  it('--json gives the same facts to programs', () => {
    const r = mimic('doctor', '--json');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.versions['onnxruntime-node']).toBe('1.29.0');
    expect(j.versions.onnxruntime).toBe('1.29.0');
    expect(j.versions.sharp).toMatch(/^\d+\.\d+\.\d+/);
    expect(j.cpu.cores).toBeGreaterThan(0);
    expect(j.providers.map((p: { name: string }) => p.name)).toEqual(['cpu', 'cuda']);
    expect(j.providers[0].available).toBe(true);
    expect(j.cudaEp.files.map((f: { name: string }) => f.name)).toEqual([...CUDA_EP_LIBS]);
    expect(j.sessionDefaults).toMatchObject({ interOpThreads: 1, allowSpinning: false });
    if (!cudaInstalled) expect(j.providers[1]).toMatchObject({ available: false, missing: [...CUDA_EP_LIBS] });
  });

  it('refuses a bad --cuda-device', () => {
    const r = mimic('doctor', '--cuda-device', 'x');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--cuda-device must be a GPU index/);
  });
});

describe('mimic check', () => {
  it('verifies one bundle against its source model', () => {
    const r = mimic('check', '--proxy', ref, '--device', 'cpu');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/onnxruntime \(cpu\) vs source model on 3 check inputs: ok/);
    expect(r.stdout).toMatch(/no problems found/);
  });

  it('a proxy sharing the reference\'s lineage: table, verdict, exit 0', () => {
    const r = mimic('check', '--proxy', proxy, '--reference', ref, '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\s+layer\s+shape\s+‖W‖\s+‖W_ref‖\s+‖W_ref−W‖\s+‖W_ref−W‖\/‖W‖\s+cos\(W,W_ref\)$/m);
    expect(r.stdout).toMatch(/^\s+visual\s+64×32\s/m);
    expect(r.stdout).toMatch(/^\s+both\s+112×32\s/m);
    expect(r.stdout).toMatch(/^verdict: shares lineage: mimic scores are meaningful/m);
  });

  it('an unrelated pair: verdict says so, exit 1; --json carries the numbers', () => {
    const r = mimic('check', '--proxy', other, '--reference', ref, '--no-verify', '--json');
    expect(r.status).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.pair.verdict.level).toBe('unrelated');
    expect(j.pair.layers).toHaveLength(3);
    expect(j.bundles.map((b: { role: string; verifySkipped: string }) => [b.role, b.verifySkipped])).toEqual([['proxy', 'not requested'], ['reference', 'not requested']]);
    expect(j.problems[0]).toMatch(/^unrelated:/);
  });

  it('a missing bundle or an unusable device is one error line, exit 2, no stack trace', () => {
    const r = mimic('check', '--proxy', join(ref, 'nope'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/mimic: error E_BUNDLE: .*nope is not a model bundle folder/);
    noStack(r.stderr);
    if (!cudaInstalled) {
      const c = mimic('check', '--proxy', ref, '--device', 'cuda');
      expect(c.status).toBe(2);
      expect(c.stderr).toMatch(/mimic: error E_DEVICE: cannot use cuda:0: .*libonnxruntime_providers_cuda\.so/);
      expect(c.stderr).toMatch(/hint: .*scripts\/install-cuda-ep/);
      noStack(c.stderr);
    }
    const d = mimic('check', '--proxy', ref, '--device', 'tpu');
    expect(d.status).toBe(2);
    expect(d.stderr).toMatch(/E_USAGE: unknown device "tpu"/);
  });
});
