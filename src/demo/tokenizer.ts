// The demo's tokenizer: character level, written as a Hugging Face folder (tokenizer.json,
// tokenizer_config.json, chat_template.jinja, generation_config.json) that @huggingface/tokenizers and
// transformers both load. A BPE model with no merges over printable ASCII and the newline (every character
// is one token), no normalizer, no pre-tokenizer, a Fuse decoder (tokens are concatenated, so decoding
// gives the text back exactly) and a post-processor that puts `<s>` first.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SPECIAL_TOKENS = ['<pad>', '<s>', '</s>', '<unk>', '<|user|>', '<|assistant|>'] as const;
export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
export const UNK_ID = 3;

/** The characters of the vocabulary after the special tokens: '\n' and printable ASCII (32..126). */
export const CHARACTERS: string[] = ['\n', ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))];

export const VOCAB_SIZE = SPECIAL_TOKENS.length + CHARACTERS.length;

/** One user turn, one assistant turn ended by </s>; no whitespace is added around the turns. */
export const CHAT_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}" +
  "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}{{ eos_token }}" +
  "{% else %}{{ raise_exception('only user and assistant turns are supported') }}{% endif %}{% endfor %}" +
  '{% if add_generation_prompt %}<|assistant|>{% endif %}';

export function tokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((t, i) => (vocab[t] = i));
  CHARACTERS.forEach((c, i) => (vocab[c] = SPECIAL_TOKENS.length + i));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [BOS_ID], tokens: ['<s>'] } },
    },
    decoder: { type: 'Fuse' },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [],
    },
  };
}

export function tokenizerConfig(): Record<string, unknown> {
  const decoder: Record<string, unknown> = {};
  SPECIAL_TOKENS.forEach((content, id) => (decoder[String(id)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }));
  return {
    added_tokens_decoder: decoder,
    bos_token: '<s>',
    eos_token: '</s>',
    pad_token: '<pad>',
    unk_token: '<unk>',
    additional_special_tokens: ['<|user|>', '<|assistant|>'],
    clean_up_tokenization_spaces: false,
    model_max_length: 256,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
}

/** Writes tokenizer.json, tokenizer_config.json, special_tokens_map.json, chat_template.jinja, generation_config.json. */
export function writeTokenizerFolder(dir: string, generation: Record<string, unknown> = {}): void {
  mkdirSync(dir, { recursive: true });
  const w = (name: string, v: unknown): void => writeFileSync(join(dir, name), typeof v === 'string' ? v : JSON.stringify(v, null, 2) + '\n');
  w('tokenizer.json', tokenizerJson());
  w('tokenizer_config.json', tokenizerConfig());
  w('special_tokens_map.json', { bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>', additional_special_tokens: ['<|user|>', '<|assistant|>'] });
  w('chat_template.jinja', CHAT_TEMPLATE);
  w('generation_config.json', { bos_token_id: BOS_ID, eos_token_id: EOS_ID, pad_token_id: PAD_ID, do_sample: true, temperature: 1.0, top_p: 1.0, max_new_tokens: 32, ...generation });
}

/**
 * config.json of a small Llama for this tokenizer (transformers 5 layout, float32): hidden `hidden`,
 * `layers` layers, `heads` heads, SiLU MLP of `intermediate`, tied embeddings.
 */
export function llamaConfig(o: { hidden: number; layers: number; heads: number; kvHeads?: number; intermediate: number; maxPositions?: number }): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: BOS_ID,
    eos_token_id: EOS_ID,
    pad_token_id: PAD_ID,
    head_dim: o.hidden / o.heads,
    hidden_act: 'silu',
    hidden_size: o.hidden,
    initializer_range: 0.02,
    intermediate_size: o.intermediate,
    max_position_embeddings: o.maxPositions ?? 256,
    mlp_bias: false,
    num_attention_heads: o.heads,
    num_hidden_layers: o.layers,
    num_key_value_heads: o.kvHeads ?? o.heads,
    rms_norm_eps: 1e-5,
    rope_parameters: { rope_theta: 10000.0, rope_type: 'default' },
    tie_word_embeddings: true,
    dtype: 'float32',
    use_cache: true,
    vocab_size: VOCAB_SIZE,
  };
}
