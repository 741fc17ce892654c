/**
 * What `mimic graph export` does, as library functions: the gradient graph (or the fused model) for a proxy and
 * reference bundle pair, ready to write. The CLI only loads the bundles and writes the bytes.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { MimicError, errorMessage } from '../errors.js';
import type { Bundle, BundleHeads } from '../model/bundle.js';
import { writeFileAtomicSync } from '../atomic-file.js';
import { buildGradGraph, type GradGraphHeads, type GradGraphOptions } from './grad-graph.js';
import { fuseBundleGraph, type FuseOptions } from './fused.js';

/** The graph's heads from a proxy's and a reference's; different head shapes are an E_BUNDLE error. */
export function gradGraphHeads(proxy: BundleHeads, reference: BundleHeads): GradGraphHeads {
  if (proxy.dv !== reference.dv || proxy.dt !== reference.dt || proxy.p !== reference.p) {
    throw new MimicError(
      'E_BUNDLE',
      `the proxy's heads are [${proxy.dv},${proxy.p}] and [${proxy.dt},${proxy.p}] but the reference's are ` +
        `[${reference.dv},${reference.p}] and [${reference.dt},${reference.p}]`,
      { hint: 'the proxy and the reference must be CLIPs of the same architecture (DESIGN §4)' },
    );
  }
  return {
    visualProjection: proxy.visualProjection,
    textProjection: proxy.textProjection,
    refVisualProjection: reference.visualProjection,
    refTextProjection: reference.textProjection,
    logitScale: proxy.logitScale,
    dv: proxy.dv,
    dt: proxy.dt,
    p: proxy.p,
  };
}

/** The per-sample-gradient graph for a bundle pair (`mimic graph export`). */
export function exportGradGraph(proxy: BundleHeads, reference: BundleHeads, opts: GradGraphOptions = {}): Uint8Array {
  return buildGradGraph(gradGraphHeads(proxy, reference), opts);
}

export interface FusedExportOptions extends Omit<FuseOptions, 'uint8Pixels'> {
  /** Take uint8 pixels in this layout and normalise inside the graph with the proxy's mean/std. */
  uint8Pixels?: 'NHWC' | 'NCHW';
}

/** One model with the proxy's encoders and the gradient graph (`mimic graph export --fused`). */
export function exportFusedModel(proxy: Pick<Bundle, 'paths' | 'heads' | 'manifest'>, reference: BundleHeads, opts: FusedExportOptions = {}): Uint8Array {
  const read = (file: string): { bytes: Uint8Array; baseDir: string; file: string } => {
    try {
      return { bytes: readFileSync(file), baseDir: dirname(file), file };
    } catch (e) {
      throw new MimicError('E_IO', `cannot read ${file}: ${errorMessage(e)}`, { file, cause: e });
    }
  };
  const { uint8Pixels, ...rest } = opts;
  return fuseBundleGraph(read(proxy.paths.visual), read(proxy.paths.textual), gradGraphHeads(proxy.heads, reference), {
    ...rest,
    uint8Pixels: uint8Pixels
      ? { mean: proxy.manifest.image.mean, std: proxy.manifest.image.std, layout: uint8Pixels }
      : undefined,
  });
}

/** Writes model bytes atomically (temporary file in the same folder, then rename). */
export function writeModel(path: string, bytes: Uint8Array): void {
  writeFileAtomicSync(path, bytes);
}
