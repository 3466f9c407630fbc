// A plain A/B judge for the SPPO loop: the judge reads the prompt and two responses and answers with one
// letter; P(A better) is the probability mass of "A" over that of "A" and "B" in the first token's top
// log-probs (tokens compared after trimming white space, so " A" counts as "A"), or, without log-probs, the
// letter it wrote (A -> 1, B -> 0).
import { firstTokenRequest, oneRequestTemplate, twoLabelVerdict, type JudgeRequest, type JudgeResponse, type PreferenceVerdict } from './template.js';

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
  return firstTokenRequest(PAIRWISE_SYSTEM, pairwiseUserPrompt(prompt, a, b), { temperature: 0, topLogprobs: 20 }, opts);
}

export function parsePairwise(r: JudgeResponse): PreferenceVerdict {
  return twoLabelVerdict(r, 'A', 'B', (raw) => /^\W*([AB])\b/.exec(raw.trim())?.[1] ?? null, (t) => t.trim());
}

/** The template of OpenAIJudge (template pairwise): q.a as Response A, q.b as Response B. */
export const pairwisePromptTemplate = oneRequestTemplate(PAIRWISE_TEMPLATE_ID, (q, o) => pairwiseRequest(q.prompt, q.a, q.b, o), parsePairwise);
