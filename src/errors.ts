/**
 * Every failure a user can cause or fix is a MimicError: a stable code (for scripts and tests), a message that
 * names the file or value at fault, and a hint that says what to do. The CLI prints these once, without a stack;
 * anything else reaching the edge is a bug and is reported as one.
 */
export type ErrorCode =
  | 'E_USAGE' // bad flags or arguments
  | 'E_CONFIG' // a config file that does not parse or has unknown keys
  | 'E_SHARD_SPEC' // a shard list that expands to nothing or is malformed
  | 'E_SOURCE' // a shard that cannot be opened or fetched
  | 'E_TAR' // a tar stream that is truncated or not a tar
  | 'E_SAMPLE' // one sample is malformed (recorded per row, never fatal)
  | 'E_IMAGE' // an image that cannot be decoded
  | 'E_TEXT' // a caption that cannot be tokenized
  | 'E_BUNDLE' // a model bundle that is missing files or is inconsistent
  | 'E_ONNX' // an ONNX file or session that fails to load or run
  | 'E_DEVICE' // an execution provider that cannot be used
  | 'E_SCORES' // a score file that is missing, corrupt or of another schema
  | 'E_OUTPUT' // an output folder that conflicts with the requested run
  | 'E_FILTER' // a selection rule that does not parse or names an unknown column
  | 'E_IO'; // a file that cannot be read or written

export interface MimicErrorOptions {
  hint?: string;
  /** The file, URL or shard the error is about. */
  file?: string;
  cause?: unknown;
}

export class MimicError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly file?: string;

  constructor(code: ErrorCode, message: string, options: MimicErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MimicError';
    this.code = code;
    this.hint = options.hint;
    this.file = options.file;
  }
}

export function isMimicError(e: unknown): e is MimicError {
  return e instanceof MimicError;
}

/** Exit statuses of the CLI, in one place so that scripts can rely on them. */
export const EXIT = {
  ok: 0,
  /** The command ran to the end but some shards or samples failed (see its summary). */
  partial: 1,
  /** The command could not run: bad arguments, config, bundle or output folder. */
  usage: 2,
  /** A bug: an unexpected exception. */
  internal: 70,
} as const;

/** The message of any thrown value, for recording in per-sample and per-shard statuses. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
