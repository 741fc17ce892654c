import { MimicError } from '../errors.js';

/**
 * Why one image could not be used, as the score file records it per sample: `image_too_large` is a policy
 * refusal (raise limitInputPixels to accept it), `decode_error` means the bytes are not a readable image.
 */
export type ImageErrorKind = 'decode_error' | 'image_too_large';

export class ImageDecodeError extends MimicError {
  readonly kind: ImageErrorKind;

  constructor(kind: ImageErrorKind, message: string, options: { hint?: string; file?: string; cause?: unknown } = {}) {
    super('E_IMAGE', message, options);
    this.kind = kind;
  }
}

/** The per-sample status for a failure from this stage, or undefined when the error is not an image's fault. */
export function imageErrorKind(e: unknown): ImageErrorKind | undefined {
  return e instanceof ImageDecodeError ? e.kind : undefined;
}
