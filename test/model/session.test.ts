/**
 * Sessions and execution providers on a machine without a GPU or the CUDA EP libraries (the CI machine): the CPU
 * path runs with the documented thread settings, `cuda` fails with a typed error naming the missing library and
 * the two ways to install it, and `auto` falls back to the CPU. (With the CUDA EP installed these expectations
 * would differ; the tests check that first and say so.)
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/model/bundle.js';
import { openEncoders } from '../../src/model/encoders.js';
import { CUDA_EP_LIBS, ortNativeDir, probeCpu, probeCuda, unresolvedLibraries } from '../../src/model/providers.js';
import { cpuSessionOptions, createSession, parseDevice, resolveDevice } from '../../src/model/session.js';
import { tinyBundle } from '../helpers/bundles.js';

const cudaInstalled = CUDA_EP_LIBS.every((l) => existsSync(join(ortNativeDir(), l)));

let bundleDir: string;
beforeAll(async () => {
  bundleDir = await tinyBundle({ seed: 1 });
});

describe('device specs', () => {
  it('parses cpu, cuda, cuda:N and auto, and refuses anything else with a usage error', () => {
    expect(parseDevice('cpu')).toEqual({ kind: 'cpu', deviceId: 0 });
    expect(parseDevice('cuda')).toEqual({ kind: 'cuda', deviceId: 0 });
    expect(parseDevice('CUDA:3')).toEqual({ kind: 'cuda', deviceId: 3 });
    expect(parseDevice('auto')).toEqual({ kind: 'auto', deviceId: 0 });
    for (const bad of ['gpu', 'cuda:', 'cuda:x', 'cpu:1', 'cuda:-1', '']) {
      expect(() => parseDevice(bad), bad).toThrow(expect.objectContaining({ code: 'E_USAGE', hint: expect.stringMatching(/cpu, cuda, cuda:N/) }));
    }
  });

  it('CPU options: intra-op = available cores, inter-op 1, no spinning', () => {
    const o = cpuSessionOptions();
    expect(o.intraOpNumThreads).toBe(availableParallelism());
    expect(o.interOpNumThreads).toBe(1);
    expect(o.extra).toEqual({ session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } });
    expect(cpuSessionOptions({ intraOpThreads: 1, allowSpinning: true }).intraOpNumThreads).toBe(1);
  });
});

describe('CPU sessions', () => {
  it('run a bundle encoder and report the CPU provider', async () => {
    const { session, provider, deviceId } = await createSession(join(bundleDir, 'visual.onnx'), { device: 'cpu' });
    expect(provider).toBe('cpu');
    expect(deviceId).toBeUndefined();
    const out = await session.run({ pixel_values: new ort.Tensor('float32', new Float32Array(2 * 3 * 32 * 32).fill(0.5), [2, 3, 32, 32]) });
    expect((out.image_features as ort.Tensor).dims).toEqual([2, 64]);
    await session.release();
  });

  it('load a model from bytes, and turn unparseable bytes into E_ONNX naming the label', async () => {
    await expect(createSession(new Uint8Array([1, 2, 3, 4]), { device: 'cpu', label: 'my-graph' })).rejects.toMatchObject({
      code: 'E_ONNX',
      message: expect.stringMatching(/onnxruntime cannot load my-graph: .*protobuf parsing failed/i),
    });
  });

  it('openEncoders checks and runs both towers; wrong batch sizes are usage errors', async () => {
    const enc = await openEncoders(await loadBundle(bundleDir), { device: 'cpu', intraOpThreads: 1 });
    try {
      expect(enc.provider).toBe('cpu');
      expect((await enc.imageFeatures(new Float32Array(3 * 32 * 32), 1)).length).toBe(64);
      const ids = new BigInt64Array(77);
      ids[0] = 49406n;
      ids[1] = 49407n;
      expect((await enc.textFeatures(ids, 1)).length).toBe(48);
      expect(() => enc.imageFeatures(new Float32Array(10), 1)).toThrow(/pixel batch has 10 values, expected 1×3×32×32/);
    } finally {
      await enc.release();
    }
  });

  it('the CPU provider probes as available', async () => {
    expect(await probeCpu()).toEqual({ name: 'cpu', available: true });
  });
});

describe.runIf(!cudaInstalled)('without the CUDA EP libraries', () => {
  it('probeCuda says which files are missing, where, and how to get them', async () => {
    const s = await probeCuda(0);
    expect(s.available).toBe(false);
    expect(s.missing).toEqual([...CUDA_EP_LIBS]);
    expect(s.reason).toContain(`libonnxruntime_providers_cuda.so, libonnxruntime_providers_shared.so are not in ${ortNativeDir()}`);
    expect(s.hint).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12 node script\/install\.js/);
    expect(s.hint).toMatch(/scripts\/install-cuda-ep/);
    expect(s.hint).toMatch(/com\.github\.asus4\.onnxruntime\.linux-x64-gpu@0\.4\.9/);
  });

  it('device cuda and cuda:N fail with E_DEVICE naming the missing library', async () => {
    for (const device of ['cuda', 'cuda:1']) {
      await expect(createSession(join(bundleDir, 'visual.onnx'), { device })).rejects.toMatchObject({
        code: 'E_DEVICE',
        message: expect.stringMatching(new RegExp(`cannot use ${device === 'cuda' ? 'cuda:0' : 'cuda:1'}: .*libonnxruntime_providers_cuda\\.so`)),
        hint: expect.stringMatching(/install-cuda-ep/),
      });
    }
  });

  it('device auto falls back to the CPU and runs', async () => {
    expect(await resolveDevice('auto')).toEqual({ provider: 'cpu' });
    const enc = await openEncoders(await loadBundle(bundleDir), { device: 'auto' });
    expect(enc.provider).toBe('cpu');
    await enc.release();
  });
});

describe('on any machine', () => {
  it('probeCuda either loads the EP or gives a reason and a fix', async () => {
    const s = await probeCuda(0);
    if (cudaInstalled) expect(s.available || /needs .* not found|could not start the CUDA EP/.test(s.reason ?? '')).toBe(true);
    else expect(s).toMatchObject({ available: false, missing: [...CUDA_EP_LIBS] });
    if (!s.available) expect(s.hint).toBeTruthy();
  });
});

describe('finding what the CUDA EP lacks, with real ELF files', () => {
  // onnxruntime-node's binding needs libonnxruntime.so.1, found through its $ORIGIN rpath; a copy elsewhere cannot.
  const binding = join(ortNativeDir(), 'onnxruntime_binding.node');

  it('unresolvedLibraries lists what ldd cannot find, and nothing for a resolvable library', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mimic-ldd-'));
    copyFileSync(binding, join(dir, 'lib.so'));
    expect(await unresolvedLibraries(join(dir, 'lib.so'))).toEqual(['libonnxruntime.so.1']);
    expect(await unresolvedLibraries(binding)).toEqual([]);
  });

  it('probeCuda names a missing dependency of the EP library and how to provide it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mimic-ep-'));
    copyFileSync(binding, join(dir, 'libonnxruntime_providers_cuda.so'));
    copyFileSync(binding, join(dir, 'libonnxruntime_providers_shared.so'));
    const s = await probeCuda(0, { nativeDir: dir });
    expect(s).toMatchObject({ available: false, missing: ['libonnxruntime.so.1'] });
    expect(s.reason).toBe('libonnxruntime_providers_cuda.so needs libonnxruntime.so.1, not found on the library path');
    expect(s.hint).toMatch(/LD_LIBRARY_PATH/);
    rmSync(join(dir, 'libonnxruntime_providers_shared.so'));
    expect((await probeCuda(0, { nativeDir: dir })).missing).toEqual(['libonnxruntime_providers_shared.so']);
  });
});
