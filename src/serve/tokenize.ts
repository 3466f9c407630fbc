// Prompts into token ids without stalling the server: a text's length is checked against the context
// length before it is tokenised (a lower bound on its tokens from the longest piece of the vocabulary), and
// long texts are tokenised on a worker thread (tokenize_worker.ts, its own copy of the tokenizer), so that
// one large prompt does not hold up the streams of the others (the pure-JS tokenizer takes seconds on a
// megabyte). Short texts are tokenised in place (a worker's round trip would cost more).
import { Worker } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tokenizer } from '../text/tokenizer.js';

/** The longest piece of tokenizer.json's vocabulary and added tokens, in UTF-16 code units. */
function longestPiece(dir: string): number {
  let longest = 1;
  try {
    const j = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { model?: { vocab?: unknown }; added_tokens?: { content?: string }[] };
    const vocab = j.model?.vocab;
    const pieces: string[] = Array.isArray(vocab) ? vocab.map((v) => (Array.isArray(v) ? String(v[0]) : String(v))) : vocab && typeof vocab === 'object' ? Object.keys(vocab) : [];
    for (const p of pieces) if (p.length > longest) longest = p.length;
    for (const a of j.added_tokens ?? []) if (typeof a.content === 'string' && a.content.length > longest) longest = a.content.length;
  } catch {
    return Infinity; // unknown vocabulary: no pre-check
  }
  return longest;
}

export class PromptTokenizer {
  /**
   * A text of L code units has at least L / (SLACK * longest piece) tokens: each token covers at most the
   * longest piece's characters of the normalized text (byte-level pieces: one character per byte, so at
   * least one per character), and SLACK covers normalizers that merge characters (NFC/NFKC compositions).
   */
  static readonly SLACK = 4;
  private readonly longest: number;
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (ids: number[]) => void; reject: (e: Error) => void }>();

  /** `workerChars`: texts at least this long are tokenised on the worker (default 16384). */
  constructor(readonly tokenizer: Tokenizer, readonly opts: { workerChars?: number } = {}) {
    this.longest = longestPiece(tokenizer.dir);
  }

  /** A lower bound on the tokens of `text` (0 when the vocabulary is unknown). */
  minTokens(text: string): number {
    return Number.isFinite(this.longest) ? Math.floor(text.length / (PromptTokenizer.SLACK * this.longest)) : 0;
  }

  /** The token ids of `text` (on the worker when it is long). */
  encode(text: string, addSpecialTokens: boolean): Promise<number[]> {
    if (text.length < (this.opts.workerChars ?? 16384)) return Promise.resolve(this.tokenizer.encode(text, { addSpecialTokens }));
    const w = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ id, text, addSpecialTokens });
    });
  }

  /** Stops the worker (pending encodings fail). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./tokenize_worker.js', import.meta.url), { workerData: { dir: this.tokenizer.dir } });
    w.on('message', (m: { id: number; ids?: number[]; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      if (m.ids) p.resolve(m.ids);
      else p.reject(new Error(m.error ?? 'tokenization failed'));
    });
    const failAll = (e: Error): void => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      if (this.worker === w) this.worker = null;
    };
    w.on('error', failAll);
    w.on('exit', (code) => failAll(new Error(`the tokenizer worker exited (${code})`)));
    w.unref();
    this.worker = w;
    return w;
  }
}
