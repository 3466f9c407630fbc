// vLLM's bad_words: words that are never generated. Each word is tokenised twice, as it is and after a space
// (the form it takes inside a text), the second kept only when it is a different token sequence of the same
// length; a one-token word is banned outright, and the last token of a longer one is banned wherever the tokens
// generated so far end with the rest of it (so the word cannot be completed). The prompt is not looked at, as in
// vLLM.
import type { Tokenizer } from '../text/tokenizer.js';

/** The token sequences of the words, as vLLM derives them. */
export function badWordsIds(tokenizer: Tokenizer, words: readonly string[]): number[][] {
  const out: number[][] = [];
  for (const word of words) {
    const bare = tokenizer.encode(word.trimStart(), { addSpecialTokens: false });
    if (bare.length === 0) continue;
    out.push(bare);
    const spaced = tokenizer.encode(` ${word.trimStart()}`, { addSpecialTokens: false });
    if (spaced.length === bare.length && spaced[0] !== bare[0]) out.push(spaced);
  }
  return out;
}

/** The tokens that may not come next after `past` (the tokens generated so far). */
export function bannedNext(words: readonly (readonly number[])[], past: readonly number[]): number[] {
  const out: number[] = [];
  for (const w of words) {
    const prefix = w.length - 1;
    if (past.length < prefix) continue;
    let match = true;
    for (let j = 0; j < prefix && match; j++) match = past[past.length - prefix + j] === w[j];
    if (match) out.push(w[prefix]!);
  }
  return out;
}
