import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeSafetensors, floatTensor, parseSafetensors, readSafetensors, writeSafetensors, type SafetensorsInput } from '../../src/model/safetensors.js';
import { PYTHON, REPO } from '../helpers/bundles.js';

const dir = mkdtempSync(join(tmpdir(), 'mimic-st-write-'));

/** Tensors in the order PyTorch's side (scripts/safetensors_io.py) writes them: sorted by name. */
const tensors: Record<string, SafetensorsInput> = {
  a_f32: { dtype: 'F32', shape: [2, 3], data: Float32Array.of(1.5, -2, 0, 3.25, 1e-30, -7) },
  b_i64: { dtype: 'I64', shape: [2], data: BigInt64Array.of(-(2n ** 40n), 5n) },
  c_scalar: { dtype: 'F32', shape: [], data: Float32Array.of(2.6592) },
  d_u8: { dtype: 'U8', shape: [3], data: Uint8Array.of(0, 7, 255) },
};

describe('safetensors writer', () => {
  it('writes what the reader reads back, with an 8-byte-aligned header', () => {
    const buf = encodeSafetensors(tensors, { kind: 'test' });
    expect(Number(buf.readBigUInt64LE(0)) % 8).toBe(0);
    const st = parseSafetensors(buf, 'mem');
    expect(st.metadata).toEqual({ kind: 'test' });
    expect(Array.from(floatTensor(st, 'a_f32', [2, 3]).data)).toEqual(Array.from(tensors.a_f32!.data as Float32Array));
    expect(floatTensor(st, 'c_scalar', []).data[0]).toBe(Math.fround(2.6592));
    expect(Array.from(st.tensors.get('b_i64')!.data as BigInt64Array)).toEqual([-(2n ** 40n), 5n]);
    expect(Array.from(st.tensors.get('d_u8')!.data)).toEqual([0, 7, 255]);
  });

  it("gives the same bytes as the PyTorch-side writer, which reads it back (scripts/safetensors_io.py)", async () => {
    const ours = join(dir, 'ours.safetensors');
    const theirs = join(dir, 'theirs.safetensors');
    await writeSafetensors(ours, tensors, { kind: 'test' });
    const out = execFileSync(PYTHON, ['-c', `
import sys, json, torch
sys.path.insert(0, ${JSON.stringify(join(REPO, 'scripts'))})
import safetensors_io as st
t, meta = st.load(${JSON.stringify(ours)})
st.save(${JSON.stringify(theirs)}, t, meta)
print(json.dumps({k: [str(t[k].dtype), list(t[k].shape), t[k].flatten().tolist()] for k in sorted(t)} | {'meta': meta}))
`], { encoding: 'utf8' });
    const seen = JSON.parse(out) as Record<string, [string, number[], number[]]>;
    expect(seen.a_f32).toEqual(['torch.float32', [2, 3], Array.from(tensors.a_f32!.data as Float32Array)]);
    expect(seen.b_i64).toEqual(['torch.int64', [2], [-(2 ** 40), 5]]);
    expect(seen.c_scalar![1]).toEqual([]);
    expect(seen.d_u8).toEqual(['torch.uint8', [3], [0, 7, 255]]);
    expect(seen.meta).toEqual({ kind: 'test' });
    expect(readFileSync(ours).equals(readFileSync(theirs))).toBe(true);
    expect((await readSafetensors(ours)).tensors.size).toBe(4);
    // Written through a temporary name: nothing else is left in the folder.
    expect(readdirSync(dir).sort()).toEqual(['ours.safetensors', 'theirs.safetensors']);
  });

  it('refuses data that does not fill the shape, and a tensor named __metadata__', () => {
    expect(() => encodeSafetensors({ x: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } })).toThrow(/needs 16 bytes, its data has 12/);
    expect(() => encodeSafetensors({ x: { dtype: 'F64', shape: [2], data: new Float32Array(2) } })).toThrow(/needs 16 bytes/);
    expect(() => encodeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } })).toThrow(/cannot name a tensor/);
  });
});
