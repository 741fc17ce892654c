/** The bridge between commander and a command: global flags, logging, exit status. */
import type { Command } from 'commander';
import { createCliLogger, setLogger, type LogFormat } from '../log.js';
import type { ProgressLine } from './progress.js';

export interface CliContext {
  progress: ProgressLine;
  /** Set by the command that ran. */
  exitCode?: number;
}

/** What every command's action returns: the process exit status. */
export type CommandAction = (ctx: CliContext, ...args: any[]) => Promise<number>;

/** Wrap a command's action: set up the logger from the global flags, then run it and keep its exit status. */
export function action(ctx: CliContext, fn: CommandAction): (...args: any[]) => Promise<void> {
  return async (...args: any[]) => {
    const cmd = args[args.length - 1] as Command;
    const globals = cmd.optsWithGlobals() as { logLevel: string; logFormat?: string; progress: boolean };
    const format: LogFormat = globals.logFormat === 'json' || globals.logFormat === 'pretty'
      ? globals.logFormat
      : process.stderr.isTTY ? 'pretty' : 'json';
    if (globals.progress === false) (ctx.progress as { enabled: boolean }).enabled = false;
    setLogger(await createCliLogger({
      level: globals.logLevel,
      format,
      destination: ctx.progress.loggerStream() as never,
    }));
    ctx.exitCode = await fn(ctx, ...args);
  };
}

