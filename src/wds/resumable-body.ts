/**
 * A remote object's bytes as one stream that survives dropped connections: when a body stops early it is
 * re-requested from the first missing byte (HTTP Range / S3 Range), guarded by the ETag (or Last-Modified) so
 * that the pieces are of one version of the object. If that is impossible — no Range support, no validator, the
 * object changed, attempts used up — the stream fails with an error naming the byte offset: a shard is never
 * silently shortened.
 */
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { MimicError, errorMessage } from '../errors.js';

/** One answer to a (possibly ranged) request. */
export interface RangeResponse {
  body: Readable;
  /** True when the body starts at the requested offset (206), false when it is the whole object (200). */
  partial: boolean;
  /** Offset of the body's first byte in the object. */
  start: number;
  /** The object's full size, when known. */
  total?: number;
  etag?: string;
  lastModified?: string;
}

/** A request for the object from `start` on; `validator` (ETag or date) must match for a partial answer. */
export type RangeFetcher = (start: number, validator?: string) => Promise<RangeResponse>;

/** A failure worth another attempt (connection error, 5xx) or not (404, 403). */
export class FetchError extends Error {
  constructor(
    message: string,
    readonly retriable: boolean,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export interface RetryOptions {
  url: string;
  retries: number;
  retryDelayMs: number;
  signal?: AbortSignal;
}

/** Make the first request, retrying connection errors and 5xx answers with a doubling wait. */
export async function fetchWithRetries(fetch: RangeFetcher, opts: RetryOptions): Promise<RangeResponse> {
  let lastError: unknown;
  for (let attempt = 0; attempt <= opts.retries; attempt++) {
    if (attempt > 0) await sleep(opts.retryDelayMs * 2 ** (attempt - 1), undefined, { signal: opts.signal });
    opts.signal?.throwIfAborted();
    try {
      return await fetch(0);
    } catch (e) {
      lastError = e;
      if (e instanceof FetchError && !e.retriable) break;
    }
  }
  throw sourceError(opts.url, `cannot open ${opts.url}: ${errorMessage(lastError)}`, lastError);
}

export function sourceError(url: string, message: string, cause?: unknown): MimicError {
  const hint =
    cause instanceof FetchError && cause.hint
      ? cause.hint
      : 'check the URL and the network; the run goes on with the next shard and a rerun retries this one';
  return new MimicError('E_SOURCE', message, { file: url, hint, cause });
}

export class ResumableBody extends Readable {
  private current: Readable | null = null;
  private received = 0;
  private readonly total?: number;
  private readonly validator?: string;
  private failures = 0;
  private resuming = false;
  private finished = false;
  private detach: (() => void) | null = null;

  constructor(
    private readonly fetch: RangeFetcher,
    first: RangeResponse,
    private readonly opts: RetryOptions,
  ) {
    super({ highWaterMark: 1 << 20 });
    this.total = first.total;
    this.validator = first.etag ?? first.lastModified;
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.attach(first.body);
  }

  private readonly onAbort = () => this.destroy(this.opts.signal?.reason as Error);

  /** Bytes delivered so far (the offset where a resume starts). */
  get bytesReceived(): number {
    return this.received;
  }

  override _read(): void {
    this.current?.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.finished = true;
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.detach?.();
    this.current?.destroy();
    this.current = null;
    cb(err);
  }

  private attach(body: Readable): void {
    this.current = body;
    let done = false;
    const onData = (chunk: Buffer) => {
      this.received += chunk.length;
      this.failures = 0;
      if (!this.push(chunk)) body.pause();
    };
    const onEnd = () => {
      if (done) return;
      done = true;
      if (this.total !== undefined && this.received < this.total) {
        void this.onDropped(new Error(`the body ended after ${this.received} of ${this.total} bytes`));
      } else {
        this.finished = true;
        this.push(null);
      }
    };
    const onError = (e: Error) => {
      if (done) return;
      done = true;
      void this.onDropped(e);
    };
    const onClose = () => {
      // A body closed without 'end' or 'error' (some agents do that on a reset) is a drop too.
      if (!done) onError(new Error('the connection closed before the body was complete'));
    };
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('close', onClose);
    this.detach = () => {
      done = true;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
      body.on('error', () => {}); // late errors of a body we gave up on are expected
    };
  }

  private async onDropped(cause: Error): Promise<void> {
    if (this.finished || this.resuming) return;
    this.resuming = true;
    this.detach?.();
    this.current?.destroy();
    this.current = null;
    const at = this.received;
    try {
      if (at > 0 && !this.validator) {
        throw new FetchError(
          `the server gave no ETag or Last-Modified, so the rest cannot be fetched safely`,
          false,
          'serve the shards from a server that sends ETag and supports Range requests, or copy them locally',
        );
      }
      for (;;) {
        if (this.failures >= this.opts.retries) throw cause;
        this.failures++;
        await sleep(this.opts.retryDelayMs * 2 ** (this.failures - 1), undefined, { signal: this.opts.signal });
        if (this.destroyed) return;
        let res: RangeResponse;
        try {
          res = await this.fetch(at, at > 0 ? this.validator : undefined);
        } catch (e) {
          if (e instanceof FetchError && !e.retriable) throw e;
          cause = e as Error;
          continue;
        }
        if (this.destroyed) {
          res.body.destroy();
          return;
        }
        if (at === 0 && !res.partial) {
          this.attach(res.body);
          return;
        }
        if (!res.partial || res.start !== at) {
          res.body.destroy();
          const changed = res.etag !== undefined && this.validator !== undefined && res.etag !== this.validator;
          throw new FetchError(
            changed
              ? `the object changed while it was being read (ETag ${this.validator} → ${res.etag})`
              : `the server does not support Range requests (asked for byte ${at} on, got ${res.partial ? `byte ${res.start} on` : 'the whole object'})`,
            false,
            changed
              ? 'rerun once the shard is no longer being rewritten'
              : 'use a server that supports Range requests, or copy the shards locally',
          );
        }
        this.attach(res.body);
        return;
      }
    } catch (e) {
      if (this.destroyed) return;
      const reason = errorMessage(e);
      this.destroy(
        sourceError(
          this.opts.url,
          `the connection to ${this.opts.url} dropped at byte ${at}${this.total !== undefined ? ` of ${this.total}` : ''} and could not be resumed: ${reason}`,
          e,
        ),
      );
    } finally {
      this.resuming = false;
    }
  }
}
