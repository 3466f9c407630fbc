// The text of one running sequence as it streams: incremental detokenization (as vLLM's detokenizer:
// decode(tokens[prefix:]) minus decode(tokens[prefix:read]), nothing while the last character is
// incomplete), the stop strings (src/text/stop_strings.ts: the text is cut before the first, or after it
// with include_stop_str_in_output), and the tail
// held back while it could be the start of a stop string.
import type { Tokenizer } from '../text/tokenizer.js';
import type { StopStrings } from '../text/stop_strings.js';


export class TextStream {
  /** The text so far (cut before a stop string once one was found). */
  text = '';
  /** Characters of `text` handed out already. */
  private sent = 0;
  private prefix = 0;
  private read = 0;

  /**
   * `incremental`: text with every token (else, without stop strings, the text is decoded once, at the end).
   * Without a tokenizer there is no text.
   */
  private readonly decodeOpts: { skipSpecialTokens: boolean };
  private readonly includeStop: boolean;

  /** `text.skipSpecialTokens` (default true): special tokens left out; `text.includeStop`: the stop string kept. */
  constructor(private readonly tokenizer: Tokenizer | undefined, private readonly stops: StopStrings, private readonly incremental: boolean, text: { skipSpecialTokens?: boolean; includeStop?: boolean } = {}) {
    this.decodeOpts = { skipSpecialTokens: text.skipSpecialTokens ?? true };
    this.includeStop = text.includeStop ?? false;
  }

  /** After a new token (`tokens`: all of the sequence's so far): the stop string that ended the text, or null. */
  push(tokens: readonly number[]): string | null {
    if (!this.tokenizer || (!this.incremental && this.stops.empty)) return null;
    this.text += this.delta(tokens);
    const m = this.stops.empty ? null : this.stops.find(this.text, this.stops.searchFrom(this.sent));
    if (!m) return null;
    this.text = this.text.slice(0, m.at + (this.includeStop ? m.stop.length : 0));
    return m.stop;
  }

  /** The text that became final since the last call (the tail that could start a stop string held back). */
  take(): string {
    const upTo = Math.max(this.sent, this.text.length - this.stops.holdBack);
    const out = this.text.slice(this.sent, upTo);
    this.sent = upTo;
    return out;
  }

  /** The rest of the text when the sequence ends (after a stop string, `cut`: none beyond the cut). */
  release(tokens: readonly number[], cut: boolean): string {
    const tok = this.tokenizer;
    if (!tok) return '';
    // Characters the incremental decoding kept back (an incomplete last character) come out now.
    if (!cut) {
      const full = tok.decode(tokens, this.decodeOpts);
      if (full.startsWith(this.text)) this.text = full;
    }
    const rest = this.text.slice(this.sent);
    this.sent = this.text.length;
    return rest;
  }

  /** New final text after the last token. */
  private delta(tokens: readonly number[]): string {
    const tok = this.tokenizer!;
    const prefixText = this.read > this.prefix ? tok.decode(tokens.slice(this.prefix, this.read), this.decodeOpts) : '';
    const newText = tok.decode(tokens.slice(this.prefix), this.decodeOpts);
    if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
      this.prefix = this.read;
      this.read = tokens.length;
      return newText.slice(prefixText.length);
    }
    return '';
  }
}
