// Supervised fine-tuning (`sppo sft`, `sft(opts)`): next-token cross-entropy on the response tokens of
// (prompt, response) examples, prompt tokens and padding masked out. The loss of a batch is the mean over
// its response tokens (as TRL's SFTTrainer with completion-only loss); with gradient accumulation the
// gradient of a step is the mean over the step's response tokens. AdamW (or RMSprop), warmup + linear /
// cosine / constant schedule, gradient clipping, epochs over the examples reshuffled each epoch (seeded),
// an optional held-out split with its loss at the end of each epoch. A NaN or infinite loss stops with
// TrainingDivergedError.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import type { Tokenizer } from '../text/tokenizer.js';
import { assistantTurnSequences, conversationIds, encodePrompt, renderPrompt, responseEndId, responseIdsAfter, type ChatMessage, type ChatTemplate } from '../text/chat_template.js';
import { readRecords } from '../util/records.js';
import { messageList } from './prompts.js';
import { dirname, resolve } from 'node:path';
import { AdamW, clipGradNorm, LRScheduler, noGrad, RMSprop, tidy, type Optimizer, type ScheduleKind } from '../torch/index.js';
import type { CausalLMBase } from '../models/causal_lm.js';
import { loadModel } from '../models/registry.js';
import { positionLimit, readConfig } from '../models/config.js';
import { packSequences, responseLogprobs } from './logprobs.js';
import { createRng, epochSteps, permutation } from '../util/rng.js';
import { defaultPlacement, TrainingDivergedError } from './trainer.js';

export interface SftExample {
  promptIds: number[];
  /** The response's token ids (EOS included when the model should learn to stop). */
  responseIds: number[];
  /**
   * Which response tokens are trained (1) and which are context (0): a multi-turn conversation's response runs from
   * its first assistant turn to the end, with the user turns between in it as context. Default: all trained.
   */
  responseMask?: number[];
}

/** The tokens an example trains. */
export function trainedTokens(e: SftExample): number {
  return e.responseMask ? e.responseMask.reduce((a, b) => a + b, 0) : e.responseIds.length;
}

export interface SftStepMetrics {
  step: number;
  /** Epochs done, fractional as transformers logs it (step / steps per epoch). */
  epoch: number;
  /** Mean cross-entropy per response token of the step. */
  loss: number;
  /** Gradient norm before clipping. */
  grad_norm: number;
  lr: number;
  tokens_per_s: number;
  /** Held-out loss per response token, at the last step of each epoch. */
  eval_loss?: number;
}

export interface SftOptions {
  /** The model to train (updated in place) or its folder. */
  model: CausalLMBase | string;
  examples: SftExample[];
  lr: number;
  epochs: number;
  /** Examples per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  /** Default 'adamw'. */
  optimizer?: 'adamw' | 'rmsprop';
  /** Default 0. */
  weightDecay?: number;
  /** Default 0.05. */
  warmupRatio?: number;
  /** Default 'cosine'. */
  schedule?: ScheduleKind;
  /** Default 1 (0: off). */
  maxGradNorm?: number;
  /** Tokens kept per sequence: the prompt keeps its last tokens, then the response is cut (default 1024). */
  maxLength?: number;
  seed: number;
  /** Fraction of the examples held out for eval_loss (default 0). */
  evalFraction?: number;
  dtype?: 'float32' | 'bfloat16';
  device?: string;
  /** JSONL, one line of metrics per optimizer step (the file is started afresh). */
  metricsPath?: string;
  onStep?: (m: SftStepMetrics) => void;
}

export interface SftResult {
  model: CausalLMBase;
  metrics: SftStepMetrics[];
  evalLossBefore?: number;
  evalLoss?: number;
  trainSize: number;
  evalSize: number;
  /** Optimizer steps done. */
  steps: number;
}

function fail(msg: string): never {
  throw new RangeError(`sft: ${msg}`);
}


