import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { floatTensor, parseSafetensors, readSafetensors } from '../../src/model/safetensors.js';
import { PYTHON, REPO } from '../helpers/bundles.js';

const dir = mkdtempSync(join(tmpdir(), 'mimic-st-'));
const file = join(dir, 'mixed.safetensors');

/** A safetensors file by hand: header JSON then raw bytes (for malformed variants). */
function build(header: object, data: Uint8Array): Buffer {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

beforeAll(() => {
  // PyTorch writes every dtype, and the float32 value torch itself converts each one to: the reader must agree.
  execFileSync(PYTHON, ['-c', `
import sys, torch
sys.path.insert(0, ${JSON.stringify(join(REPO, 'scripts'))})
import safetensors_io as st
g = torch.Generator().manual_seed(0)
x = torch.randn(5, 7, generator=g) * 100
x[0, :4] = torch.tensor([0.0, -0.0, 65504.0, 6e-8])  # zero, negative zero, largest half, a half subnormal
t = {'f32': x, 'f64': x.double(), 'f16': x.half(), 'bf16': x.bfloat16(),
     'f16_as_f32': x.half().float(), 'bf16_as_f32': x.bfloat16().float(),
     'i64': torch.tensor([[-(2**40), 3], [7, 2**50]]), 'i32': torch.tensor([-5, 9], dtype=torch.int32),
     'u8': torch.tensor([0, 255], dtype=torch.uint8), 'scalar': torch.tensor(2.5)}
st.save(${JSON.stringify(file)}, t, {'who': 'test'})
`]);
});

describe('safetensors reader', () => {
  it('reads every dtype PyTorch writes, widening floats to float32 exactly as torch does', async () => {
    const st = await readSafetensors(file);
    expect(st.metadata).toEqual({ who: 'test' });
    const f32 = floatTensor(st, 'f32', [5, 7]);
    expect(f32.dtype).toBe('F32');
    expect(Array.from(floatTensor(st, 'f64').data)).toEqual(Array.from(f32.data));
    expect(Array.from(floatTensor(st, 'f16').data)).toEqual(Array.from(floatTensor(st, 'f16_as_f32').data));
    expect(Array.from(floatTensor(st, 'bf16').data)).toEqual(Array.from(floatTensor(st, 'bf16_as_f32').data));
    expect(floatTensor(st, 'f16').data[2]).toBe(65504);
    expect(floatTensor(st, 'f16').data[3]).toBeGreaterThan(0);
    expect(Object.is(floatTensor(st, 'f16').data[1], -0)).toBe(true);
    const i64 = st.tensors.get('i64')!;
    expect(i64.shape).toEqual([2, 2]);
    expect(Array.from(i64.data as BigInt64Array)).toEqual([-(2n ** 40n), 3n, 7n, 2n ** 50n]);
    expect(Array.from(st.tensors.get('i32')!.data)).toEqual([-5, 9]);
    expect(Array.from(st.tensors.get('u8')!.data)).toEqual([0, 255]);
    const s = floatTensor(st, 'scalar', []);
    expect(s.shape).toEqual([]);
    expect(s.data[0]).toBe(2.5);
  });

  it('names the file and the tensor when a tensor is missing or has another shape or type', async () => {
    const st = await readSafetensors(file);
    expect(() => floatTensor(st, 'nope')).toThrow(/mixed\.safetensors has no tensor "nope"/);
    expect(() => floatTensor(st, 'f32', [7, 5])).toThrow(/tensor "f32" has shape \[5,7\], expected \[7,5\]/);
    expect(() => floatTensor(st, 'i64')).toThrow(/tensor "i64" is I64, expected a float type/);
  });

  it('rejects a truncated file, naming it', () => {
    const bytes = readFileSync(file);
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
    return expect(readSafetensors(cut)).rejects.toMatchObject({
      code: 'E_BUNDLE',
      file: cut,
      message: expect.stringMatching(/cut\.safetensors is not a valid safetensors file: tensor \w+ ends at byte \d+ of a data section of \d+ bytes \(truncated\?\)/),
    });
  });

  it('rejects files shorter than the length prefix, or whose header runs past the end', () => {
    expect(() => parseSafetensors(new Uint8Array(5), 'x.safetensors')).toThrow(/x\.safetensors .*5 bytes, fewer than the 8-byte/);
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(1000n);
    expect(() => parseSafetensors(b, 'y.safetensors')).toThrow(/header claims 1000 bytes but the file has 8/);
  });

  it('rejects bad headers: not JSON, not an object, bad dtype, sizes that disagree, overlapping tensors', () => {
    const raw = (text: string) => {
      const h = Buffer.from(text);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.length));
      return Buffer.concat([len, h]);
    };
    expect(() => parseSafetensors(raw('{"a": '), 'h.st')).toThrow(/h\.st is not a valid safetensors file: the header is not JSON/);
    expect(() => parseSafetensors(raw('[1,2]'), 'h.st')).toThrow(/the header is not an object/);
    const data = new Uint8Array(16);
    expect(() => parseSafetensors(build({ a: { dtype: 'F8', shape: [2], data_offsets: [0, 2] } }, data), 'h.st'))
      .toThrow(/tensor a has unsupported dtype F8/);
    expect(() => parseSafetensors(build({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, data), 'h.st'))
      .toThrow(/tensor a \(F32 \[3\]\) needs 12 bytes but its offsets span 8/);
    expect(() => parseSafetensors(build({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, data), 'h.st'))
      .toThrow(/tensor a has an invalid shape/);
    expect(() => parseSafetensors(build({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }, data), 'h.st')).toThrow(/tensors a and b overlap/);
  });

  it('reads a missing file as an E_BUNDLE error naming it', () =>
    expect(readSafetensors(join(dir, 'absent.safetensors'))).rejects.toMatchObject({
      code: 'E_BUNDLE',
      message: expect.stringContaining('absent.safetensors'),
    }));
});
