// POST /v1/chat/completions: messages rendered with the model folder's chat template, answered in
// OpenAI's chat.completion shapes (chat.completion.chunk when streamed); log-probs in the chat shape
// (content: token, logprob, bytes, top_logprobs).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ChatTemplateError } from '../text/chat_template.js';
import { badRequest, parseChat, type ChatRequest } from './protocol.js';
import { respond, usage, vllmPromptLogprobs, type ChoiceState, type Endpoint, type EndpointContext, type RequestInfo, type StreamEvents } from './endpoint.js';

async function answer(ctx: EndpointContext, req: IncomingMessage, res: ServerResponse, c: ChatRequest, info: RequestInfo): Promise<void> {
  if (!ctx.template) throw badRequest('this model has no chat template: use /v1/completions', 'messages', 'no_chat_template');
  let text: string;
  try {
    text = ctx.template.render(c.messages, { ...c.chatTemplateKwargs, addGenerationPrompt: c.addGenerationPrompt, continueFinalMessage: c.continueFinalMessage });
  } catch (e) {
    if (e instanceof ChatTemplateError) throw badRequest(e.message, 'messages', 'chat_template_error');
    throw e;
  }
  info.prompt = text;
  if (text.length === 0) throw badRequest('the rendered conversation is empty', 'messages');
  // The rendered text holds its special tokens (add_special_tokens: false, as vLLM's default for chat).
  const [promptIds] = (await ctx.promptIds(c, [text], c.addSpecialTokens ?? false, 'messages')) as [number[]];
  const job = ctx.job(c, [promptIds], null, c.logprobs ? c.topLogprobs : 0);
  const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const base = { id, created, model: ctx.modelName };
  const entry = (t: number, lp: number): { token: string; logprob: number; bytes: number[] } => {
    const s = ctx.tokenString(t, c.tokensAsIds);
    return { token: s, logprob: lp, bytes: [...Buffer.from(s, 'utf8')] };
  };
  const content = (token: number, logprob: number, top: [number, number][] | null): Record<string, unknown> => ({
    ...entry(token, logprob),
    top_logprobs: (top ?? []).slice(0, c.topLogprobs).map(([t, lp]) => entry(t, lp)),
  });
  const usageOf = (choices: ChoiceState[]): Record<string, number> => usage(promptIds.length, choices, info);
  const chunk = { ...base, object: 'chat.completion.chunk' };
  const stream: StreamEvents | null = !c.stream ? null : {
    onStart: () => Array.from({ length: c.n }, (_, index) => ({ ...chunk, choices: [{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] })),
    onToken: (index, o) => {
      if (!o.text && !c.logprobs && !o.finish) return null;
      const choice: Record<string, unknown> = {
        index,
        delta: o.text || !o.finish ? { content: o.text } : {},
        logprobs: c.logprobs ? { content: [content(o.token, o.logprob, o.top)] } : null,
        finish_reason: o.finish,
        stop_reason: o.stopReason,
      };
      if (c.returnTokenIds) choice.token_ids = [o.token];
      return { ...chunk, choices: [choice] };
    },
    onEnd: (choices) => (c.includeUsage ? [{ ...chunk, choices: [], usage: usageOf(choices) }] : []),
  };
  await respond(ctx, req, res, job, info, stream, (choices) => ({
    ...base,
    object: 'chat.completion',
    choices: choices.map((ch, index) => {
      const o: Record<string, unknown> = {
        index,
        message: { role: 'assistant', content: ch.text },
        logprobs: c.logprobs ? { content: ch.tokens.map((t, j) => content(t, ch.logprobs[j]!, ch.tops[j] ?? null)) } : null,
        finish_reason: ch.finish,
        stop_reason: ch.stopReason,
      };
      if (c.returnTokenIds) o.token_ids = ch.tokens;
      return o;
    }),
    usage: usageOf(choices),
    ...(c.returnTokenIds || c.promptLogprobs !== null ? { prompt_token_ids: promptIds } : {}),
    // vLLM's prompt_logprobs (response level on chat completions).
    ...(c.promptLogprobs !== null ? { prompt_logprobs: vllmPromptLogprobs(promptIds, ctx.promptLogprobs(promptIds, c.promptLogprobs), (t) => ctx.tokenString(t, false)) } : {}),
  }));
}

export const chatCompletions: Endpoint<ChatRequest> = { parse: parseChat, answer };
