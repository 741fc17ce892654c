export { ClipTokenizer, END_OF_TEXT, START_OF_TEXT, loadClipTokenizer, type ClipTokenizerOptions } from './tokenizer.js';
export { cleanCaption, collapseWhitespace, htmlUnescape, replaceLoneSurrogates } from './tokenizer-clean.js';
