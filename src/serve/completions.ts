// POST /v1/completions: prompts as text or token ids (or lists of either), answered in OpenAI's
// text_completion shapes, streamed or not; log-probs in the legacy shape (tokens, token_logprobs,
// top_logprobs, text_offset). With echo, each choice's text and log-probs start with its prompt's (the
// prompt's first token has log-prob null, as vLLM and OpenAI), and max_tokens 0 returns the prompt only:
// how lm-evaluation-harness scores text. prompt_logprobs (vLLM's) adds each choice's prompt log-probs by
// token id.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseCompletion, type CompletionRequest } from './protocol.js';
import { promptTokens, respond, topLogprobsDict, usage, vllmPromptLogprobs, type ChoiceState, type Endpoint, type EndpointContext, type RequestInfo, type StreamEvents } from './endpoint.js';
import type { PromptLogprobs } from './prompt_logprobs.js';

async function answer(ctx: EndpointContext, req: IncomingMessage, res: ServerResponse, c: CompletionRequest, info: RequestInfo): Promise<void> {
  // Text with the tokenizer's special tokens (as vLLM), unless add_special_tokens: false.
  const promptIds = await ctx.promptIds(c, c.prompts, c.addSpecialTokens ?? true, 'prompt');
  info.prompt = c.prompts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('\n');
  const job = ctx.job(c, promptIds, 16, c.logprobs ?? 0);
  const id = `cmpl-${randomUUID().replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: 'text_completion', created, model: ctx.modelName };
  const tokStr = (t: number): string => ctx.tokenString(t, c.tokensAsIds);
  type Out = { token: number; logprob: number | null; top: [number, number][] | null };
  const lpObject = (outs: Out[], offset0: number): Record<string, unknown> => {
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
      top_logprobs: outs.map((o) => (o.logprob === null ? null : topLogprobsDict(o.token, o.logprob, o.top, tokStr))),
      text_offset: offsets,
    };
  };
  // The prompts' own log-probs (echo with logprobs, prompt_logprobs), one forward pass per prompt.
  const needPrompt = (c.echo && c.logprobs !== null) || c.promptLogprobs !== null;
  const promptLps: PromptLogprobs[] = needPrompt ? promptIds.map((ids) => ctx.promptLogprobs(ids, Math.max(c.echo ? (c.logprobs ?? 0) : 0, c.promptLogprobs ?? 0))) : [];
  const promptText = (p: number): string => {
    const src = c.prompts[p]!;
    return typeof src === 'string' ? src : ctx.tokenizer.decode(src, { skipSpecialTokens: c.skipSpecialTokens });
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
  const whole = (choices: ChoiceState[]): Record<string, unknown> => ({
    ...base,
    choices: choices.map((ch, index) => {
      const p = Math.floor(index / c.n);
      const gen: Out[] = ch.tokens.map((token, j) => ({ token, logprob: ch.logprobs[j]!, top: ch.tops[j] ?? null }));
      let logprobs: Record<string, unknown> | null = null;
      let text = ch.text;
      if (c.echo) {
        const pt = promptText(p);
        text = pt + ch.text;
        if (c.logprobs !== null) {
          const pl = promptLps[p]!;
          const k = c.logprobs;
          const echoed: Out[] = promptIds[p]!.map((token, t) => ({ token, logprob: pl.logprobs[t]!, top: pl.tops[t]?.slice(0, k) ?? null }));
          logprobs = lpObject([...echoed, ...gen], 0);
        }
      } else if (c.logprobs !== null) logprobs = lpObject(gen, 0);
      const o: Record<string, unknown> = { index, text, logprobs, finish_reason: ch.finish, stop_reason: ch.stopReason };
      if (c.returnTokenIds) o.token_ids = ch.tokens;
      if (c.promptLogprobs !== null) o.prompt_logprobs = vllmPromptLogprobs(promptIds[p]!, { ...promptLps[p]!, tops: promptLps[p]!.tops.map((t) => t?.slice(0, c.promptLogprobs!) ?? null) }, (t) => ctx.tokenString(t, false));
      if (c.returnTokenIds || c.promptLogprobs !== null) o.prompt_token_ids = promptIds[p];
      return o;
    }),
    usage: usageOf(choices),
    ...(c.returnTokenIds ? { prompt_token_ids: promptIds.length === 1 ? promptIds[0] : promptIds } : {}),
  });
  if (job.params.maxTokens === 0) {
    // max_tokens 0 (echo only): the prompts, nothing generated.
    const choices: ChoiceState[] = Array.from({ length: promptIds.length * c.n }, () => ({ tokens: [], logprobs: [], tops: [], text: '', finish: 'length', stopReason: null }));
    ctx.sendJson(res, 200, whole(choices));
    return;
  }
  await respond(ctx, req, res, job, info, stream, whole);
}

export const completions: Endpoint<CompletionRequest> = { parse: parseCompletion, answer };
