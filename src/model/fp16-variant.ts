/**
 * Adds fp16 builds of a bundle's encoders (visual.fp16.onnx, textual.fp16.onnx) and declares them in model.json
 * under `variants.fp16`. The float32 files stay as they are: they remain the reference (`mimic check` compares
 * them with PyTorch), and `--precision fp16` picks the variant at run time.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { MimicError } from '../errors.js';
import { inlineExternalData, parseModel, serializeModel } from './onnx/index.js';
import { writeFileAtomicSync } from '../atomic-file.js';
import { toFloat16 } from './onnx/float16.js';
import { MANIFEST_FILE, TEXTUAL_FILE, VISUAL_FILE, loadBundle } from './bundle.js';

export const FP16_FILES = { visual: 'visual.fp16.onnx', textual: 'textual.fp16.onnx' } as const;

export interface Fp16VariantReport {
  dir: string;
  files: { visual: string; textual: string };
  /** Float tensors converted, per encoder. */
  tensors: { visual: number; textual: number };
  /** Weights saturated to ±65504 (reported; 0 for a sane encoder). */
  saturated: { visual: number; textual: number };
}

async function convertFile(src: string, dst: string, what: string): Promise<{ tensors: number; saturated: number }> {
  const bytes = await readFile(src);
  const model = parseModel(bytes, src);
  inlineExternalData(model, dirname(src), what);
  const r = toFloat16(model, what);
  writeFileAtomicSync(dst, serializeModel(r.model, `the fp16 ${what}`));
  return { tensors: r.tensors, saturated: r.saturated };
}

/** Writes the fp16 encoders of the bundle in `dir` and adds them to its model.json (both written atomically). */
export async function addFloat16Variant(dir: string): Promise<Fp16VariantReport> {
  const root = resolve(dir);
  // The bundle must be valid before it is extended (and the result is checked by loading it again); a variant
  // declared before may be what is being repaired.
  await loadBundle(root, { hash: false, ignoreVariants: true });
  const files = { visual: join(root, FP16_FILES.visual), textual: join(root, FP16_FILES.textual) };
  const v = await convertFile(join(root, VISUAL_FILE), files.visual, 'image encoder');
  const t = await convertFile(join(root, TEXTUAL_FILE), files.textual, 'text encoder');
  const manifestPath = join(root, MANIFEST_FILE);
  const json = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>;
  const variants = (json.variants ?? {}) as Record<string, unknown>;
  json.variants = { ...variants, fp16: { ...FP16_FILES } };
  writeFileAtomicSync(manifestPath, JSON.stringify(json, null, 2) + '\n');
  try {
    await loadBundle(root, { hash: false });
  } catch (e) {
    throw new MimicError('E_BUNDLE', `the fp16 encoders written to ${root} do not pass the bundle checks: ${(e as Error).message}`, { file: manifestPath, cause: e });
  }
  return { dir: root, files, tensors: { visual: v.tensors, textual: t.tensors }, saturated: { visual: v.saturated, textual: t.saturated } };
}
