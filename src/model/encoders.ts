/**
 * A bundle's two encoder sessions on one device, with their declared signature checked again against the
 * session's own metadata (the authority once onnxruntime has parsed the file), and typed run helpers.
 */
import * as ort from 'onnxruntime-node';
import { MimicError, errorMessage } from '../errors.js';
import { TEXTUAL_IO, VISUAL_IO, type Bundle } from './bundle.js';
import { cleanOrtMessage } from './providers.js';
import { createSession, resolveDevice, type Provider, type SessionOptions } from './session.js';

export interface Encoders {
  provider: Provider;
  deviceId?: number;
  visual: ort.InferenceSession;
  textual: ort.InferenceSession;
  /** pixels: float32 [batch,3,S,S] → image features [batch, dv]. */
  imageFeatures(pixels: Float32Array, batch: number): Promise<Float32Array>;
  /** ids: int64 [batch, L] → text features [batch, dt]. */
  textFeatures(ids: BigInt64Array, batch: number): Promise<Float32Array>;
  release(): Promise<void>;
}

export async function openEncoders(bundle: Bundle, opts: SessionOptions = {}): Promise<Encoders> {
  // Resolve once so both towers land on the same provider even under `auto`.
  const target = await resolveDevice(opts.device);
  const device = target.provider === 'cuda' ? `cuda:${target.deviceId ?? 0}` : 'cpu';
  const visual = await createSession(bundle.paths.visual, { ...opts, device });
  let textual;
  try {
    textual = await createSession(bundle.paths.textual, { ...opts, device });
  } catch (e) {
    await visual.session.release();
    throw e;
  }
  const s = bundle.manifest.image.size;
  const L = bundle.manifest.text.context_length;
  try {
    checkMetadata(visual.session, bundle.paths.visual, VISUAL_IO.input, 'float32', VISUAL_IO.output);
    checkMetadata(textual.session, bundle.paths.textual, TEXTUAL_IO.input, 'int64', TEXTUAL_IO.output);
  } catch (e) {
    await visual.session.release();
    await textual.session.release();
    throw e;
  }
  const { dv, dt } = bundle.heads;

  const runOne = async (
    session: ort.InferenceSession, file: string, input: string, output: string, tensor: ort.Tensor, width: number, batch: number,
  ): Promise<Float32Array> => {
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await session.run({ [input]: tensor });
    } catch (e) {
      throw new MimicError('E_ONNX', `running ${file} failed: ${cleanOrtMessage(errorMessage(e))}`, { file, cause: e });
    }
    const t = out[output] as ort.Tensor;
    if (t.dims.length !== 2 || t.dims[0] !== batch || t.dims[1] !== width) {
      throw new MimicError('E_ONNX', `${file} returned ${output} of shape [${t.dims.join(',')}], expected [${batch},${width}]`, { file });
    }
    return t.data as Float32Array;
  };

  return {
    provider: visual.provider,
    ...(visual.deviceId === undefined ? {} : { deviceId: visual.deviceId }),
    visual: visual.session,
    textual: textual.session,
    imageFeatures(pixels, batch) {
      if (pixels.length !== batch * 3 * s * s) {
        throw new MimicError('E_USAGE', `pixel batch has ${pixels.length} values, expected ${batch}×3×${s}×${s}`);
      }
      return runOne(visual.session, bundle.paths.visual, VISUAL_IO.input, VISUAL_IO.output,
        new ort.Tensor('float32', pixels, [batch, 3, s, s]), dv, batch);
    },
    textFeatures(ids, batch) {
      if (ids.length !== batch * L) throw new MimicError('E_USAGE', `id batch has ${ids.length} values, expected ${batch}×${L}`);
      return runOne(textual.session, bundle.paths.textual, TEXTUAL_IO.input, TEXTUAL_IO.output,
        new ort.Tensor('int64', ids, [batch, L]), dt, batch);
    },
    async release() {
      await visual.session.release();
      await textual.session.release();
    },
  };
}

function checkMetadata(session: ort.InferenceSession, file: string, input: string, type: string, output: string): void {
  const ins = session.inputMetadata;
  const outs = session.outputMetadata;
  const fail = (msg: string): never => {
    throw new MimicError('E_ONNX', `${file}: ${msg}`, { file, hint: 'export the bundle again with scripts/export_bundle.py' });
  };
  if (ins.length !== 1 || ins[0]!.name !== input) fail(`onnxruntime sees inputs [${session.inputNames.join(', ')}], expected [${input}]`);
  const i = ins[0]!;
  if (!i.isTensor || i.type !== type) fail(`input ${input} is ${i.isTensor ? i.type : 'not a tensor'}, expected ${type}`);
  if (outs.length !== 1 || outs[0]!.name !== output) fail(`onnxruntime sees outputs [${session.outputNames.join(', ')}], expected [${output}]`);
  const o = outs[0]!;
  if (!o.isTensor || o.type !== 'float32') fail(`output ${output} is ${o.isTensor ? o.type : 'not a tensor'}, expected float32`);
}