/** Cuts an example to maxLength tokens: the prompt keeps its last tokens (at least one), then the response is cut from the right. */
export function truncateExample(e: SftExample, maxLength: number): SftExample {
  if (e.promptIds.length + e.responseIds.length <= maxLength) return e;
  const response = e.responseIds.slice(0, Math.max(1, maxLength - 1));
  const keepPrompt = Math.max(1, maxLength - response.length);
  const cut: SftExample = { promptIds: e.promptIds.slice(e.promptIds.length - keepPrompt), responseIds: response };
  if (e.responseMask) cut.responseMask = e.responseMask.slice(0, response.length);
  return cut;
}

/** Mean response-token cross-entropy of examples under a model (no gradients). */
export function sftLoss(model: CausalLMBase, examples: readonly SftExample[], batchSize = 16): number {
  const pad = model.config.padTokenId ?? model.config.eosTokenIds[0] ?? 0;
  let nll = 0;
  let tokens = 0;
  for (let s = 0; s < examples.length; s += batchSize) {
    const part = examples.slice(s, s + batchSize);
    nll += tidy(() => noGrad(() => {
      const packed = packSequences(part, pad, model.device);
      return -responseLogprobs(model, packed).sum().item();
    }));
    tokens += part.reduce((a, e) => a + trainedTokens(e), 0);
  }
  return nll / Math.max(1, tokens);
}

