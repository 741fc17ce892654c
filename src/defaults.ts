/**
 * Every default of the library, in one place (like sharp's constructor options): the CLI's flags, the config
 * presets in configs/ and the library's option objects all start from these.
 */
export const DEFAULTS = {
  wds: {
    /** Sample members tried in order for the image. */
    imageKeys: ['jpg', 'jpeg', 'png', 'webp'],
    captionKey: 'txt',
    metadataKey: 'json',
  },
  score: {
    batchSize: 256,
  },
} as const;
