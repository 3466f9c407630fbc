// POST /v1/completions: prompts as text or token ids (or lists of either), answered in OpenAI's
// text_completion shapes, streamed or not; log-probs in the legacy shape (tokens, token_logprobs,
// top_logprobs, text_offset).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { badRequest, parseCompletion, type CompletionRequest } from './protocol.js';
import { promptTokens, respond, usage, type ChoiceState, type Endpoint, type EndpointContext, type RequestInfo, type StreamEvents } from './endpoint.js';

/** Token ids of a completion prompt (text with the tokenizer's special tokens, as vLLM). */
function promptIdsOf(ctx: EndpointContext, p: string | number[]): number[] {
  if (typeof p !== 'string') {
    const v = ctx.vocabSize;
    for (const t of p) if (t < 0 || t >= v) throw badRequest(`token id ${t} is out of the vocabulary [0, ${v})`, 'prompt', 'out_of_range');
    return p;
  }
  const ids = ctx.tokenizer.encode(p, { addSpecialTokens: true });
  if (ids.length === 0) throw badRequest('the prompt is empty', 'prompt');
  return ids;
}

async function answer(ctx: EndpointContext, req: IncomingMessage, res: ServerResponse, c: CompletionRequest, info: RequestInfo): Promise<void> {
  const promptIds = c.prompts.map((p) => promptIdsOf(ctx, p));
  info.prompt = c.prompts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('\n');
  const job = ctx.job(c, promptIds, 16, c.logprobs ?? 0);
  const id = `cmpl-${randomUUID().replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: 'text_completion', created, model: ctx.modelName };
  const tokStr = (t: number): string => ctx.tokenString(t, c.tokensAsIds);
  const lpObject = (outs: { token: number; logprob: number; top: [number, number][] | null }[], offset0: number): Record<string, unknown> => {
    let off = offset0;
    const tokens: string[] = [];
    const offsets: number[] = [];
    for (const o of outs) {
      tokens.push(tokStr(o.token));
      offsets.push(off);
      off += ctx.tokenString(o.token, false).length; // offsets in the text, also with token ids
    }
    return {
      tokens,
      token_logprobs: outs.map((o) => o.logprob),
      top_logprobs: outs.map((o) => {
        const d: Record<string, number> = {};
        for (const [t, lp] of o.top ?? []) d[tokStr(t)] = lp;
        d[tokStr(o.token)] = o.logprob;
        return d;
      }),
      text_offset: offsets,
    };
  };
  const usageOf = (choices: ChoiceState[]): Record<string, number> => usage(promptTokens(promptIds), choices, info);
  const offsets = new Array<number>(promptIds.length * c.n).fill(0);
  const stream: StreamEvents | null = !c.stream ? null : {
    onToken: (index, o) => {
      if (!o.text && c.logprobs === null && !o.finish) return null;
      const lp = c.logprobs === null ? null : lpObject([o], offsets[index]!);
      if (lp) offsets[index]! += ctx.tokenString(o.token, false).length;
      const choice: Record<string, unknown> = { index, text: o.text, logprobs: lp, finish_reason: o.finish, stop_reason: o.stopReason };
      if (c.returnTokenIds) choice.token_ids = [o.token];
      return { ...base, choices: [choice] };
    },
    onStart: () => [],
    onEnd: (choices) => (c.includeUsage ? [{ ...base, choices: [], usage: usageOf(choices) }] : []),
  };
  await respond(ctx, req, res, job, info, stream, (choices) => ({
    ...base,
    choices: choices.map((ch, index) => {
      const o: Record<string, unknown> = {
        index,
        text: ch.text,
        logprobs: c.logprobs === null ? null : lpObject(ch.tokens.map((token, j) => ({ token, logprob: ch.logprobs[j]!, top: ch.tops[j] ?? null })), 0),
        finish_reason: ch.finish,
        stop_reason: ch.stopReason,
      };
      if (c.returnTokenIds) o.token_ids = ch.tokens;
      return o;
    }),
    usage: usageOf(choices),
    ...(c.returnTokenIds ? { prompt_token_ids: promptIds.length === 1 ? promptIds[0] : promptIds } : {}),
  }));
}

export const completions: Endpoint<CompletionRequest> = { parse: parseCompletion, answer };
