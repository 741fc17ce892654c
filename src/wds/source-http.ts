/** `http(s)://` shards: streamed, redirects followed, retried, and resumed by Range when a connection drops. */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { DEFAULTS } from '../defaults.js';
import type { HttpOptions, ShardInfo } from './types.js';
import { FetchError, ResumableBody, fetchWithRetries, type RangeFetcher, type RangeResponse } from './resumable-body.js';

export async function openHttp(
  url: string,
  opts: { http?: Partial<HttpOptions>; signal?: AbortSignal },
): Promise<{ info: ShardInfo; stream: Readable }> {
  const o: HttpOptions = { ...DEFAULTS.shards.http, ...opts.http };
  const fetch: RangeFetcher = (start, validator) => request(url, start, validator, o, opts.signal, 0);
  const retry = { url, retries: o.retries, retryDelayMs: o.retryDelayMs, signal: opts.signal };
  const first = await fetchWithRetries(fetch, retry);
  const info: ShardInfo = { url, size: first.total, etag: first.etag };
  if (first.lastModified) {
    const t = Date.parse(first.lastModified);
    if (Number.isFinite(t)) info.mtimeMs = t;
  }
  return { info, stream: new ResumableBody(fetch, first, retry) };
}

function request(
  url: string,
  start: number,
  validator: string | undefined,
  o: HttpOptions,
  signal: AbortSignal | undefined,
  redirects: number,
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
    const get = target.protocol === 'https:' ? https.get : http.get;
    const req = get(target, { headers, signal }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects >= o.maxRedirects) {
          reject(new FetchError(`more than ${o.maxRedirects} redirects`, false));
          return;
        }
        const next = new URL(res.headers.location, target).toString();
        request(next, start, validator, o, signal, redirects + 1).then(resolve, reject);
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
