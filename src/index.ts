/**
 * grad-mimic's library API: everything the CLI does is available here for programs that embed it.
 * Each pipeline stage exports its public functions from its folder's index.
 */
export { MimicError, isMimicError, EXIT, type ErrorCode } from './errors.js';
export { log, setLogger } from './log.js';
export { VERSION } from './version.js';
