/**
 * Defaults that depend on the machine: how many prep threads a run starts, by cores, device and JPEG decoder.
 * The core count is the one thing faked here (a test machine has 2 cores; the rule is about 8 and more).
 */
import { describe, expect, it, vi } from 'vitest';

let cores = 16;
vi.mock('node:os', async (importOriginal) => {
  const os = await importOriginal<typeof import('node:os')>();
  return { ...os, default: { ...os, availableParallelism: () => cores }, availableParallelism: () => cores };
});

const { defaultPrepWorkers, resolveScoreOptions } = await import('../../src/pipeline/options.js');

const base = { shards: ['a.tar'], proxies: ['p'], reference: 'r', out: 'o' };

describe('default prep threads', () => {
  it('feeding a GPU with the wasm decoder: all cores but the scoring and inference threads', () => {
    cores = 16;
    expect(defaultPrepWorkers(['cuda:0'], 'auto')).toBe(14);
    expect(defaultPrepWorkers(['cuda:0', 'cuda:1'], 'wasm')).toBe(14);
  });

  it('a quarter of the cores with libvips decoding on its own pool, or when the CPU runs the encoders', () => {
    cores = 16;
    expect(defaultPrepWorkers(['cuda:0'], 'libvips')).toBe(4);
    expect(defaultPrepWorkers(['cpu'], 'auto')).toBe(4);
  });

  it('none below 8 cores, whatever the device', () => {
    cores = 4;
    expect(defaultPrepWorkers(['cuda:0'], 'auto')).toBe(0);
    expect(defaultPrepWorkers(['cpu'], 'wasm')).toBe(0);
  });

  it('resolves to auto unless given, and checks what is given', () => {
    expect(resolveScoreOptions(base).prepWorkers).toBe('auto');
    expect(resolveScoreOptions({ ...base, prepWorkers: 3 }).prepWorkers).toBe(3);
    expect(() => resolveScoreOptions({ ...base, prepWorkers: -1 })).toThrow(/whole number/);
    expect(resolveScoreOptions(base).jpegDecoder).toBe('auto');
    expect(() => resolveScoreOptions({ ...base, jpegDecoder: 'turbo' as 'wasm' })).toThrow(/JPEG decoder must be auto, wasm or libvips/);
  });
});
