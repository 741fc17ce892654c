/**
 * JPEG decoding in WebAssembly: the mozjpeg decoder that @jsquash/jpeg ships (libjpeg-turbo's decoding code, as
 * in the libvips that sharp bundles, so the pixels are the same; test/image/jpeg-wasm.test.ts checks). Why: on
 * web-sized images sharp spends more time around the decoder than in it (a thread-pool hop each way, libvips'
 * object system: ~1 ms a call), and this decoder runs on the calling thread without any of that: 1.3–1.5× the
 * images per CPU-second on 256-px JPEGs (scripts/bench-decode.mjs). It blocks the thread it runs on, so
 * sample preparation uses it on prep worker threads (src/pipeline/prep-worker.ts), not on the reader's.
 *
 * Whatever the decoder warns about (a truncated file, corrupt entropy data) or fails on gives undefined: the
 * caller then decodes with sharp, whose failOn policy and messages stay the one authority on bad images.
 * (The package's glue defines a minimal global ImageData under Node when there is none: its decode returns one.)
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { errorMessage } from '../errors.js';
import { log } from '../log.js';

interface MozJpegDecoder {
  /** RGBA (grey replicated), or null; libjpeg's fatal errors surface as a thrown exit(1). */
  decode(data: Uint8Array, preserveOrientation: boolean): { data: Uint8ClampedArray; width: number; height: number } | null;
}

type Factory = (options: Record<string, unknown>) => Promise<MozJpegDecoder>;

// The WebAssembly global, as far as it is used here (the project's libs are ES2023 without the DOM's types).
declare namespace WebAssembly {
  type Module = object;
  type Imports = object;
  interface Instance {
    exports: object;
  }
}
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => WebAssembly.Module;
  Instance: new (module: WebAssembly.Module, imports: WebAssembly.Imports) => WebAssembly.Instance;
};

const require = createRequire(import.meta.url);
let compiled: { wasm: WebAssembly.Module; factory: Factory } | undefined;
let decoder: Promise<MozJpegDecoder | undefined> | undefined;
/** What libjpeg printed during the current call: any message is a warning or an error. */
const messages: string[] = [];

async function instantiate(): Promise<MozJpegDecoder> {
  if (!compiled) {
    const wasm = new WebAssembly.Module(readFileSync(require.resolve('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm')));
    const factory = ((await import('@jsquash/jpeg/codec/dec/mozjpeg_dec.js')) as { default: Factory }).default;
    compiled = { wasm, factory };
  }
  const { wasm, factory } = compiled;
  return factory({
    noInitialRun: true,
    instantiateWasm: (imports: WebAssembly.Imports, done: (i: WebAssembly.Instance) => void) => {
      const instance = new WebAssembly.Instance(wasm, imports);
      done(instance);
      return instance.exports;
    },
    print: (s: string) => messages.push(s),
    printErr: (s: string) => messages.push(s),
  });
}

/**
 * The image as width×height×3 RGB, exactly as sharp decodes it (EXIF orientation not applied, grey
 * replicated), or undefined when the decoder had anything to say about the bytes or they are not the
 * expected size. `width`/`height` come from the frame header the caller already read.
 */
export async function decodeJpegRgb(bytes: Uint8Array, width: number, height: number): Promise<Buffer | undefined> {
  // A decoder that cannot load (a damaged install) costs speed, not samples: libvips decodes, and it is said once.
  decoder ??= instantiate().catch((e: unknown) => {
    log().warn({ err: errorMessage(e) }, 'the WebAssembly JPEG decoder could not be loaded: libvips decodes every JPEG (reinstall with npm ci)');
    return undefined;
  });
  const jpeg = await decoder;
  if (!jpeg) return undefined;
  messages.length = 0;
  let out: ReturnType<MozJpegDecoder['decode']>;
  try {
    out = jpeg.decode(bytes, false);
  } catch {
    // libjpeg's error_exit ends in exit(): what the decode had allocated is never freed, so start a new instance.
    decoder = undefined;
    return undefined;
  }
  if (!out || messages.length > 0 || out.width !== width || out.height !== height) return undefined;
  return rgbaToRgb(new Uint32Array(out.data.buffer, out.data.byteOffset, width * height));
}

/**
 * Drops the alpha bytes, four pixels (three 32-bit words out) at a time: twice as fast as byte by byte, which
 * matters at ~0.1 ms an image. Little-endian words (R in the low byte), as WebAssembly and its hosts are.
 */
function rgbaToRgb(src: Uint32Array): Buffer {
  const n = src.length;
  const words = new ArrayBuffer((n * 3 + 3) & ~3);
  const out = new Uint32Array(words);
  const whole = n & ~3;
  for (let i = 0, o = 0; i < whole; i += 4, o += 3) {
    const a = src[i]!;
    const b = src[i + 1]!;
    const c = src[i + 2]!;
    const d = src[i + 3]!;
    out[o] = (a & 0xffffff) | (b << 24);
    out[o + 1] = ((b >>> 8) & 0xffff) | (c << 16);
    out[o + 2] = ((c >>> 16) & 0xff) | (d << 8);
  }
  const rgb = Buffer.from(words, 0, n * 3);
  for (let i = whole; i < n; i++) {
    const v = src[i]!;
    rgb[i * 3] = v;
    rgb[i * 3 + 1] = v >>> 8;
    rgb[i * 3 + 2] = v >>> 16;
  }
  return rgb;
}
