/**
 * onnxruntime sessions on a chosen device. `cpu` runs with intra-op = the available cores, inter-op 1 and no
 * spinning (DESIGN §8); `cuda[:N]` requires the CUDA EP and fails with E_DEVICE naming what is missing; `auto`
 * takes CUDA when it loads and the CPU otherwise, and logs which and why.
 */
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { DEFAULTS } from '../defaults.js';
import { MimicError, errorMessage } from '../errors.js';
import { log } from '../log.js';
import { CUDA_EP_HINT, cleanOrtMessage, probeCuda } from './providers.js';

export type DeviceSpec = 'cpu' | 'cuda' | `cuda:${number}` | 'auto';

export interface DeviceChoice {
  kind: 'cpu' | 'cuda' | 'auto';
  deviceId: number;
}

export interface SessionOptions {
  /** 'cpu', 'cuda', 'cuda:N' or 'auto' (default DEFAULTS.model.device). */
  device?: string;
  /** 0 or undefined: the available cores. */
  intraOpThreads?: number;
  interOpThreads?: number;
  allowSpinning?: boolean;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Names the model in errors when it is given as bytes. */
  label?: string;
}

export type Provider = 'cpu' | 'cuda';

export interface CreatedSession {
  session: ort.InferenceSession;
  provider: Provider;
  /** The GPU for `cuda`; undefined on the CPU. */
  deviceId?: number;
}

export function parseDevice(spec: string): DeviceChoice {
  const m = /^(cpu|auto|cuda)(?::(\d+))?$/.exec(spec.trim().toLowerCase());
  if (!m || (m[2] !== undefined && m[1] !== 'cuda')) {
    throw new MimicError('E_USAGE', `unknown device "${spec}"`, { hint: 'use cpu, cuda, cuda:N (N = GPU index) or auto' });
  }
  return { kind: m[1] as DeviceChoice['kind'], deviceId: m[2] === undefined ? 0 : Number(m[2]) };
}

/** The provider a device spec resolves to here: checks the CUDA EP for `cuda` (error) and `auto` (fallback). */
export async function resolveDevice(spec: string = DEFAULTS.model.device): Promise<{ provider: Provider; deviceId?: number }> {
  const choice = parseDevice(spec);
  if (choice.kind === 'cpu') return { provider: 'cpu' };
  const status = await probeCuda(choice.deviceId);
  if (status.available) {
    if (choice.kind === 'auto') log().info({ device: `cuda:${choice.deviceId}` }, 'device auto: using the CUDA execution provider');
    return { provider: 'cuda', deviceId: choice.deviceId };
  }
  if (choice.kind === 'auto') {
    log().info({ device: 'cpu', reason: status.reason }, 'device auto: CUDA execution provider unavailable, using the CPU');
    return { provider: 'cpu' };
  }
  throw new MimicError('E_DEVICE', `cannot use cuda:${choice.deviceId}: ${status.reason}`, { hint: status.hint ?? CUDA_EP_HINT });
}

export function cpuSessionOptions(opts: SessionOptions = {}): ort.InferenceSession.SessionOptions {
  const intra = opts.intraOpThreads || DEFAULTS.model.intraOpThreads || availableParallelism();
  const spinning = opts.allowSpinning ?? DEFAULTS.model.allowSpinning;
  return {
    intraOpNumThreads: intra,
    interOpNumThreads: opts.interOpThreads ?? DEFAULTS.model.interOpThreads,
    executionMode: 'sequential',
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
    extra: { session: { intra_op: { allow_spinning: spinning ? '1' : '0' }, inter_op: { allow_spinning: spinning ? '1' : '0' } } },
  };
}

/** Create a session for a model file or its bytes on the requested device. */
export async function createSession(model: string | Uint8Array, opts: SessionOptions = {}): Promise<CreatedSession> {
  const spec = opts.device ?? DEFAULTS.model.device;
  const target = await resolveDevice(spec);
  const options = cpuSessionOptions(opts);
  if (target.provider === 'cuda') options.executionProviders = [{ name: 'cuda', deviceId: target.deviceId ?? 0 }];
  else options.executionProviders = ['cpu'];
  const label = typeof model === 'string' ? model : opts.label ?? 'an in-memory ONNX model';
  try {
    const session = typeof model === 'string'
      ? await ort.InferenceSession.create(model, options)
      : await ort.InferenceSession.create(model, options);
    return { session, provider: target.provider, ...(target.provider === 'cuda' ? { deviceId: target.deviceId } : {}) };
  } catch (e) {
    const msg = cleanOrtMessage(errorMessage(e));
    if (target.provider === 'cuda' && parseDevice(spec).kind === 'auto') {
      log().warn({ model: label, reason: msg }, 'device auto: the CUDA session failed, using the CPU');
      return createSession(model, { ...opts, device: 'cpu' });
    }
    if (target.provider === 'cuda') {
      throw new MimicError('E_DEVICE', `onnxruntime could not create a CUDA session for ${label}: ${msg}`, {
        file: typeof model === 'string' ? model : undefined,
        hint: 'try --device cpu; `mimic doctor` shows what the CUDA EP needs',
        cause: e,
      });
    }
    throw new MimicError('E_ONNX', `onnxruntime cannot load ${label}: ${msg}`, {
      file: typeof model === 'string' ? model : undefined,
      hint: `the file is not a valid ONNX model for onnxruntime ${ort.env.versions.common}; export it again`,
      cause: e,
    });
  }
}
