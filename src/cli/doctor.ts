/** `mimic doctor`: versions, cores and execution providers; a table, or JSON with --json. */
import type { Command } from 'commander';
import { EXIT } from '../errors.js';
import { doctor, formatDoctor } from '../model/doctor.js';
import { action, type CliContext } from './action.js';
import { checkNumber } from './parse.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description('show versions, CPU and GPU, and which onnxruntime execution providers load (and why not)')
    .option('--json', 'print the report as JSON')
    .option('--cuda-device <n>', 'GPU index to probe the CUDA execution provider on', '0')
    .action(action(ctx, async (_ctx, opts: { json?: boolean; cudaDevice: string }) => {
      const deviceId = checkNumber('--cuda-device', opts.cudaDevice, (n) => Number.isSafeInteger(n) && n >= 0, 'a GPU index (0, 1, ...)');
      const report = await doctor({ deviceId });
      process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatDoctor(report));
      return report.providers.find((p) => p.name === 'cpu')?.available ? EXIT.ok : EXIT.partial;
    }));
}
