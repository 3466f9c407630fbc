// Preference judges for SPPO: P(a > b | prompt) from a user module, a reward model, a pairwise model, PairRM or an LLM over HTTP.
export * from './oracle.js';
export * from './judge.js';
export { loadModuleJudge } from './js_module_judge.js';
export { RewardModelJudge, type RewardModelJudgeOptions } from './reward_model.js';
export { PairwiseJudge, PAIRWISE_TEMPLATE, pairwiseText, savePairwiseHead, type PairwiseJudgeOptions } from './pairwise_head.js';
export { GeneralPreferenceJudge, PREFERENCE_HEAD_FILE, preferenceLogits, preferenceLogit, savePreferenceHead, loadPreferenceHead, type PreferenceHead } from './general_preference.js';
export { agreement, COMPACT_TEMPLATE, judgeAgreement, readComparisons, trainGeneralPreference, trainPairwiseJudge, type Agreement, type Comparison, type TrainJudgeOptions } from './train.js';
export { PairRMJudge, matrixFromLogits, PAIRRM_TOKENS, PAIRRM_SOURCE_MAX_LENGTH, PAIRRM_CANDIDATE_MAX_LENGTH, type PairRMJudgeOptions } from './pairrm.js';
export { PAIRRM_MODES, type PairRMMode } from './spec.js';
export { OpenAIJudge, JUDGE_TEMPLATES, firstServedModel, readChatCompletion, type CompletedResponse, type JudgeStats, type JudgeTemplateName, type OpenAIJudgeOptions, type TokenUsage } from './openai.js';
export { VerdictCache, VerdictCacheError, cacheKey } from './verdict_cache.js';
export * from './templates/template.js';
export * from './templates/alpaca_eval.js';
export * from './templates/arena_hard.js';
export * from './templates/mt_bench.js';
export * from './templates/pairwise_prompt.js';
export * from './templates/registry.js';
