// Stop strings: texts that end a generation once they appear in it (the text is cut before them). The one
// matcher of the op-by-op generation loop (src/generate) and of the server's streams (src/serve): the
// earliest occurrence wins, and among stop strings found at the same place, the first in the list.

export interface StopMatch {
  /** Where the stop string starts in the text. */
  at: number;
  /** Which stop string. */
  stop: string;
}

export class StopStrings {
  /** The stop strings (empty ones left out: they would match everywhere). */
  readonly strings: readonly string[];
  /** The longest one's length (0 without any). */
  readonly maxLength: number;

  constructor(strings: readonly string[] = []) {
    this.strings = strings.filter((s) => s.length > 0);
    this.maxLength = Math.max(0, ...this.strings.map((s) => s.length));
  }

  get empty(): boolean {
    return this.strings.length === 0;
  }

  /** The earliest stop string in `text` that starts at or after `from`, or null. */
  find(text: string, from = 0): StopMatch | null {
    let best: StopMatch | null = null;
    for (const stop of this.strings) {
      const at = text.indexOf(stop, from);
      if (at >= 0 && (best === null || at < best.at)) best = { at, stop };
    }
    return best;
  }

  /** The text cut before its first stop string (the text itself without one). */
  cut(text: string): string {
    const m = this.find(text);
    return m ? text.slice(0, m.at) : text;
  }

  /**
   * Where a search may start in a text of which the first `checked` characters were searched already: a
   * stop string that ends in the new text may begin up to maxLength characters before it.
   */
  searchFrom(checked: number): number {
    return Math.max(0, checked - this.maxLength);
  }

  /** Characters a stream holds back from its end: they could be the start of a stop string. */
  get holdBack(): number {
    return Math.max(0, this.maxLength - 1);
  }

  /**
   * Tokens whose text surely holds a whole stop string that ends with the last of them (a token has at
   * least one character, up to 4 bytes of an incomplete one): the window the generation loop decodes.
   */
  get tokenWindow(): number {
    return 4 * this.maxLength + 4;
  }
}
