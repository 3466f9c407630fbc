// Preference pairs as `sppo train` reads them: JSONL lines {prompt, chosen, rejected} with the win rates
// a loss needs (and optionally the reference log-probs), and their tokenization for the trainer.
import { existsSync } from 'node:fs';
import type { Tokenizer } from '../text/tokenizer.js';
import { encodePrompt, responseEndId, type ChatTemplate } from '../text/chat_template.js';
import { FileFormatError, forEachJsonl } from '../util/files.js';
import type { LossType } from './losses.js';
import type { TrainExample } from './trainer.js';

export interface PairRecord {
  prompt: string;
  chosen: string;
  rejected: string;
  chosenWinRate?: number;
  rejectedWinRate?: number;
  chosenOverRejected?: number;
  chosenRefLogprob?: number;
  rejectedRefLogprob?: number;
  /** omwu: the win rates against the previous policy. */
  chosenPrevWinRate?: number;
  rejectedPrevWinRate?: number;
}

/** The losses whose targets are the responses' win rates. */
const WIN_RATE_LOSSES: readonly LossType[] = ['sppo', 'mpo', 'nash-md', 'omwu', 'extragradient'];

/** Reads the pairs; a malformed line is an error naming file:line. */
export function readPairs(path: string, loss: LossType): PairRecord[] {
  if (!existsSync(path)) throw new FileFormatError(`${path} does not exist`);
  const out: PairRecord[] = [];
  forEachJsonl(path, (v, where) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: expected a JSON object`);
    const o = v as Record<string, unknown>;
    for (const k of ['prompt', 'chosen', 'rejected']) if (typeof o[k] !== 'string') throw new Error(`${where}: "${k}" must be a string`);
    const prob = (k: string, required: boolean): number | undefined => {
      const x = o[k];
      if (x === undefined || x === null) {
        if (required) throw new Error(`${where}: "${k}" is required by the ${loss} loss`);
        return undefined;
      }
      if (typeof x !== 'number' || !(x >= 0 && x <= 1)) throw new Error(`${where}: "${k}" must be a probability in [0, 1], got ${JSON.stringify(x)}`);
      return x;
    };
    const logp = (k: string): number | undefined => {
      const x = o[k];
      if (x === undefined || x === null) return undefined;
      if (typeof x !== 'number' || !Number.isFinite(x) || x > 0) throw new Error(`${where}: "${k}" must be a log-probability (a finite number <= 0), got ${JSON.stringify(x)}`);
      return x;
    };
    out.push({
      prompt: o.prompt as string,
      chosen: o.chosen as string,
      rejected: o.rejected as string,
      chosenWinRate: prob('chosen_win_rate', WIN_RATE_LOSSES.includes(loss)),
      rejectedWinRate: prob('rejected_win_rate', WIN_RATE_LOSSES.includes(loss)),
      chosenPrevWinRate: prob('chosen_prev_win_rate', loss === 'omwu'),
      rejectedPrevWinRate: prob('rejected_prev_win_rate', loss === 'omwu'),
      chosenOverRejected: prob('chosen_over_rejected', loss === 'sppo_single'),
      chosenRefLogprob: logp('chosen_ref_logprob'),
      rejectedRefLogprob: logp('rejected_ref_logprob'),
    });
  });
  if (out.length === 0) throw new Error(`${path}: no pairs`);
  return out;
}

/**
 * Tokenizes pairs as the trainer wants them: prompt and responses separately, the end of a turn appended to
 * responses. `template` is the model's chat template (undefined for a base model): the prompts are then its
 * rendered text, encoded without special tokens, and a response ends with its turn terminator (Gemma's
 * `<end_of_turn>`); without one, the prompts are plain text that gets the tokenizer's special tokens (a BOS), and
 * responses end with EOS.
 */
export function tokenizePairs(tokenizer: Tokenizer, pairs: PairRecord[], appendEos: boolean, template?: ChatTemplate, chatTemplateKwargs: Record<string, unknown> = {}): TrainExample[] {
  const eos = responseEndId(tokenizer, template, chatTemplateKwargs);
  if (appendEos && eos === undefined) throw new Error('the tokenizer has no EOS token: use --no-eos');
  const resp = (t: string): number[] => {
    const ids = tokenizer.encode(t, { addSpecialTokens: false });
    if (appendEos && ids.at(-1) !== eos) ids.push(eos!);
    return ids;
  };
  return pairs.map((p, i) => {
    const e: TrainExample = {
      promptIds: encodePrompt(tokenizer, { text: p.prompt, templated: template !== undefined }),
      chosenIds: resp(p.chosen),
      rejectedIds: resp(p.rejected),
      chosenWinRate: p.chosenWinRate ?? 0.5,
      rejectedWinRate: p.rejectedWinRate ?? 0.5,
      chosenOverRejected: p.chosenOverRejected ?? 0.5,
    };
    if (e.promptIds.length === 0) throw new Error(`pair ${i + 1}: the prompt is empty after tokenization`);
    if (p.chosenPrevWinRate !== undefined && p.rejectedPrevWinRate !== undefined) {
      e.chosenPrevWinRate = p.chosenPrevWinRate;
      e.rejectedPrevWinRate = p.rejectedPrevWinRate;
    }
    if (p.chosenRefLogprob !== undefined && p.rejectedRefLogprob !== undefined) {
      e.chosenRefLogprob = p.chosenRefLogprob;
      e.rejectedRefLogprob = p.rejectedRefLogprob;
    }
    return e;
  });
}
