// Hugging Face causal LMs over sppo's libtorch tensors.
export * from './config.js';
export * from './causal_lm.js';
export * from './rope.js';
export { Attention, GatedMlp, LlamaDecoderLayer, LlamaModel, LlamaForCausalLM } from './llama.js';
export { MistralForCausalLM } from './mistral.js';
export { Qwen2ForCausalLM } from './qwen2.js';
export { Qwen3ForCausalLM } from './qwen3.js';
export { SmolLM3ForCausalLM } from './smollm3.js';
export { Olmo2ForCausalLM } from './olmo2.js';
export { Phi3ForCausalLM } from './phi3.js';
export { Gemma2ForCausalLM } from './gemma2.js';
export { Gemma3ForCausalLM } from './gemma3.js';
export { GPT2LMHeadModel } from './gpt2.js';
export * from './registry.js';
export { DebertaV2Model, loadDebertaV2Model, parseDebertaV2Config, readDebertaV2Config, relativePositions, type DebertaV2Config, type DebertaInput } from './deberta_v2.js';
export { DebertaV2PairRM, loadPairRMModel, parsePairRMConfig, readPairRMConfig, PAIRRM_ARCHITECTURE, type PairRMConfig, type PairSequence } from './pairrm.js';
export * from './peft.js';
export { loadRewardModel, SequenceScorer, SEQUENCE_CLASSIFICATION_ARCHITECTURES, type LoadScorerOptions, type ScoreOptions } from './sequence_classification.js';