export async function sft(opts: SftOptions): Promise<SftResult> {
  if (opts.examples.length === 0) fail('no examples');
  if (!(opts.lr >= 0 && Number.isFinite(opts.lr))) fail(`lr must be a finite number >= 0, got ${opts.lr}`);
  for (const k of ['epochs', 'batchSize'] as const) if (!Number.isInteger(opts[k]) || opts[k] < 1) fail(`${k} must be an integer >= 1, got ${opts[k]}`);
  const gradAccum = opts.gradAccum ?? 1;
  if (!Number.isInteger(gradAccum) || gradAccum < 1) fail(`gradAccum must be an integer >= 1, got ${gradAccum}`);
  const maxLength = opts.maxLength ?? 1024;
  if (!Number.isInteger(maxLength) || maxLength < 2) fail(`maxLength must be an integer >= 2, got ${maxLength}`);
  const evalFraction = opts.evalFraction ?? 0;
  if (!(evalFraction >= 0 && evalFraction < 1)) fail(`evalFraction must be in [0, 1), got ${evalFraction}`);
  opts.examples.forEach((e, i) => {
    if (e.promptIds.length === 0) fail(`example ${i + 1}: empty prompt`);
    if (e.responseIds.length === 0) fail(`example ${i + 1}: empty response`);
    if (e.responseMask && (e.responseMask.length !== e.responseIds.length || e.responseMask[0] !== 1)) fail(`example ${i + 1}: responseMask must be as long as the response and start with a trained token`);
  });

  const all = opts.examples.map((e) => truncateExample(e, maxLength));
  const config = typeof opts.model === 'string' ? readConfig(opts.model) : opts.model.config;
  all.forEach((e, i) => {
    const over = positionLimit(config, e.promptIds.length + e.responseIds.length);
    if (over?.learned) fail(`example ${i + 1}: ${over.message}: set maxLength (sppo sft --max-length) to at most ${config.maxPositions}`);
  });
  const place = defaultPlacement(opts.dtype, opts.device);
  const model = typeof opts.model === 'string' ? loadModel(opts.model, place) : opts.model;
  const pad = model.config.padTokenId ?? model.config.eosTokenIds[0] ?? 0;
  const device = model.device;

  const order = permutation(all.length, createRng(opts.seed, 0x5f7));
  const nEval = evalFraction > 0 ? Math.min(all.length - 1, Math.max(1, Math.round(all.length * evalFraction))) : 0;
  const evalSet = order.slice(0, nEval).sort((a, b) => a - b).map((i) => all[i]!);
  const trainSet = order.slice(nEval).sort((a, b) => a - b).map((i) => all[i]!);

  const group = opts.batchSize * gradAccum;
  const stepsPerEpoch = Math.ceil(trainSet.length / group);
  const totalSteps = stepsPerEpoch * opts.epochs;
  const params = model.parameters();
  model.train(true);
  model.requiresGrad_(true);
  // Disposed (native state freed) when the function returns or throws.
  using optim: Optimizer = (opts.optimizer ?? 'adamw') === 'adamw'
    ? AdamW(params, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0, betas: [0.9, 0.999], eps: 1e-8 })
    : RMSprop(params, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0, alpha: 0.99, eps: 1e-8 });
  const sched = new LRScheduler(optim, { kind: opts.schedule ?? 'cosine', totalSteps, warmupRatio: opts.warmupRatio ?? 0.05 });
  optim.zeroGrad();
  if (opts.metricsPath) {
    mkdirSync(dirname(resolve(opts.metricsPath)), { recursive: true });
    writeFileSync(opts.metricsPath, '');
  }
  const maxGradNorm = opts.maxGradNorm ?? 1;
  const metrics: SftStepMetrics[] = [];
  const evalLossBefore = evalSet.length ? sftLoss(model, evalSet, opts.batchSize) : undefined;
  let evalLoss = evalLossBefore;
  let step = 0;
  try {
    for (const { ids, lastOfEpoch } of epochSteps(trainSet.length, group, opts.epochs, opts.seed)) {
      const t0 = performance.now();
      const stepTokens = ids.reduce((a, i) => a + trainedTokens(trainSet[i]!), 0);
      let nll = 0;
      let seen = 0;
      for (let m = 0; m < ids.length; m += opts.batchSize) {
        const batch = ids.slice(m, m + opts.batchSize).map((i) => trainSet[i]!);
        const r = tidy(() => {
          const packed = packSequences(batch, pad, device);
          const sum = responseLogprobs(model, packed).sum().neg();
          const v = sum.item();
          if (Number.isFinite(v)) sum.div(stepTokens).backward();
          return { v, tokens: packed.tokens };
        });
        if (!Number.isFinite(r.v)) throw new TrainingDivergedError(`sft: training diverged at step ${step + 1}: the loss is ${r.v}`, step + 1);
        nll += r.v;
        seen += r.tokens;
      }
      step++;
      const gradNorm = clipGradNorm(params, maxGradNorm > 0 ? maxGradNorm : Infinity);
      if (!Number.isFinite(gradNorm)) throw new TrainingDivergedError(`sft: training diverged at step ${step}: the gradient norm is ${gradNorm}`, step);
      const lr = sched.lr;
      optim.step();
      sched.step();
      optim.zeroGrad();
      const m: SftStepMetrics = { step, epoch: step / stepsPerEpoch, loss: nll / stepTokens, grad_norm: gradNorm, lr, tokens_per_s: seen / Math.max(1e-9, (performance.now() - t0) / 1000) };
      if (lastOfEpoch && evalSet.length) {
        model.train(false);
        m.eval_loss = evalLoss = sftLoss(model, evalSet, opts.batchSize);
        model.train(true);
      }
      metrics.push(m);
      if (opts.metricsPath) appendFileSync(opts.metricsPath, JSON.stringify(m) + '\n');
      opts.onStep?.(m);
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    optim.zeroGrad();
    model.requiresGrad_(false);
    model.eval();
  }
  return { model, metrics, evalLossBefore, evalLoss, trainSize: trainSet.length, evalSize: evalSet.length, steps: step };
}

export interface SftLine {
  prompt: string | ChatMessage[];
  /** The response text (sppo's "response", TRL's standard "completion"), or TRL's conversational completion (assistant messages). */
  response: string | ChatMessage[];
  /** Where the example is (file:line, or file: row N), for errors. */
  where?: string;
  /** A "messages" record's whole conversation (ending with the response as an assistant turn): tokenized whole, in context. */
  conversation?: ChatMessage[];
}

