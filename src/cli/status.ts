/** `mimic status OUT`: done / failed / partial / missing shards across all workers; exit 1 until complete. */
import type { Command } from 'commander';
import { EXIT } from '../errors.js';
import { formatStatus, runStatus } from '../pipeline/index.js';
import { action, type CliContext } from './action.js';
import { intFlag } from './parse.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('status')
    .description("report a scoring run's shards across all workers: done, failed, partial, missing")
    .argument('<out>', 'the --out folder of `mimic score`')
    .option('--json', 'print the report as JSON')
    .option('--list <n>', 'unfinished shards listed', intFlag(0), 20)
    .addHelpText('after', '\nExit status: 0 when every shard is done, 1 otherwise, 2 when OUT holds no run.')
    .action(action(ctx, async (_ctx: CliContext, out: string, flags: { json?: boolean; list: number }) => {
      const report = await runStatus(out);
      process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : formatStatus(report, { list: flags.list }) + '\n');
      return report.complete ? EXIT.ok : EXIT.partial;
    }));
}
