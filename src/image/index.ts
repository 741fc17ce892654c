export { type ImageSpec, type ResizeGeometry, CLIP_MEAN, CLIP_STD, resizeGeometry, checkImageSpec } from './spec.js';
export { type ImageErrorKind, ImageDecodeError, imageErrorKind } from './errors.js';
export { type DecodeOptions, type DecodedImage, type FailOn, type SourceInfo, decodeForFrame, decodeResized, decodeRgb } from './decode.js';
export { normalizeTable, normalizeTableFor, normalizeHwcToChw } from './normalize.js';
export { preprocessInto, preprocessUint8Into } from './preprocess.js';
export { type SharpSetup, configureSharp, libvipsVersion } from './sharp-setup.js';
