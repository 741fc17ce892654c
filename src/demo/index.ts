/** The demo: real emoji image–caption data with known noise, and the quality metrics that score a filter on it. */
export { EMOJI_STYLES, STYLE_PACKAGES, loadEmojiCatalog, type EmojiStyle, type EmojiEntry, type EmojiImageSource, type CatalogOptions } from './catalog.js';
export { cleanCaption as demoCleanCaption, corruptCaption, captionWords, captionCorpus, BOILERPLATE_CAPTIONS } from './captions.js';
export {
  evaluateQuality,
  formatQualityMarkdown,
  DEMO_SCORES,
  DEMO_FILTERS,
  RANDOM_COLUMN,
  type ScoreSpec,
  type FilterSpec,
  type FilterPart,
  type QualityInput,
  type QualityReport,
  type ScoreQuality,
  type FilterQuality,
} from './quality.js';
export { auroc, midranks, precisionAtK, precisionAtNoiseRate, keptNoiseRate, percentileLinear, keepTop, bottom } from './metrics.js';
export { controlHeads, writeControlBundle, CONTROL_KINDS, CONTROL_SUFFIX, CONTROL_DESCRIPTION, type ControlKind, type ControlBundleOptions } from './controls.js';
export { readCheckpointScores, readDemoScores, MEAN_SUFFIX, type CheckpointScores, type DemoRunsSpec } from './read-scores.js';
export { evaluateDemo, meanOverCheckpoints, type ScoredRows, type DemoEvaluation, type DemoEvaluationOptions } from './evaluate.js';
export { renderEmoji, type RenderOptions, type DemoImageFormat } from './images.js';
export {
  buildDemoDataset,
  readDemoTruth,
  demoUid,
  DEMO_DATASET_DEFAULTS,
  TRUTH_FORMAT,
  TRUTH_FILE,
  CORPUS_FILE,
  type DemoDatasetOptions,
  type DemoDataset,
  type DemoTruth,
  type TruthRow,
  type NoiseLabel,
} from './dataset.js';
export { runDemo, filterRules, packageModelsDir, DEMO_SELECTIONS, DEMO_FORMAT, DEMO_MARKER, type DemoOptions, type DemoResult, type DemoSelection } from './run-demo.js';
