/**
 * `mimic doctor`: what this machine offers the pipeline — runtime and library versions, cores, GPUs, and which
 * onnxruntime execution providers load (and, when one does not, what is missing and how to get it).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { DEFAULTS } from '../defaults.js';
import { VERSION } from '../version.js';
import { CUDA_EP_LIBS, CUDA_EP_PACKAGE, ortNativeDir, probeCpu, probeCuda, type ProviderStatus } from './providers.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

export interface DoctorReport {
  mimic: string;
  node: string;
  platform: string;
  cpu: { model: string; cores: number; memoryGiB: number };
  versions: Record<string, string | null>;
  providers: ProviderStatus[];
  cudaEp: { dir: string; files: Array<{ name: string; present: boolean }>; package: string };
  /** `nvidia-smi -L` lines; null when nvidia-smi is absent or fails. */
  gpus: string[] | null;
  sessionDefaults: { intraOpThreads: number; interOpThreads: number; allowSpinning: boolean };
}

export interface DoctorOptions {
  /** GPU index to probe the CUDA EP on. */
  deviceId?: number;
}

/** The version in a package's package.json, found from its resolved entry (some packages do not export it). */
export function packageVersion(name: string): string | null {
  let dir: string;
  try {
    dir = dirname(require.resolve(name));
  } catch {
    return null;
  }
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        const j = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; version?: string };
        if (j.name === name && j.version) return j.version;
      } catch {
        // a broken package.json on the way up: keep looking
      }
    }
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

async function sharpVersions(): Promise<{ sharp: string | null; libvips: string | null }> {
  try {
    const sharp = (await import('sharp')).default as unknown as { versions: Record<string, string> };
    return { sharp: sharp.versions.sharp ?? packageVersion('sharp'), libvips: sharp.versions.vips ?? null };
  } catch {
    return { sharp: packageVersion('sharp'), libvips: null };
  }
}

async function nvidiaGpus(): Promise<string[] | null> {
  try {
    const { stdout } = await run('nvidia-smi', ['-L'], { timeout: 10_000 });
    return stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  } catch {
    return null;
  }
}

export async function doctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const [sv, gpus, cpu, cuda] = await Promise.all([
    sharpVersions(),
    nvidiaGpus(),
    probeCpu(),
    probeCuda(opts.deviceId ?? 0),
  ]);
  const dir = ortNativeDir();
  return {
    mimic: VERSION,
    node: process.versions.node,
    platform: `${process.platform}/${process.arch}`,
    cpu: {
      model: cpus()[0]?.model?.trim() ?? 'unknown',
      cores: availableParallelism(),
      memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    },
    versions: {
      'onnxruntime-node': packageVersion('onnxruntime-node'),
      onnxruntime: ort.env.versions.common ?? null,
      sharp: sv.sharp,
      libvips: sv.libvips,
      'apache-arrow': packageVersion('apache-arrow'),
      commander: packageVersion('commander'),
    },
    providers: [cpu, cuda],
    cudaEp: {
      dir,
      files: CUDA_EP_LIBS.map((name) => ({ name, present: existsSync(join(dir, name)) })),
      package: CUDA_EP_PACKAGE,
    },
    gpus,
    sessionDefaults: {
      intraOpThreads: DEFAULTS.model.intraOpThreads || availableParallelism(),
      interOpThreads: DEFAULTS.model.interOpThreads,
      allowSpinning: DEFAULTS.model.allowSpinning,
    },
  };
}

/** The report as the aligned text table `mimic doctor` prints. */
export function formatDoctor(r: DoctorReport): string {
  const rows: Array<[string, string]> = [
    ['mimic', r.mimic],
    ['node', `${r.node} (${r.platform})`],
    ['cpu', `${r.cpu.cores} cores available, ${r.cpu.model}, ${r.cpu.memoryGiB} GiB`],
    ...Object.entries(r.versions).map(([k, v]) => [k, v ?? 'not found'] as [string, string]),
    ['gpus', r.gpus === null ? 'none found (nvidia-smi absent or failing)' : r.gpus.join('; ') || 'none'],
    ['session threads', `intra-op ${r.sessionDefaults.intraOpThreads}, inter-op ${r.sessionDefaults.interOpThreads}, ` +
      `spinning ${r.sessionDefaults.allowSpinning ? 'on' : 'off'}`],
  ];
  for (const p of r.providers) {
    rows.push([`provider ${p.name}`, p.available ? 'loads' : `unavailable: ${p.reason ?? 'unknown reason'}`]);
    if (!p.available && p.hint) rows.push(['', `to fix: ${p.hint}`]);
  }
  rows.push(['cuda ep files', r.cudaEp.files.map((f) => `${f.name} ${f.present ? 'present' : 'absent'}`).join(', ')]);
  rows.push(['', `in ${r.cudaEp.dir}`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}
