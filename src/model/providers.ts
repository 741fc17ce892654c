/**
 * Which onnxruntime execution providers can run here, and why not. The CUDA EP of onnxruntime-node is two shared
 * libraries that must sit next to its core library (`libonnxruntime_providers_cuda.so` and
 * `libonnxruntime_providers_shared.so`), and they need the CUDA runtime, cuBLAS and cuDNN on the library path.
 * Missing pieces are found by looking (files, then `ldd`) before onnxruntime is asked, so the common failures get
 * a precise message and onnxruntime prints nothing; only when everything is present is a probe session created.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { errorMessage } from '../errors.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

export const CUDA_EP_LIBS = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'] as const;

/** The npm package that carries the CUDA 13 build of the EP libraries matching onnxruntime-node 1.29.0. */
export const CUDA_EP_PACKAGE = 'com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9';

export const CUDA_EP_HINT =
  'with internet: `cd node_modules/onnxruntime-node && ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install.js` ' +
  '(onnxruntime-node\'s own installer; NuGet build for CUDA 12 + cuDNN 9); offline or with CUDA 13: ' +
  `\`scripts/install-cuda-ep\` (copies the EP libraries from the npm package ${CUDA_EP_PACKAGE}, ` +
  'or from its .tgz with --from FILE); then put the CUDA runtime, cuBLAS and cuDNN 9 libraries on LD_LIBRARY_PATH';

/** The folder holding onnxruntime-node's native libraries for this platform. */
export function ortNativeDir(): string {
  const pkg = require.resolve('onnxruntime-node/package.json');
  return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
}

export function ortVersion(): string {
  return (require('onnxruntime-node/package.json') as { version: string }).version;
}

export interface ProviderStatus {
  name: string;
  available: boolean;
  /** Why not, in words (absent when available). */
  reason?: string;
  hint?: string;
  /** Shared libraries that are absent or cannot be resolved. */
  missing?: string[];
}

/** A one-node ONNX model (Identity on float32 [1]), just enough to make a session initialise a provider. */
const PROBE_MODEL = Buffer.from(
  'CAgSCmdyYWQtbWltaWM6OwoQCgF4EgF5IghJZGVudGl0eRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAN',
  'base64',
);

/** Libraries `ldd` cannot resolve for `lib` with the current LD_LIBRARY_PATH; [] when ldd is unavailable. */
export async function unresolvedLibraries(lib: string): Promise<string[]> {
  try {
    const { stdout } = await run('ldd', [lib], { timeout: 10_000 });
    return stdout.split('\n').filter((l) => /=>\s*not found/.test(l)).map((l) => l.trim().split(/\s+/)[0]!);
  } catch {
    return [];
  }
}

const cudaCache = new Map<number, Promise<ProviderStatus>>();

/**
 * Whether the CUDA EP loads for GPU `deviceId` (cached per process). `nativeDir` looks for the EP libraries in
 * another folder than onnxruntime-node's (only the file checks use it: onnxruntime loads from its own folder).
 */
export function probeCuda(deviceId = 0, opts: { nativeDir?: string } = {}): Promise<ProviderStatus> {
  if (opts.nativeDir) return probeCudaUncached(deviceId, opts.nativeDir);
  let p = cudaCache.get(deviceId);
  if (!p) {
    p = probeCudaUncached(deviceId, ortNativeDir());
    cudaCache.set(deviceId, p);
  }
  return p;
}

async function probeCudaUncached(deviceId: number, dir: string): Promise<ProviderStatus> {
  const name = 'cuda';
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return { name, available: false, reason: `the CUDA EP is set up for linux/x64 only (this is ${process.platform}/${process.arch})` };
  }
  const absent = CUDA_EP_LIBS.filter((l) => !existsSync(join(dir, l)));
  if (absent.length) {
    return {
      name,
      available: false,
      missing: absent,
      reason: `the CUDA EP libraries ${absent.join(', ')} are not in ${dir}`,
      hint: CUDA_EP_HINT,
    };
  }
  const unresolved = await unresolvedLibraries(join(dir, CUDA_EP_LIBS[0]));
  if (unresolved.length) {
    return {
      name,
      available: false,
      missing: unresolved,
      reason: `${CUDA_EP_LIBS[0]} needs ${unresolved.join(', ')}, not found on the library path`,
      hint: 'install the CUDA runtime, cuBLAS and cuDNN 9 of the CUDA version the EP was built for and add their ' +
        'folders to LD_LIBRARY_PATH (e.g. the nvidia/*/lib folders of a PyTorch installation)',
    };
  }
  if (dir !== ortNativeDir()) {
    return { name, available: false, reason: `the EP libraries in ${dir} resolve, but onnxruntime-node loads them only from ${ortNativeDir()}` };
  }
  try {
    const s = await ort.InferenceSession.create(PROBE_MODEL, { executionProviders: [{ name: 'cuda', deviceId }] });
    await s.release();
    return { name, available: true };
  } catch (e) {
    return {
      name,
      available: false,
      reason: `onnxruntime could not start the CUDA EP on device ${deviceId}: ${cleanOrtMessage(errorMessage(e))}`,
      hint: 'check `nvidia-smi` (driver, device id) and that the CUDA/cuDNN versions match the EP build',
    };
  }
}

let cpuProbe: Promise<ProviderStatus> | undefined;

export function probeCpu(): Promise<ProviderStatus> {
  cpuProbe ??= (async () => {
    try {
      const s = await ort.InferenceSession.create(PROBE_MODEL, { executionProviders: ['cpu'] });
      await s.release();
      return { name: 'cpu', available: true };
    } catch (e) {
      return { name: 'cpu', available: false, reason: cleanOrtMessage(errorMessage(e)) };
    }
  })();
  return cpuProbe;
}

/** onnxruntime's messages may carry terminal colour codes and its source locations; keep the words. */
export function cleanOrtMessage(msg: string): string {
  // eslint-disable-next-line no-control-regex
  return msg.replace(/\x1b\[[0-9;]*m/g, '').replace(/\s+/g, ' ').trim();
}
