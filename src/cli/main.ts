/**
 * The CLI edge: parse flags, set up logging, call the library, turn errors into one message and an exit status.
 * Each command lives in its own file and only translates flags into the library's option objects.
 */
import { Command, CommanderError } from 'commander';
import { EXIT, isMimicError } from '../errors.js';
import { log } from '../log.js';
import type { CliContext } from './action.js';
import { ProgressLine } from './progress.js';
import { VERSION } from '../version.js';
import { removeOpenTemps } from '../atomic-file.js';
import { commands } from './commands.js';

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('mimic')
    .description('Score and filter image-caption WebDataset pools with Grad-Mimic mimic scores')
    .version(VERSION)
    .option('--log-level <level>', 'trace, debug, info, warn, error or silent', process.env.MIMIC_LOG_LEVEL ?? 'info')
    .option('--log-format <format>', 'pretty or json (default: pretty on a terminal, json otherwise)')
    .option('--no-progress', 'do not draw the progress line')
    .showHelpAfterError()
    .exitOverride();
  for (const register of commands) register(program, ctx);
  return program;
}

/** Run the CLI with argv (node, script, ...args); resolves to the exit status. Never throws. */
export async function runCli(argv: string[]): Promise<number> {
  const ctx: CliContext = { progress: new ProgressLine() };
  exitOnSignals(ctx);
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
    return ctx.exitCode ?? EXIT.ok;
  } catch (e) {
    ctx.progress.done();
    if (e instanceof CommanderError) {
      // Commander has already printed its message (and help where it applies).
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (isMimicError(e)) {
      const where = e.file ? ` (${e.file})` : '';
      process.stderr.write(`mimic: error ${e.code}: ${e.message}${where}\n`);
      if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
      log().debug({ err: e }, 'error details');
      return EXIT.usage;
    }
    process.stderr.write(
      `mimic: internal error (a bug in grad-mimic, please report it with this output):\n${(e as Error)?.stack ?? String(e)}\n`,
    );
    return EXIT.internal;
  } finally {
    ctx.progress.done();
  }
}

/**
 * Ctrl-C and `scancel`/Kubernetes' SIGTERM: stop now, remove the temporary files being written, and say how to go
 * on. Every output is written whole or not at all, so what was finished stays valid and a rerun resumes after it.
 * A second signal while exiting is left to Node (immediate exit).
 */
export function exitOnSignals(ctx: CliContext): void {
  const codes = { SIGINT: 130, SIGTERM: 143 } as const;
  for (const sig of Object.keys(codes) as (keyof typeof codes)[]) {
    process.once(sig, () => {
      ctx.progress.done();
      const removed = removeOpenTemps();
      process.stderr.write(
        `mimic: stopped by ${sig}; finished outputs are kept${removed ? ` (${removed} unfinished file(s) removed)` : ''}; ` +
          'rerun the same command to resume\n',
      );
      process.exit(codes[sig]);
    });
  }
}
