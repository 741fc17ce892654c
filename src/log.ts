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

/** A log record travelling from a worker thread to the thread that owns the real logger. */
export interface RelayedLog {
  type: 'log';
  record: Record<string, unknown>;
}

/**
 * In a worker thread: log through the parent thread's logger, so that --log-level, --log-format and the progress
 * line apply to every thread's messages alike. Records travel as `{ type: 'log' }` messages on the thread's port.
 */
export function relayLogsTo(port: { postMessage(m: RelayedLog): void }, level: string): void {
  setLogger(pino({ level, base: undefined, timestamp: false }, {
    write(line: string) {
      port.postMessage({ type: 'log', record: JSON.parse(line) as Record<string, unknown> });
    },
  }));
}

/** In the parent: log a relayed record with this thread's logger. Returns whether the message was one. */
export function logRelayed(m: unknown): boolean {
  if (typeof m !== 'object' || m === null || (m as { type?: unknown }).type !== 'log') return false;
  const { level, msg, ...rest } = (m as RelayedLog).record;
  const label = pino.levels.labels[level as number] as 'info' | undefined;
  const logger = log();
  (logger[label ?? 'info'] ?? logger.info).call(logger, rest, typeof msg === 'string' ? msg : '');
  return true;
}
