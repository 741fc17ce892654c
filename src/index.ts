/**
 * grad-mimic's library API: everything the CLI does is available here for programs that embed it.
 * Each pipeline stage exports its public functions from its folder's index.
 */
export { MimicError, isMimicError, EXIT, type ErrorCode } from './errors.js';
export { log, setLogger } from './log.js';
export { VERSION } from './version.js';
export { mimicFromFeatures } from './mimic/reference.js';
export { readGoldenFile, type GoldenCase } from './mimic/golden.js';
export { MIMIC_LAYERS, type MimicLayer, type MimicFeaturesInput, type MimicScores, type LayerScores } from './mimic/types.js';
export * from './wds/index.js';
