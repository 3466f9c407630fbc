// A plain A/B judge for the SPPO loop: the judge reads the prompt and two responses and answers with one
// letter; P(A better) is the probability mass of "A" over that of "A" and "B" in the first token's top
// log-probs (tokens compared after trimming white space, so " A" counts as "A"), or, without log-probs, the
// letter it wrote (A -> 1, B -> 0).
import { twoLabelVerdict, type JudgeRequest, type JudgeResponse, type PreferenceVerdict } from './template.js';

export const PAIRWISE_TEMPLATE_ID = 'pairwise/v1';

export const PAIRWISE_SYSTEM =
  'You are an impartial judge of AI assistants. You compare two responses to the same user prompt and say which one is better: more helpful, correct, relevant and clear. The order of the responses must not influence you, nor their length.';

export function pairwiseUserPrompt(prompt: string, a: string, b: string): string {
  return `[User Prompt]
${prompt}

[Response A]
${a}

[Response B]
${b}

Which response is better? Answer with a single letter, A or B, and nothing else.`;
}

export function pairwiseRequest(prompt: string, a: string, b: string, opts: { topLogprobs?: number; maxTokens?: number } = {}): JudgeRequest {
  return {
    messages: [
      { role: 'system', content: PAIRWISE_SYSTEM },
      { role: 'user', content: pairwiseUserPrompt(prompt, a, b) },
    ],
    maxTokens: opts.maxTokens ?? 1,
    temperature: 0,
    logprobs: true,
    topLogprobs: opts.topLogprobs ?? 20,
  };
}

export function parsePairwise(r: JudgeResponse): PreferenceVerdict {
  return twoLabelVerdict(r, 'A', 'B', (raw) => /^\W*([AB])\b/.exec(raw.trim())?.[1] ?? null, (t) => t.trim());
}
