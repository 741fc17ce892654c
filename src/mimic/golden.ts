/**
 * Reads files of the golden format (`heads-v1.json`: `{ spec, dtype, cases: [{ name, B, Dv, Dt, P, logit_scale,
 * inputs: { image_features, ... }, expected: { loss, clip_sim, visual: { grad_norm, ... }, ... } }] }`) into the
 * library's camelCase types, so that any file of that format can check an implementation.
 */
import { readFileSync } from 'node:fs';
import { MimicError } from '../errors.js';
import { MIMIC_LAYERS, type LayerScores, type MimicFeaturesInput, type MimicScores } from './types.js';

export interface GoldenCase {
  name: string;
  input: MimicFeaturesInput;
  expected: MimicScores;
}

type Json = Record<string, unknown>;

export function readGoldenFile(path: string): GoldenCase[] {
  let doc: Json;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (e) {
    throw new MimicError('E_IO', `cannot read golden file ${path}: ${(e as Error).message}`, { file: path, cause: e });
  }
  if (!Array.isArray(doc.cases)) throw new MimicError('E_IO', `${path} has no "cases" array`, { file: path });
  return (doc.cases as Json[]).map((c, idx) => parseCase(c, `${path} case ${idx}`));
}

function parseCase(c: Json, where: string): GoldenCase {
  const inputs = c.inputs as Json | undefined;
  const expected = c.expected as Json | undefined;
  if (!inputs || !expected || typeof c.logit_scale !== 'number') {
    throw new MimicError('E_IO', `${where}: expected "inputs", "expected" and a numeric "logit_scale"`);
  }
  const mat = (key: string): number[][] => {
    const v = inputs[key];
    if (!Array.isArray(v)) throw new MimicError('E_IO', `${where}: inputs.${key} is missing`);
    return v as number[][];
  };
  const vec = (obj: Json, key: string): number[] => {
    const v = obj[key];
    if (!Array.isArray(v)) throw new MimicError('E_IO', `${where}: expected.${key} is missing`);
    return v as number[];
  };
  const layer = (name: string): LayerScores => {
    const l = expected[name] as Json | undefined;
    if (!l) throw new MimicError('E_IO', `${where}: expected.${name} is missing`);
    return { gradNorm: vec(l, 'grad_norm'), mimicProj: vec(l, 'mimic_proj'), mimicCos: vec(l, 'mimic_cos') };
  };
  const layers = Object.fromEntries(MIMIC_LAYERS.map((name) => [name, layer(name)])) as Record<
    (typeof MIMIC_LAYERS)[number],
    LayerScores
  >;
  return {
    name: typeof c.name === 'string' ? c.name : where,
    input: {
      imageFeatures: mat('image_features'),
      textFeatures: mat('text_features'),
      visualProjection: mat('visual_projection'),
      textProjection: mat('text_projection'),
      refVisualProjection: mat('ref_visual_projection'),
      refTextProjection: mat('ref_text_projection'),
      logitScale: c.logit_scale,
    },
    expected: { loss: vec(expected, 'loss'), clipSim: vec(expected, 'clip_sim'), ...layers },
  };
}
