/** `http(s)://` shards: streamed, redirects followed, retried, and resumed by Range when a connection drops. */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { DEFAULTS } from '../defaults.js';
import type { HttpOptions, ShardInfo } from './types.js';
import { FetchError, ResumableBody, fetchWithRetries, type RangeFetcher, type RangeResponse } from './resumable-body.js';

/** HEAD refused (405, 501): the caller asks with GET instead. */
class HeadRefused extends FetchError {}

/**
 * Size, ETag and date of an http(s) shard from a HEAD request (redirects followed, retried like a read); a
 * server that does not answer HEAD is asked with GET, closed after the headers.
 */
export async function statHttp(url: string, opts: { http?: Partial<HttpOptions>; signal?: AbortSignal }): Promise<ShardInfo> {
  const o: HttpOptions = { ...DEFAULTS.shards.http, ...opts.http };
  const retry = { url, retries: o.retries, retryDelayMs: o.retryDelayMs, signal: opts.signal };
  try {
    const r = await fetchWithRetries(() => request(url, 0, undefined, o, opts.signal, 0, 'HEAD'), retry);
    r.body.resume();
    return infoOf(url, r);
  } catch (e) {
    if (!((e as { cause?: unknown }).cause instanceof HeadRefused)) throw e;
    const { info, stream } = await openHttp(url, opts);
    stream.destroy();
    return info;
  }
}

function infoOf(url: string, r: RangeResponse): ShardInfo {
  const info: ShardInfo = { url, size: r.total, etag: r.etag };
  if (r.lastModified) {
    const t = Date.parse(r.lastModified);
    if (Number.isFinite(t)) info.mtimeMs = t;
  }
  return info;
}

export async function openHttp(
  url: string,
  opts: { http?: Partial<HttpOptions>; signal?: AbortSignal },
): Promise<{ info: ShardInfo; stream: Readable }> {
  const o: HttpOptions = { ...DEFAULTS.shards.http, ...opts.http };
  const fetch: RangeFetcher = (start, validator) => request(url, start, validator, o, opts.signal, 0);
  const retry = { url, retries: o.retries, retryDelayMs: o.retryDelayMs, signal: opts.signal };
  const first = await fetchWithRetries(fetch, retry);
  return { info: infoOf(url, first), stream: new ResumableBody(fetch, first, retry) };
}

function request(
  url: string,
  start: number,
  validator: string | undefined,
  o: HttpOptions,
  signal: AbortSignal | undefined,
  redirects: number,
  method: 'GET' | 'HEAD' = 'GET',
): Promise<RangeResponse> {
  return new Promise((resolve, reject) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      reject(new FetchError(`"${url}" is not a valid URL`, false));
      return;
    }
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (start > 0) {
      headers.range = `bytes=${start}-`;
      if (validator) headers['if-range'] = validator;
    }
    const send = target.protocol === 'https:' ? https.request : http.request;
    const req = send(target, { method, headers, signal }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects >= o.maxRedirects) {
          reject(new FetchError(`more than ${o.maxRedirects} redirects`, false));
          return;
        }
        const next = new URL(res.headers.location, target).toString();
        request(next, start, validator, o, signal, redirects + 1, method).then(resolve, reject);
        return;
      }
      if (method === 'HEAD' && (status === 405 || status === 501)) {
        res.resume();
        reject(new HeadRefused(`HEAD answered ${status}`, false));
        return;
      }
      if (status !== 200 && status !== 206) {
        res.resume();
        const retriable = status >= 500 || status === 429 || status === 408;
        reject(
          new FetchError(
            `HTTP ${status} ${res.statusMessage ?? ''}`.trim(),
            retriable,
            status === 404
              ? 'no shard at this URL: check the shard list'
              : status === 401 || status === 403
                ? 'the server refused access: check credentials or the URL'
                : undefined,
          ),
        );
        return;
      }
      // The idle timeout guards a stalled connection, but a body paused because the consumer is busy is not
      // stalled: the timer runs only while the body flows.
      res.on('pause', () => req.setTimeout(0));
      res.on('resume', () => req.setTimeout(o.timeoutMs));
      const etag = header(res.headers.etag);
      const lastModified = header(res.headers['last-modified']);
      const length = numberHeader(res.headers['content-length']);
      if (status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(res.headers['content-range']) ?? '');
        if (!m) {
          res.resume();
          reject(new FetchError('a 206 answer without a usable Content-Range', false));
          return;
        }
        resolve({
          body: res,
          partial: true,
          start: Number(m[1]),
          total: m[3] === '*' ? undefined : Number(m[3]),
          etag,
          lastModified,
        });
        return;
      }
      resolve({ body: res, partial: false, start: 0, total: length, etag, lastModified });
    });
    req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`no data for ${o.timeoutMs} ms`)));
    req.on('error', (e) => reject(signal?.aborted ? e : new FetchError(e.message, true)));
    req.end();
  });
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function numberHeader(v: string | string[] | undefined): number | undefined {
  const s = header(v);
  if (s === undefined || !/^\d+$/.test(s)) return undefined;
  return Number(s);
}
