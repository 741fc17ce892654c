/**
 * One logger for the library and the CLI. The library logs through `log()`; a program embedding grad-mimic can
 * hand its own pino logger to `setLogger`, and the CLI installs a pretty or JSON-lines one at start-up.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

let current: Logger = pino({ level: process.env.MIMIC_LOG_LEVEL ?? 'info' }, pino.destination(2));

export function log(): Logger {
  return current;
}

export function setLogger(logger: Logger): void {
  current = logger;
}

export type LogFormat = 'pretty' | 'json';

/** Build the logger the CLI uses: pretty on a terminal, JSON lines otherwise, always on stderr. */
export async function createCliLogger(opts: {
  level: string;
  format: LogFormat;
  /** Where lines go; the progress display wraps stderr so that a log line never tears the bar. */
  destination: DestinationStream & NodeJS.WritableStream;
}): Promise<Logger> {
  if (opts.format === 'json') return pino({ level: opts.level }, opts.destination);
  const { default: pretty } = await import('pino-pretty');
  const stream = pretty({
    destination: opts.destination,
    colorize: (opts.destination as { isTTY?: boolean }).isTTY ?? false,
    ignore: 'pid,hostname',
    translateTime: 'HH:MM:ss',
    sync: true,
  });
  return pino({ level: opts.level }, stream);
}
