// AlpacaEval 2.0's judge: the `weighted_alpaca_eval_gpt4_turbo` annotator (tatsu-lab/alpaca_eval,
// evaluators_configs/weighted_alpaca_eval_gpt4_turbo: the prompt alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt,
// max_tokens 1, temperature 1, logprobs with top_logprobs 5, and the `logprob_parser` with numerator token "m"
// and denominator tokens "m", "M", not binarized). The judge names the better of two outputs by a one-token
// identifier, "m" for output_1 and "M" for output_2; the verdict is
//   P(output_1 better) = exp(lp(m)) / (exp(lp(m)) + exp(lp(M)))
// over the first token's top log-probs (a token missing from them counts as probability 0; both missing: no
// log-prob verdict). AlpacaEval stores preference = 2 - P(output_1 better), in [1, 2].
// Without log-probs (a server or proxy that drops them), the answer text itself is read: "m" -> 1, "M" -> 0;
// the verdict then says method 'text'.
import { firstTokenRequest, oneRequestTemplate, twoLabelVerdict, type JudgeRequest, type JudgeResponse, type PreferenceVerdict } from './template.js';

export const ALPACA_EVAL_TEMPLATE_ID = 'alpaca_eval/weighted_alpaca_eval_gpt4_turbo';

export const ALPACA_EVAL_SYSTEM =
  'You are a highly efficient assistant, who evaluates and selects the best large language model (LLMs) based on the quality of their responses to a given instruction. This process will be used to create a leaderboard reflecting the most accurate and human-preferred answers.';

export function alpacaEvalUserPrompt(instruction: string, output1: string, output2: string): string {
  return `I require a leaderboard for various large language models. I'll provide you with prompts given to these models and their corresponding outputs. Your task is to assess these responses, and select the model that produces the best output from a human perspective.

## Instruction

{
    "instruction": """${instruction}""",
}

## Model Outputs

Here are the unordered outputs from the models. Each output is associated with a specific model, identified by a unique model identifier.

{
    {
        "model_identifier": "m",
        "output": """${output1}"""
    },
    {
        "model_identifier": "M",
        "output": """${output2}"""
    }
}

## Task

Evaluate the models based on the quality and relevance of their outputs, and select the model that generated the best output. Answer by providing the model identifier of the best model. We will use your output as the name of the best model, so make sure your output only contains one of the following model identifiers and nothing else (no quotes, no spaces, no new lines, ...): m or M.

## Best Model Identifier`;
}

export interface AlpacaEvalRequestOptions {
  /** Default 5 (AlpacaEval's). */
  topLogprobs?: number;
  /** Default 1 (AlpacaEval's). */
  maxTokens?: number;
}

/** The request comparing output_1 (shown as "m") with output_2 ("M"). */
export function alpacaEvalRequest(instruction: string, output1: string, output2: string, opts: AlpacaEvalRequestOptions = {}): JudgeRequest {
  return firstTokenRequest(ALPACA_EVAL_SYSTEM, alpacaEvalUserPrompt(instruction, output1, output2), { temperature: 1, topLogprobs: 5 }, opts);
}

/** P(output_1 better) from the answer: the log-probs of "m" and "M" when there are any, else the text. */
export function parseAlpacaEval(r: JudgeResponse): PreferenceVerdict {
  return twoLabelVerdict(r, 'm', 'M', (raw) => raw.trim());
}

/** The template of OpenAIJudge (template alpaca_eval): q.a shown as "m", q.b as "M". */
export const alpacaEvalTemplate = oneRequestTemplate(ALPACA_EVAL_TEMPLATE_ID, (q, o) => alpacaEvalRequest(q.prompt, q.a, q.b, o), parseAlpacaEval);