/**
 * Reads SFT examples from JSONL, a JSON array or Parquet; a malformed record is an error naming file:line (or row).
 * Forms: {"prompt", "response"} (TRL's standard prompt-completion, "completion", too); {"messages", "response"?}
 * (without "response", a final assistant turn is the response); TRL's conversational prompt-completion
 * {"prompt": [messages], "completion": [assistant messages]}.
 */
export async function readSftData(path: string): Promise<SftLine[]> {
  const out: SftLine[] = [];
  for (const { value: v, where } of await readRecords(path)) {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: expected a JSON object with "prompt" or "messages", and "response"`);
    const o = v as Record<string, unknown>;
    if (o.response !== undefined && o.completion !== undefined) throw new Error(`${where}: give "response" or "completion", not both`);
    let response: unknown = o.response ?? o.completion;
    const field = o.response !== undefined ? 'response' : 'completion';
    let prompt: string | ChatMessage[];
    let conversation: ChatMessage[] | undefined;
    if (typeof o.prompt === 'string') prompt = o.prompt;
    else if (Array.isArray(o.prompt)) {
      prompt = messageList(o.prompt, where, 'prompt');
      if (prompt.length === 0) throw new Error(`${where}: "prompt" has no messages`);
      if (Array.isArray(response)) {
        response = messageList(response, where, field);
        if ((response as ChatMessage[]).length === 0) throw new Error(`${where}: "${field}" has no messages`);
      }
    } else if (Array.isArray(o.messages)) {
      const list = messageList(o.messages, where, 'messages');
      if (response === undefined && list.length > 1 && list.at(-1)!.role === 'assistant') {
        response = list.at(-1)!.content;
        prompt = list.slice(0, -1);
      } else prompt = list;
      if (prompt.length === 0) throw new Error(`${where}: "messages" is empty`);
      if (typeof response === 'string') conversation = [...prompt, { role: 'assistant', content: response }];
    } else if (typeof o.text === 'string') {
      throw new Error(`${where}: "text" (language-modelling data) is not read: sppo sft trains a response after a prompt; give "prompt" and "response" (or "completion"), or "messages"`);
    } else throw new Error(`${where}: expected "prompt" (a string or a list of messages) or "messages" (a list)`);
    if (Array.isArray(response) && typeof prompt === 'string') throw new Error(`${where}: a conversational "${field}" (a list of messages) needs a conversational "prompt"`);
    if (!Array.isArray(response)) {
      if (typeof response !== 'string') throw new Error(`${where}: "response" (or "completion") must be a string${Array.isArray(o.prompt) ? ' or a list of messages' : ''}`);
      if (response === '') throw new Error(`${where}: "${field}" is empty`);
    }
    out.push({ prompt, response: response as string | ChatMessage[], where, ...(conversation ? { conversation } : {}) });
  }
  if (out.length === 0) throw new Error(`${path}: no examples`);
  return out;
}

/**
 * Tokenizes examples: the rendered prompt (special tokens by `encodePrompt`'s rule: plain text gets the tokenizer's
 * BOS, template output none) and the response as it follows the prompt (`responseIdsAfter`: the ids after the
 * prompt's when both are encoded whole, TRL's rule for text data), the end of a turn appended to the response: the chat
 * template's turn terminator (Gemma's `<end_of_turn>`, Llama-3's `<|eot_id|>`), or EOS without a template. A
 * conversational completion (TRL's format) is tokenized as TRL 1.13's SFTTrainer does (`conversationIds`: the ids
 * that rendering prompt + completion whole adds after the prompt's; the template ends the turn). A "messages"
 * conversation is rendered whole and tokenized in context (`assistantTurnSequences`; a response tokenized alone can
 * start with a token it never starts with in context, e.g. Gemma's word boundary): every assistant turn's tokens
 * through its terminator trained (`assistantTurns` 'all', the default), or the last turn's ('last'), the rest context;
 * where the template is not prefix-preserving (Qwen3's), one example per trained turn, each in the conversation up to
 * it as the template renders it then (`log` says how many records were split).
 */
export function tokenizeSft(tokenizer: Tokenizer, template: ChatTemplate | undefined, lines: SftLine[], o: { raw?: boolean; appendEos?: boolean; chatTemplateKwargs?: Record<string, unknown>; assistantTurns?: 'all' | 'last'; log?: (line: string) => void } = {}): SftExample[] {
  const raw = o.raw ?? false;
  const allTurns = (o.assistantTurns ?? 'all') === 'all';
  const kwargs = o.chatTemplateKwargs ?? {};
  const eos = responseEndId(tokenizer, raw ? undefined : template, kwargs);
  const appendEos = o.appendEos ?? true;
  if (appendEos && eos === undefined && lines.some((l) => typeof l.response === 'string')) throw new Error('the tokenizer has no EOS token: use --no-eos');
  const split: string[] = [];
  const out = lines.flatMap((l, i): SftExample | SftExample[] => {
    const where = l.where ?? `example ${i + 1}`;
    if (Array.isArray(l.response)) {
      if (!template || raw) throw new Error(`${where}: a conversational completion needs the model's chat template${raw ? ' (not --raw)' : ', and the folder has none'}`);
      const c = conversationIds(tokenizer, template, l.prompt as ChatMessage[], l.response, kwargs);
      if (c.completionIds.length === 0) throw new Error(`${where}: the completion is empty after tokenization`);
      return { promptIds: c.promptIds, responseIds: c.completionIds };
    }
    if (l.conversation && template && !raw) {
      let t: ReturnType<typeof assistantTurnSequences>;
      try {
        t = assistantTurnSequences(tokenizer, template, l.conversation, kwargs, eos, allTurns ? 'all' : 'last');
      } catch (e) {
        throw new Error(`${where}: ${(e as Error).message}`);
      }
      if (t.split) split.push(where);
      return t.sequences.map((seq) => {
        // --no-eos: the model is not trained to end its turns (the terminators stay, as context).
        if (!appendEos && eos !== undefined) seq.ids.forEach((id, j) => { if (id === eos) seq.trained[j] = 0; });
        const first = seq.trained.indexOf(1);
        if (first <= 0) throw new Error(`${where}: the assistant turns are empty after tokenization`);
        const ex: SftExample = { promptIds: seq.ids.slice(0, first), responseIds: seq.ids.slice(first), responseMask: seq.trained.slice(first) };
        // A template that leaves the final turn open: the end of the turn appended, as for a single response.
        const lastTrained = seq.trained.lastIndexOf(1);
        if (appendEos && seq.ids[lastTrained] !== eos) {
          ex.responseIds.splice(lastTrained + 1 - first, 0, eos!);
          ex.responseMask!.splice(lastTrained + 1 - first, 0, 1);
        }
        return ex;
      });
    }
    const rendered = renderPrompt(l.prompt, template, { ...kwargs, raw });
    const prompt = encodePrompt(tokenizer, rendered);
    const responseIds = responseIdsAfter(tokenizer, rendered, prompt, l.response);
    if (appendEos && responseIds.at(-1) !== eos) responseIds.push(eos!);
    if (prompt.length === 0) throw new Error(`${where}: the prompt is empty after tokenization`);
    return { promptIds: prompt, responseIds };
  });
  if (split.length) {
    o.log?.(`${split.length} conversation(s) (${split.slice(0, 3).join(', ')}${split.length > 3 ? ', ...' : ''}): the chat template renders earlier turns differently once later ones follow (not prefix-preserving: Qwen3's drops past reasoning), so each assistant turn trains in its own sequence, the conversation up to it as the template renders it then (${out.length} sequences from ${lines.length} records)`);
  }
  return out;
}
