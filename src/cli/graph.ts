/** `mimic graph export`: the per-sample-gradient graph (or one fused model) for a proxy/reference pair. */
import type { Command } from 'commander';
import { EXIT } from '../errors.js';
import { log } from '../log.js';
import { exportFusedModel, exportGradGraph, writeModel } from '../mimic/index.js';
import { assertCompatible, loadBundle } from '../model/index.js';
import { DEFAULTS } from '../defaults.js';
import { action, type CliContext } from './action.js';
import { choiceFlag, intFlag } from './parse.js';

interface ExportFlags {
  proxy: string;
  reference: string;
  output: string;
  fused?: boolean;
  uint8?: 'NHWC' | 'NCHW';
  precision: 'float32' | 'float64';
  opset: number;
}

export function register(program: Command, ctx: CliContext): void {
  const graph = program.command('graph').description('export the ONNX graphs mimic score runs');
  graph
    .command('export')
    .description('write the per-sample-gradient graph (features in, B-length score vectors out) for a proxy/reference pair')
    .requiredOption('--proxy <dir>', 'the proxy bundle')
    .requiredOption('--reference <dir>', 'the reference bundle (the direction is W_ref − W)')
    .requiredOption('-o, --output <file>', 'the .onnx file to write')
    .option('--fused', "one model with the proxy's encoders included: pixel_values + input_ids in, scores out")
    .option('--uint8 <layout>', 'with --fused: take uint8 pixels (NHWC or NCHW) and normalise inside the graph', choiceFlag(['NHWC', 'NCHW'] as const))
    .option('--precision <p>', 'arithmetic inside the gradient graph', choiceFlag(['float32', 'float64'] as const), DEFAULTS.gradGraph.precision)
    .option('--opset <n>', 'ONNX opset of the gradient graph (a fused model follows its encoders)', intFlag(13), DEFAULTS.gradGraph.opset)
    .addHelpText('after', `
Inputs image_features [B,Dv] and text_features [B,Dt] (or, fused, pixel_values and input_ids); outputs loss,
clip_sim and, for visual, text and both, grad_norm_*, mimic_proj_*, mimic_cos_* (float32 [B]).`)
    .action(action(ctx, async (_ctx: CliContext, flags: ExportFlags) => {
      const [proxy, reference] = await Promise.all([loadBundle(flags.proxy, { hash: false }), loadBundle(flags.reference, { hash: false })]);
      assertCompatible(proxy, reference);
      // A fused model takes the encoders' opset; --opset applies to the gradient graph alone.
      const bytes = flags.fused
        ? exportFusedModel(proxy, reference.heads, { gradGraph: { precision: flags.precision }, ...(flags.uint8 ? { uint8Pixels: flags.uint8 } : {}) })
        : exportGradGraph(proxy.heads, reference.heads, { precision: flags.precision, opset: flags.opset });
      writeModel(flags.output, bytes);
      log().info({ file: flags.output, bytes: bytes.length, fused: Boolean(flags.fused) }, 'graph written');
      return EXIT.ok;
    }));
}
