/**
 * Tools for combining ONNX models: renaming every value of a graph (subgraphs included, so names captured from
 * an outer scope stay consistent), checking that a model holds nothing a rename would miss, and merging opsets.
 */
import { MimicError } from '../../errors.js';
import type { GraphProto, ModelProto, OpsetId } from './proto.js';
import { readFields } from './wire.js';

/** Applies `rename` to every value name in the graph (inputs, outputs, initializers, value infos, node ends). */
export function renameValues(graph: GraphProto, rename: (name: string) => string): void {
  const r = (n: string): string => (n === '' ? n : rename(n)); // '' marks an omitted optional input
  for (const v of graph.input) v.name = r(v.name);
  for (const v of graph.output) v.name = r(v.name);
  for (const v of graph.valueInfo) v.name = r(v.name);
  for (const t of graph.initializer) t.name = r(t.name);
  for (const n of graph.node) {
    n.input = n.input.map(r);
    n.output = n.output.map(r);
    for (const a of n.attribute) {
      if (a.g) renameValues(a.g, rename);
      for (const g of a.graphs ?? []) renameValues(g, rename);
    }
  }
}

/** Prefixes node names (unique node names are not required by ONNX, but tools and profilers read them). */
export function prefixNodeNames(graph: GraphProto, prefix: string): void {
  for (const n of graph.node) {
    if (n.name) n.name = prefix + n.name;
    for (const a of n.attribute) {
      if (a.g) prefixNodeNames(a.g, prefix);
      for (const g of a.graphs ?? []) prefixNodeNames(g, prefix);
    }
  }
}

function fieldNumbers(raws: Uint8Array[] | undefined): number[] {
  const out: number[] = [];
  for (const raw of raws ?? []) for (const f of readFields(raw)) out.push(f.field);
  return out;
}

/**
 * Refuses models holding parts whose value names a rename would not reach: model-local functions (field 25),
 * training info (20), sparse initializers (graph field 15).
 */
export function assertRenamable(model: ModelProto, what: string): void {
  const modelFields = fieldNumbers(model.unknown);
  const graphFields = fieldNumbers(model.graph.unknown);
  const parts: string[] = [];
  if (modelFields.includes(25)) parts.push('model-local functions');
  if (modelFields.includes(20)) parts.push('training info');
  if (graphFields.includes(15)) parts.push('sparse initializers');
  if (parts.length > 0) {
    throw new MimicError('E_ONNX', `${what} holds ${parts.join(' and ')}, which cannot be merged into another model`, {
      hint: 'export the encoder without them, or run it as its own session (the default)',
    });
  }
}

/** The models' opset imports merged; a domain imported at two versions is an error naming both. */
export function mergeOpsets(models: Array<{ what: string; model: ModelProto }>): OpsetId[] {
  const seen = new Map<string, { version: number; what: string }>();
  for (const { what, model } of models) {
    for (const o of model.opsetImport) {
      const domain = o.domain === 'ai.onnx' ? '' : o.domain;
      const prior = seen.get(domain);
      if (prior && prior.version !== o.version) {
        throw new MimicError(
          'E_ONNX',
          `${prior.what} uses opset ${prior.version} of ${domain || 'the default domain'} but ${what} uses ${o.version}`,
          { hint: 'export both at the same opset (scripts/export_bundle.py uses 17)' },
        );
      }
      seen.set(domain, { version: o.version, what });
    }
  }
  return [...seen].map(([domain, { version }]) => ({ domain, version }));
}

/** The default-domain opset version of a model (0 when it imports none). */
export function defaultOpset(model: ModelProto): number {
  return model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0;
}

/** The graph's real inputs: declared inputs that are not initializers (IR < 4 lists initializers as inputs). */
export function graphInputs(graph: GraphProto): GraphProto['input'] {
  const inits = new Set(graph.initializer.map((t) => t.name));
  return graph.input.filter((v) => !inits.has(v.name));
}
