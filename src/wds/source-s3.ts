/**
 * `s3://bucket/key` shards through the AWS SDK, an optional dependency loaded only when an s3:// shard is read.
 * Credentials, region and endpoint come from the usual AWS environment unless given; a body cut short is
 * resumed with a Range request pinned to the object's ETag (If-Match).
 */
import { Readable } from 'node:stream';
import { DEFAULTS } from '../defaults.js';
import { MimicError } from '../errors.js';
import type { HttpOptions, S3Options, ShardInfo } from './types.js';
import { FetchError, ResumableBody, fetchWithRetries, type RangeFetcher } from './resumable-body.js';

/**
 * The few SDK shapes used here. They are declared locally, and the module name is not a literal, so that
 * grad-mimic builds and runs without the optional SDK installed.
 */
interface S3Client {
  send(command: unknown, options?: { abortSignal?: AbortSignal }): Promise<GetObjectOutput>;
}
interface GetObjectOutput {
  Body?: unknown;
  ContentRange?: string;
  ContentLength?: number;
  ETag?: string;
  LastModified?: Date;
}
interface S3Module {
  S3Client: new (config: Record<string, unknown>) => S3Client;
  GetObjectCommand: new (input: Record<string, unknown>) => unknown;
  HeadObjectCommand: new (input: Record<string, unknown>) => unknown;
}

const SDK_MODULE = '@aws-sdk/client-s3';
let sdk: Promise<S3Module> | undefined;
const clients = new Map<string, S3Client>();

async function loadSdk(url: string): Promise<S3Module> {
  sdk ??= import(SDK_MODULE) as Promise<S3Module>;
  try {
    return await sdk;
  } catch (e) {
    sdk = undefined;
    throw new MimicError('E_SOURCE', `reading ${url} needs the AWS SDK (@aws-sdk/client-s3), which is not installed`, {
      file: url,
      hint: 'install it next to grad-mimic: npm install @aws-sdk/client-s3',
      cause: e,
    });
  }
}

export function parseS3Url(url: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/i.exec(url);
  if (!m) {
    throw new MimicError('E_SHARD_SPEC', `"${url}" is not an s3://bucket/key URL`, { file: url });
  }
  return { bucket: m[1], key: m[2] };
}

export async function openS3(
  url: string,
  opts: { s3?: S3Options; http?: Partial<HttpOptions>; signal?: AbortSignal },
): Promise<{ info: ShardInfo; stream: Readable }> {
  const { bucket, key } = parseS3Url(url);
  const { S3Client, GetObjectCommand } = await loadSdk(url);
  const client = clientFor(S3Client, opts.s3 ?? {});
  const o: HttpOptions = { ...DEFAULTS.shards.http, ...opts.http };

  const fetch: RangeFetcher = async (start, validator) => {
    try {
      const out = await client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(start > 0 ? { Range: `bytes=${start}-`, IfMatch: validator } : {}),
        }),
        { abortSignal: opts.signal },
      );
      const body = out.Body as Readable | undefined;
      if (!body) throw new FetchError('the object has no body', false);
      const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(out.ContentRange ?? '');
      return {
        body,
        partial: range !== null,
        start: range ? Number(range[1]) : 0,
        total: range ? Number(range[3]) : out.ContentLength,
        etag: out.ETag,
        lastModified: out.LastModified?.toUTCString(),
      };
    } catch (e) {
      if (e instanceof FetchError) throw e;
      throw classify(e);
    }
  };
  const retry = { url, retries: o.retries, retryDelayMs: o.retryDelayMs, signal: opts.signal };
  const first = await fetchWithRetries(fetch, retry);
  return { info: infoOf(url, first.total, first.etag, first.lastModified), stream: new ResumableBody(fetch, first, retry) };
}

/** Size, ETag and date of an s3:// shard from one HeadObject request (retried like a read). */
export async function statS3(url: string, opts: { s3?: S3Options; http?: Partial<HttpOptions>; signal?: AbortSignal }): Promise<ShardInfo> {
  const { bucket, key } = parseS3Url(url);
  const { S3Client, HeadObjectCommand } = await loadSdk(url);
  const client = clientFor(S3Client, opts.s3 ?? {});
  const o: HttpOptions = { ...DEFAULTS.shards.http, ...opts.http };
  const head: RangeFetcher = async () => {
    try {
      const out = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: opts.signal });
      return { body: Readable.from([]), partial: false, start: 0, total: out.ContentLength, etag: out.ETag, lastModified: out.LastModified?.toUTCString() };
    } catch (e) {
      throw classify(e);
    }
  };
  const r = await fetchWithRetries(head, { url, retries: o.retries, retryDelayMs: o.retryDelayMs, signal: opts.signal });
  return infoOf(url, r.total, r.etag, r.lastModified);
}

function infoOf(url: string, size: number | undefined, etag: string | undefined, lastModified: string | undefined): ShardInfo {
  const info: ShardInfo = { url, size, etag };
  if (lastModified) info.mtimeMs = Date.parse(lastModified);
  return info;
}

function clientFor(S3Client: S3Module['S3Client'], o: S3Options): S3Client {
  const id = JSON.stringify(o);
  let client = clients.get(id);
  if (!client) {
    const endpoint = o.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    client = new S3Client({
      region: o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      followRegionRedirects: true,
      ...(endpoint ? { endpoint } : {}),
      // Custom endpoints (MinIO, s3rver, Ceph) nearly always want path-style addressing.
      forcePathStyle: o.forcePathStyle ?? endpoint !== undefined,
      ...(o.credentials ? { credentials: o.credentials } : {}),
    });
    clients.set(id, client);
  }
  return client;
}

function classify(e: unknown): FetchError {
  const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = err.$metadata?.httpStatusCode;
  const what = `${err.name ?? 'Error'}: ${err.message ?? String(e)}`;
  if (err.name === 'NoSuchKey' || err.name === 'NotFound' || status === 404) {
    return new FetchError(what, false, 'no such object: check the bucket and key');
  }
  if (err.name === 'NoSuchBucket') return new FetchError(what, false, 'no such bucket: check the URL');
  if (status === 403 || err.name === 'AccessDenied' || err.name === 'CredentialsProviderError') {
    return new FetchError(what, false, 'check AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...) and the bucket policy');
  }
  if (status === 412) return new FetchError(what, false, 'the object changed while it was being read; rerun');
  return new FetchError(what, status === undefined || status >= 500 || status === 429);
}
