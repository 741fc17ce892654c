import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGradGraph } from '../../src/mimic/grad-graph.js';
import { inlineExternalData, parseModel, readModelFile, serializeModel } from '../../src/model/onnx/io.js';
import { writeFileAtomicSync } from '../../src/atomic-file.js';
import { DataType, AttributeType, decodeModel, encodeModel, ModelTooLargeError, ProtoDecodeError, type ModelProto } from '../../src/model/onnx/proto.js';
import { ProtoWriter, readFields } from '../../src/model/onnx/wire.js';
import { randomInput } from '../mimic/helpers.js';
import { toGraphInputs } from '../mimic/helpers.js';
import { onnxTool, onnxToolJson } from './python.js';

const dir = mkdtempSync(join(tmpdir(), 'mimic-onnx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function gradGraphBytes(precision: 'float32' | 'float64' = 'float64'): Uint8Array {
  const gi = toGraphInputs(randomInput({ b: 2, dv: 9, dt: 7, p: 5, logitScale: 2.6593, seed: 1 }));
  return buildGradGraph(gi.heads, { precision });
}

describe('protobuf wire format', () => {
  it('round-trips int64 edge values (negative, beyond 2^53) and floats', () => {
    const w = new ProtoWriter();
    w.int64(1, -1).int64(2, 2 ** 53 - 1).int64(3, -(2n ** 63n)).int64(4, 2n ** 62n + 3n).float(5, 0.1).string(6, 'é✓');
    const fields = [...readFields(w.finish())];
    expect(fields.map((f) => f.int ?? null).slice(0, 4)).toEqual([-1, 2 ** 53 - 1, -(2n ** 63n), 2n ** 62n + 3n]);
    expect(new DataView(fields[4]!.data!.buffer, fields[4]!.data!.byteOffset).getFloat32(0, true)).toBe(Math.fround(0.1));
    expect(new TextDecoder().decode(fields[5]!.data)).toBe('é✓');
  });

  it('rejects truncated and malformed input', () => {
    const bytes = gradGraphBytes();
    expect(() => decodeModel(bytes.subarray(0, bytes.length - 7))).toThrow(ProtoDecodeError);
    expect(() => decodeModel(new Uint8Array([0x0f, 1, 2]))).toThrow(ProtoDecodeError); // wire type 7
    expect(() => parseModel(new TextEncoder().encode('not a model at all'), 'x.onnx')).toThrowError(
      expect.objectContaining({ code: 'E_ONNX', file: 'x.onnx' }),
    );
  });
});

describe('ONNX messages against the onnx package', () => {
  it('writes a gradient graph that onnx.checker accepts, with only rank ≤ 2 values (no [B,B,P])', () => {
    for (const precision of ['float32', 'float64'] as const) {
      const path = join(dir, `grad-${precision}.onnx`);
      writeFileSync(path, gradGraphBytes(precision));
      const r = onnxToolJson<{ ok: boolean; opset: [string, number][]; max_rank: number; ops: string[] }>('check', path);
      expect(r.ok).toBe(true);
      expect(r.opset).toEqual([['', 17]]);
      expect(r.max_rank).toBe(2);
    }
  });

  it('re-encodes its own graphs byte for byte', () => {
    const bytes = gradGraphBytes();
    expect(Buffer.from(encodeModel(decodeModel(bytes))).equals(Buffer.from(bytes))).toBe(true);
  });

  it('reads a model written by onnx (every field kind, external data) and writes it back equal', async () => {
    const path = join(dir, 'made.onnx');
    const made = onnxTool('make', path);
    expect(made.status, made.stderr).toBe(0);
    const { model } = readModelFile(path);
    const g = model.graph;
    expect(model.opsetImport).toEqual([{ domain: '', version: 17 }]);
    expect(model.producerName).toBe('onnx_tool');
    expect(model.metadataProps).toEqual([{ key: 'k', value: 'v' }]);
    expect(g.docString).toBe('docs ✓');
    expect(g.input[0]!.type!.tensorType!.shape!.map((d) => d.dimParam ?? d.dimValue)).toEqual(['N', 3]);
    const init = Object.fromEntries(g.initializer.map((t) => [t.name, t]));
    expect(init.shape!.int64Data).toEqual([-1, 4]);
    expect(init.big64!.int64Data).toEqual([2n ** 60n + 1n]);
    expect(init.fd!.floatData).toEqual([1.5, -2.25]);
    expect(init.dd!.doubleData).toEqual([1e-300, 3]);
    expect(new Float32Array(Uint8Array.from(init.w!.rawData!).buffer)[11]).toBe(Math.fround(11 / 7));
    expect(init.ext!.dataLocation).toBe(1);
    expect(init.ext!.externalData!.find((e) => e.key === 'location')!.value).toBe('weights.bin');
    const lr = g.node.find((n) => n.opType === 'LeakyRelu')!;
    expect(lr.attribute[0]).toMatchObject({ name: 'alpha', type: AttributeType.FLOAT, f: 0.125 });
    expect(g.node.find((n) => n.opType === 'Transpose')!.attribute[0]).toMatchObject({ type: AttributeType.INTS, ints: [1, 0] });

    // Written back (external reference kept), onnx parses it to an equal message.
    const back = join(dir, 'made-back.onnx');
    writeFileAtomicSync(back, serializeModel(model));
    const eq = onnxTool('equal', path, back);
    expect(eq.status, eq.stderr).toBe(0);

    // Inlined, the model runs in onnxruntime and gives what the original (with its data file) gives.
    inlineExternalData(model, dir, path);
    expect(init.ext!.dataLocation).toBeUndefined();
    const inlined = serializeModel(model);
    const x = new ort.Tensor('float32', Float32Array.from([1, 2, 3, -1, 0.5, 4]), [2, 3]);
    const run = async (m: string | Uint8Array) => {
      const s = typeof m === 'string' ? await ort.InferenceSession.create(m) : await ort.InferenceSession.create(m);
      const r = await s.run({ x });
      await s.release();
      return [Array.from(r.y!.data as Float32Array), Array.from(r.z!.data as Float32Array)];
    };
    const [fromFile, fromInlined] = [await run(path), await run(inlined)];
    expect(fromInlined).toEqual(fromFile);
    expect(fromFile[1]![1]).toBeCloseTo(-1 + (2 / 4095) * 64, 5); // z = extᵀ really read the external data
  });

  it('names the missing file when external data cannot be found, and refuses paths leaving the folder', () => {
    const path = join(dir, 'made.onnx');
    if (!readFileSync(path)) throw new Error('made.onnx missing');
    const m1 = readModelFile(path).model;
    expect(() => inlineExternalData(m1, join(dir, 'nowhere'), 'made.onnx')).toThrowError(
      expect.objectContaining({ code: 'E_ONNX', message: expect.stringMatching(/tensor "ext" has external data that cannot be opened/) }),
    );
    const m2 = readModelFile(path).model;
    const ext = m2.graph.initializer.find((t) => t.name === 'ext')!;
    ext.externalData = ext.externalData!.map((e) => (e.key === 'location' ? { key: e.key, value: '../etc/passwd' } : e));
    expect(() => inlineExternalData(m2, dir)).toThrowError(/points outside the model's folder/);
    const m3 = readModelFile(path).model;
    const ext3 = m3.graph.initializer.find((t) => t.name === 'ext')!;
    ext3.externalData = ext3.externalData!.map((e) => (e.key === 'length' ? { key: e.key, value: '99999999' } : e));
    expect(() => inlineExternalData(m3, dir)).toThrowError(/lies outside weights.bin/);
  });

  it('refuses to write a model over 2 GiB, without building it', () => {
    const chunk = new Uint8Array(300 * 2 ** 20); // shared by reference: the writer never copies it here
    const model: ModelProto = {
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        node: [],
        input: [],
        output: [],
        valueInfo: [],
        initializer: Array.from({ length: 8 }, (_, i) => ({ name: `t${i}`, dims: [chunk.length], dataType: DataType.UINT8, rawData: chunk })),
      },
    };
    expect(() => encodeModel(model)).toThrow(ModelTooLargeError);
    expect(() => serializeModel(model, 'the fused model')).toThrowError(
      expect.objectContaining({ code: 'E_ONNX', message: expect.stringMatching(/the fused model cannot be written as one ONNX file.*2 GiB/) }),
    );
  });
});
