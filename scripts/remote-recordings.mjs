// Writes test/recordings/*.json: /v1/completions responses in the shapes vLLM and SGLang send, for the
// requests sppo's remote generation makes (token-id prompt, n = 1, logprobs 0, return_token_ids,
// return_tokens_as_token_ids), on the tiny Llama fixture's vocabulary (token ids from its tokenizer).
// Shapes written from the servers' protocol files (no server was run here):
//   vLLM  vllm/entrypoints/openai/completion/protocol.py (CompletionResponse, CompletionResponseChoice,
//         CompletionLogProbs) and engine/protocol.py (ErrorResponse) at commit 002032ee2b18e1f7bd924ec47b62504ba3866063
//   SGLang python/sglang/srt/entrypoints/openai/protocol.py (CompletionResponse, CompletionResponseChoice
//         with matched_stop, LogProbs, ErrorResponse) and serving_completions.py (_build_completion_response:
//         logprobs tokens are text, token_ids only with return_token_ids) at commit 004c82e07d876f6e4a0ad6e15325706b0f478f1a
// Usage: node scripts/remote-recordings.mjs [FIXTURES]   (after the build; FIXTURES: ../shared/fixtures/hf-tiny)
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
const root = fileURLToPath(new URL('..', import.meta.url));
const { Tokenizer } = await import(join(root, 'dist/src/text/tokenizer.js'));
const fixtures = resolve(process.argv[2] ?? join(root, '../shared/fixtures/hf-tiny'));
const tok = Tokenizer.fromFolder(join(fixtures, 'llama'));
const out = join(root, 'test/recordings');
const eos = tok.eosTokenId;
const prompt = tok.encode('<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n', { addSpecialTokens: false });
// Log-probs as a server reports them (made up here; the client passes them through).
const lps = (k) => Array.from({ length: k }, (_, i) => -Math.round((0.25 + ((i * 7919) % 13) * 0.37) * 1e6) / 1e6);
const usage = (completion) => ({ prompt_tokens: prompt.length, total_tokens: prompt.length + completion, completion_tokens: completion });
const write = (name, v) => writeFileSync(join(out, name), JSON.stringify(v, null, 2) + '\n');

// vLLM: ended on EOS (finish_reason "stop", stop_reason null); token_ids include the EOS, text does not.
{
  const ids = [...tok.encode(' the cat sat', { addSpecialTokens: false }), eos];
  const lp = lps(ids.length);
  write('vllm-completion.json', {
    id: 'cmpl-6b1e1c3f0d2a4c5e9f8a7b6c5d4e3f21', object: 'text_completion', created: 1764979200, model: 'policy', service_tier: null, system_fingerprint: null,
    choices: [{
      index: 0, text: tok.decode(ids, { skipSpecialTokens: true }),
      logprobs: { text_offset: [], token_logprobs: lp, tokens: ids.map((t) => `token_id:${t}`), top_logprobs: ids.map((t, i) => ({ [`token_id:${t}`]: lp[i] })) },
      finish_reason: 'stop', stop_reason: null, token_ids: ids, prompt_logprobs: null, prompt_token_ids: prompt, routed_experts: null,
    }],
    usage: { ...usage(ids.length), prompt_tokens_details: null }, kv_transfer_params: null, ec_transfer_params: null, metrics: null,
  });
}
// SGLang with return_token_ids: ended on the stop string "\n" (matched_stop "\n"); logprobs tokens are text.
{
  const ids = tok.encode(' a dog\n', { addSpecialTokens: false });
  const lp = lps(ids.length);
  write('sglang-completion.json', {
    id: '9f2c7a1e5b3d4c6e8a0b1c2d3e4f5a6b', object: 'text_completion', created: 1764979200, model: 'policy',
    choices: [{
      index: 0, text: ' a dog', logprobs: { text_offset: [], token_logprobs: lp, tokens: ids.map((t) => tok.decode([t])), top_logprobs: ids.map(() => null) },
      finish_reason: 'stop', matched_stop: '\n', token_ids: ids, prompt_token_ids: prompt,
    }],
    usage: { prompt_tokens: prompt.length, total_tokens: prompt.length + ids.length, completion_tokens: ids.length, prompt_tokens_details: null, reasoning_tokens: 0 },
    metadata: { weight_version: 'default' },
  });
}
// SGLang without token ids (a version before return_token_ids, or the field ignored): text tokens only;
// ended on EOS: matched_stop is the EOS id, the text has no EOS.
{
  const ids = tok.encode(' hello world', { addSpecialTokens: false });
  const lp = lps(ids.length + 1);
  write('sglang-text-only.json', {
    id: '1a2b3c4d5e6f47089a0b1c2d3e4f5061', object: 'text_completion', created: 1764979200, model: 'policy',
    choices: [{
      index: 0, text: ' hello world', logprobs: { text_offset: [], token_logprobs: lp, tokens: [...ids.map((t) => tok.decode([t])), ''], top_logprobs: lp.map(() => null) },
      finish_reason: 'stop', matched_stop: eos,
    }],
    usage: { prompt_tokens: prompt.length, total_tokens: prompt.length + ids.length + 1, completion_tokens: ids.length + 1, prompt_tokens_details: null, reasoning_tokens: 0 },
    metadata: { weight_version: 'default' },
  });
}
// SGLang's error body: ErrorResponse at the top level (not under "error").
write('sglang-error.json', { object: 'error', message: 'The input (4100 tokens) is longer than the model\'s context length (4096 tokens).', type: 'BadRequestError', param: null, code: 400 });
// vLLM's error body: ErrorResponse {"error": ErrorInfo}.
write('vllm-error.json', { error: { message: "This model's maximum context length is 4096 tokens. However, your request has 4100 input tokens.", type: 'BadRequestError', param: null, code: 400 } });
console.log(`wrote ${out}/{vllm-completion,sglang-completion,sglang-text-only,sglang-error,vllm-error}.json (prompt ${prompt.length} tokens, EOS ${eos})`);
