// POST /v1/chat/completions: messages rendered with the model folder's chat template, answered in
// OpenAI's chat.completion shapes (chat.completion.chunk when streamed); log-probs in the chat shape
// (content: token, logprob, bytes, top_logprobs).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ChatTemplateError } from '../text/chat_template.js';
import { badRequest, parseChat, type ChatRequest } from './protocol.js';
import { respond, usage, type ChoiceState, type Endpoint, type EndpointContext, type RequestInfo, type StreamEvents } from './endpoint.js';

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
  const promptIds = ctx.tokenizer.encode(text, { addSpecialTokens: false });
  if (promptIds.length === 0) throw badRequest('the rendered conversation is empty', 'messages');
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
    ...(c.returnTokenIds ? { prompt_token_ids: promptIds } : {}),
  }));
}

export const chatCompletions: Endpoint<ChatRequest> = { parse: parseChat, answer };
