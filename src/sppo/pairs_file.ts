// Preference pairs as `sppo train` reads them, in sppo's own form and in TRL's dataset formats, from JSONL, a JSON
// array or Parquet (the Hub's form): {prompt, chosen, rejected} with the win rates a loss needs (and optionally
// the reference log-probs), and their tokenization for the trainer.
//   - sppo's own (what `sppo run` writes): "prompt" the rendered prompt text, "chosen" and "rejected" response texts;
//   - TRL's conversational: "prompt" a list of messages, "chosen" and "rejected" lists of (assistant) messages;
//   - TRL's implicit prompt: no "prompt"; "chosen" and "rejected" are whole conversations (or texts), and the prompt
//     is what they share at the start (TRL's extract_prompt);
//   - the official SPPO pipeline's scored data (uclaml/SPPO scripts/compute_prob.py, train.parquet of
//     synthetic_data_*_score): implicit-prompt conversations with the win rates as "chosen_probs_win" and
//     "chosen_probs_lose" and P(y_w > y_l) as "chosen_probs", read as sppo's three fields.
import type { Tokenizer } from '../text/tokenizer.js';
import { conversationIds, encodePrompt, responseEndId, responseIdsAfter, type ChatMessage, type ChatTemplate, type RenderedPrompt } from '../text/chat_template.js';
import { readRecords } from '../util/records.js';
import { messageList } from './prompts.js';
import type { LossType } from './losses.js';
import type { TrainExample } from './trainer.js';

export interface PairRecord {
  /** Text (sppo's own pairs: the rendered prompt), or a conversation (TRL's conversational format). */
  prompt: string | ChatMessage[];
  chosen: string | ChatMessage[];
  rejected: string | ChatMessage[];
  /** Where the pair is (file:line, or file: row N), for errors. */
  where?: string;
  chosenWinRate?: number;
  rejectedWinRate?: number;
  chosenOverRejected?: number;
  chosenRefLogprob?: number;
  rejectedRefLogprob?: number;
  /** omwu: the win rates against the previous policy. */
  chosenPrevWinRate?: number;
  rejectedPrevWinRate?: number;
}

/** The official SPPO pipeline's names of sppo's fields (compute_prob.py's columns). */
const OFFICIAL_NAMES: Record<string, string> = { chosen_win_rate: 'chosen_probs_win', rejected_win_rate: 'chosen_probs_lose', chosen_over_rejected: 'chosen_probs' };

/** The losses whose targets are the responses' win rates. */
const WIN_RATE_LOSSES: readonly LossType[] = ['sppo', 'mpo', 'nash-md', 'omwu', 'extragradient'];

/** TRL's extract_prompt: the shared start of chosen and rejected (whole messages; for texts, characters, a trailing space left to the responses). */
export function extractPrompt<T extends string | ChatMessage[]>(chosen: T, rejected: T): { prompt: T; chosen: T; rejected: T } {
  const same = (a: unknown, b: unknown): boolean => (typeof a === 'string' ? a === b : JSON.stringify(a) === JSON.stringify(b));
  const n = Math.min(chosen.length, rejected.length);
  let idx = 0;
  while (idx < n && same(chosen[idx], rejected[idx])) idx++;
  if (typeof chosen === 'string' && idx < n && idx > 0 && chosen[idx - 1] === ' ') idx--;
  return { prompt: chosen.slice(0, idx) as T, chosen: chosen.slice(idx) as T, rejected: rejected.slice(idx) as T };
}

