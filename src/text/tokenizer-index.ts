export { ClipTokenizer, END_OF_TEXT, START_OF_TEXT, loadClipTokenizer, type ClipTokenizerOptions } from './tokenizer.js';
export { cleanCaption, collapseWhitespace, htmlUnescape, replaceLoneSurrogates, type CaptionCleanup } from './tokenizer-clean.js';
export { ftfyLite } from './tokenizer-ftfy.js';