/** Reads the pairs (JSONL, a JSON array or Parquet); a malformed record is an error naming file:line (or row). */
export async function readPairs(path: string, loss: LossType): Promise<PairRecord[]> {
  const out: PairRecord[] = [];
  for (const { value: v, where } of await readRecords(path)) {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: expected a JSON object`);
    const o = v as Record<string, unknown>;
    for (const k of ['chosen', 'rejected']) {
      if (typeof o[k] !== 'string' && !Array.isArray(o[k])) throw new Error(`${where}: "${k}" must be a string (sppo's pairs, TRL's standard format) or a list of messages (TRL's conversational format)`);
    }
    if (o.prompt !== undefined && o.prompt !== null && typeof o.prompt !== 'string' && !Array.isArray(o.prompt)) throw new Error(`${where}: "prompt" must be a string or a list of messages`);
    const conversational = Array.isArray(o.chosen);
    if (Array.isArray(o.rejected) !== conversational || (o.prompt !== undefined && o.prompt !== null && Array.isArray(o.prompt) !== conversational)) {
      throw new Error(`${where}: "prompt", "chosen" and "rejected" must all be texts or all lists of messages (TRL's standard or conversational format), not a mix`);
    }
    let prompt: string | ChatMessage[];
    let chosen: string | ChatMessage[];
    let rejected: string | ChatMessage[];
    if (conversational) {
      chosen = messageList(o.chosen as unknown[], where, 'chosen');
      rejected = messageList(o.rejected as unknown[], where, 'rejected');
      prompt = Array.isArray(o.prompt) ? messageList(o.prompt, where, 'prompt') : [];
    } else {
      chosen = o.chosen as string;
      rejected = o.rejected as string;
      prompt = typeof o.prompt === 'string' ? o.prompt : '';
    }
    if (o.prompt === undefined || o.prompt === null) {
      // TRL's implicit prompt: the conversations' shared start.
      ({ prompt, chosen, rejected } = extractPrompt(chosen, rejected));
      if (prompt.length === 0) throw new Error(`${where}: no "prompt", and "chosen" and "rejected" share no start to take it from (TRL's implicit-prompt format)`);
    }
    if (Array.isArray(prompt) && prompt.length === 0) throw new Error(`${where}: "prompt" has no messages`);
    const prob = (name: string, required: boolean): number | undefined => {
      // sppo's name, else the official pipeline's.
      const k = (o[name] === undefined || o[name] === null) && OFFICIAL_NAMES[name] !== undefined && o[OFFICIAL_NAMES[name]!] !== undefined && o[OFFICIAL_NAMES[name]!] !== null ? OFFICIAL_NAMES[name]! : name;
      const x = o[k];
      if (x === undefined || x === null) {
        if (required) throw new Error(`${where}: "${k}"${OFFICIAL_NAMES[k] ? ` (or "${OFFICIAL_NAMES[k]}", the official SPPO pipeline's name)` : ''} is required by the ${loss} loss (TRL's datasets have no win rates: use --loss dpo, ipo or sppo_hard, or judge the pairs with \`sppo judge\`)`);
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
      prompt,
      chosen,
      rejected,
      where,
      chosenWinRate: prob('chosen_win_rate', WIN_RATE_LOSSES.includes(loss)),
      rejectedWinRate: prob('rejected_win_rate', WIN_RATE_LOSSES.includes(loss)),
      chosenPrevWinRate: prob('chosen_prev_win_rate', loss === 'omwu'),
      rejectedPrevWinRate: prob('rejected_prev_win_rate', loss === 'omwu'),
      chosenOverRejected: prob('chosen_over_rejected', loss === 'sppo_single'),
      chosenRefLogprob: logp('chosen_ref_logprob'),
      rejectedRefLogprob: logp('rejected_ref_logprob'),
    });
  }
  if (out.length === 0) throw new Error(`${path}: no pairs`);
  return out;
}

/**
 * Tokenizes pairs as the trainer wants them.
 *   - Text pairs (sppo's own): prompt and responses separately, the end of a turn appended to responses unless
 *     `appendEos` is false or a response ends with it already (then only whitespace after it, as a rendered turn
 *     '<|im_end|>\n' does). `template` is the model's chat template (undefined for a base model): the prompts are then
 *     its rendered text, encoded without special tokens, and a response ends with its turn terminator (Gemma's
 *     `<end_of_turn>`); without one, the prompts are plain text that gets the tokenizer's special tokens (a BOS),
 *     and responses end with EOS.
 *   - Conversational pairs (TRL's format): as TRL 1.13's DPOTrainer tokenizes them (`conversationIds`): the prompt
 *     rendered with the generation prompt, each response the ids that rendering prompt + response whole adds; the
 *     template ends the turn (`appendEos` does not apply). Pairs whose whole does not start with the prompt's ids
 *     are sliced all the same, with one warning naming them, as TRL warns.
 */
export function tokenizePairs(tokenizer: Tokenizer, pairs: PairRecord[], appendEos: boolean, template?: ChatTemplate, chatTemplateKwargs: Record<string, unknown> = {}): TrainExample[] {
  const eos = responseEndId(tokenizer, template, chatTemplateKwargs);
  if (appendEos && eos === undefined && pairs.some((p) => typeof p.prompt === 'string')) throw new Error('the tokenizer has no EOS token: use --no-eos');
  const endsTurn = (ids: number[]): boolean => {
    const j = ids.lastIndexOf(eos!);
    return j >= 0 && tokenizer.decode(ids.slice(j + 1)).trim() === '';
  };
  const resp = (prompt: RenderedPrompt, promptIds: number[], t: string): number[] => {
    const ids = responseIdsAfter(tokenizer, prompt, promptIds, t);
    if (appendEos && !endsTurn(ids)) ids.push(eos!);
    return ids;
  };
  const mismatched: string[] = [];
  const out = pairs.map((p, i) => {
    const where = p.where ?? `pair ${i + 1}`;
    let promptIds: number[];
    let chosenIds: number[];
    let rejectedIds: number[];
    if (Array.isArray(p.prompt)) {
      if (!template) throw new Error(`${where}: a conversational pair needs the model's chat template, and the model folder has none`);
      const c = conversationIds(tokenizer, template, p.prompt, p.chosen as ChatMessage[], chatTemplateKwargs);
      const r = conversationIds(tokenizer, template, p.prompt, p.rejected as ChatMessage[], chatTemplateKwargs);
      if (!c.prefix || !r.prefix) mismatched.push(where);
      ({ promptIds, completionIds: chosenIds } = c);
      rejectedIds = r.completionIds;
    } else {
      const rendered = { text: p.prompt, templated: template !== undefined };
      promptIds = encodePrompt(tokenizer, rendered);
      chosenIds = resp(rendered, promptIds, p.chosen as string);
      rejectedIds = resp(rendered, promptIds, p.rejected as string);
    }
    if (promptIds.length === 0) throw new Error(`${where}: the prompt is empty after tokenization`);
    if (chosenIds.length === 0 || rejectedIds.length === 0) throw new Error(`${where}: the ${chosenIds.length === 0 ? 'chosen' : 'rejected'} response is empty after tokenization`);
    const e: TrainExample = {
      promptIds,
      chosenIds,
      rejectedIds,
      chosenWinRate: p.chosenWinRate ?? 0.5,
      rejectedWinRate: p.rejectedWinRate ?? 0.5,
      chosenOverRejected: p.chosenOverRejected ?? 0.5,
    };
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
  if (mismatched.length) {
    process.emitWarning(`${mismatched.length} conversational pair(s) render prompt + response with other tokens at the start than the prompt alone (${mismatched.slice(0, 3).join('; ')}${mismatched.length > 3 ? '; ...' : ''}): their responses are the ids after the prompt's count, as TRL slices them`, { code: 'SPPO_PROMPT_PREFIX' });
  }
  return out;
}
