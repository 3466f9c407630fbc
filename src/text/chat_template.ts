// Chat templates of Hugging Face model folders, rendered with @huggingface/jinja (the Jinja subset that HF
// maintains for transformers.js chat templates) the way transformers' `apply_chat_template(tokenize=False)` does.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Template } from '@huggingface/jinja';
import { readJsonFile, specialTokensMap, type Tokenizer } from './tokenizer.js';

export interface ChatMessage {
  role: string;
  /** A string, or (multimodal templates) a list of content blocks such as `{type: 'text', text}`. */
  content: unknown;
  [key: string]: unknown;
}

export interface RenderOptions {
  /** Append the header of an assistant turn (transformers' `add_generation_prompt`). Default false. */
  addGenerationPrompt?: boolean;
  /** End the text right after the last message's content, leaving it open for continuation (transformers'
   * `continue_final_message`). Default false; exclusive with addGenerationPrompt. */
  continueFinalMessage?: boolean;
  /** Overrides of the special token strings (default: those of the folder's tokenizer_config.json). */
  bosToken?: string;
  eosToken?: string;
  unkToken?: string;
  padToken?: string;
  /** Tool (function) schemas and documents (transformers' `tools`, `documents`); none by default. */
  tools?: unknown[];
  documents?: unknown[];
  /** Other template variables (transformers' **kwargs), e.g. `enable_thinking`, `date_string`. */
  [variable: string]: unknown;
}

const NAMED_TOKENS = new Set(['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token']);

export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

export class ChatTemplate {
  readonly source: string;
  private readonly template: Template;

  /**
   * @param text the Jinja template
   * @param specialTokens special token strings passed to the template (`bos_token`, `eos_token`, ...), as
   *   `specialTokensMap(tokenizer_config)` or `Tokenizer.specialTokens`
   * @param source a description of where the template comes from, for error messages
   */
  constructor(readonly text: string, readonly specialTokens: Readonly<Record<string, string | string[]>> = {}, source = 'string') {
    this.source = source;
    try {
      this.template = new Template(text);
    } catch (err) {
      throw new ChatTemplateError(`${source}: cannot parse the chat template: ${(err as Error).message}`);
    }
  }

  /**
   * Finds the template of a model folder: chat_template.jinja, else tokenizer_config.json's `chat_template`
   * (a string, or a list of `{name, template}` of which the one named `name`, by default "default"), else
   * chat_template.json's `chat_template`. Returns undefined when the folder has none.
   */
  static findInFolder(dir: string, options: { name?: string } = {}): { text: string; source: string } | undefined {
    const folder = resolve(dir);
    const jinjaPath = join(folder, 'chat_template.jinja');
    const configPath = join(folder, 'tokenizer_config.json');
    const name = options.name ?? 'default';
    // A named template other than the default may live in transformers 5's additional_chat_templates/.
    if (options.name !== undefined && options.name !== 'default') {
      const extra = join(folder, 'additional_chat_templates', `${options.name}.jinja`);
      if (existsSync(extra)) return { text: readFileSync(extra, 'utf8'), source: extra };
    }
    if (existsSync(jinjaPath) && name === 'default') return { text: readFileSync(jinjaPath, 'utf8'), source: jinjaPath };
    const config = readJsonFile(configPath, true);
    const value = config?.chat_template;
    if (typeof value === 'string') return { text: value, source: `${configPath} (chat_template)` };
    if (Array.isArray(value)) {
      const names: string[] = [];
      for (const entry of value) {
        if (entry && typeof entry === 'object' && typeof entry.name === 'string' && typeof entry.template === 'string') {
          names.push(entry.name);
          if (entry.name === name) return { text: entry.template, source: `${configPath} (chat_template "${name}")` };
        }
      }
      throw new ChatTemplateError(`${configPath}: no chat template named "${name}" (it has: ${names.join(', ') || 'none'})`);
    }
    if (value !== undefined && value !== null) throw new ChatTemplateError(`${configPath}: chat_template must be a string or a list of {name, template}`);
    const jsonPath = join(folder, 'chat_template.json');
    const processor = readJsonFile(jsonPath, true);
    if (typeof processor?.chat_template === 'string') return { text: processor.chat_template, source: `${jsonPath} (chat_template)` };
    return undefined;
  }

  /** Whether a model folder has a chat template. */
  static hasTemplate(dir: string): boolean {
    return ChatTemplate.findInFolder(dir) !== undefined;
  }

  /**
   * Loads the chat template of a model folder (see `findInFolder`) with the special token strings of its
   * tokenizer_config.json (or those given, e.g. `Tokenizer.specialTokens`, which also fills them from the config ids).
   * Throws a ChatTemplateError naming the folder when it has no chat template.
   */
  static fromFolder(dir: string, options: { name?: string; specialTokens?: Readonly<Record<string, string | string[]>> } = {}): ChatTemplate {
    const found = ChatTemplate.findInFolder(dir, options);
    if (!found) {
      throw new ChatTemplateError(`${resolve(dir)}: the model folder has no chat template (no chat_template.jinja, and no ` +
        'chat_template in tokenizer_config.json). Base models usually have none: give the prompts as plain text, which is ' +
        'used as is, or add a chat_template.jinja to the folder.');
    }
    const specialTokens = options.specialTokens ?? specialTokensMap(readJsonFile(join(resolve(dir), 'tokenizer_config.json'), true) ?? {});
    return new ChatTemplate(found.text, specialTokens, found.source);
  }

  /** Renders a conversation as transformers' `apply_chat_template(messages, tokenize=False, ...)` does. */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    const { addGenerationPrompt = false, continueFinalMessage = false, bosToken, eosToken, unkToken, padToken, tools, documents, ...extra } = options;
    if (addGenerationPrompt && continueFinalMessage) {
      throw new ChatTemplateError('addGenerationPrompt and continueFinalMessage cannot both be set');
    }
    // transformers 5 passes `special_tokens_map`: the named special tokens only (not the additional ones).
    const variables: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(this.specialTokens)) if (NAMED_TOKENS.has(key)) variables[key] = value;
    if (bosToken !== undefined) variables.bos_token = bosToken;
    if (eosToken !== undefined) variables.eos_token = eosToken;
    if (unkToken !== undefined) variables.unk_token = unkToken;
    if (padToken !== undefined) variables.pad_token = padToken;
    Object.assign(variables, extra, {
      messages,
      tools: tools ?? null,
      documents: documents ?? null,
      add_generation_prompt: addGenerationPrompt,
    });
    // @huggingface/jinja defines the globals that transformers adds: raise_exception(message) (which throws an Error
    // with the message) and strftime_now(format); they cannot be redefined here.
    for (const name of ['raise_exception', 'strftime_now', 'range', 'true', 'false', 'none', 'True', 'False', 'None']) delete variables[name];
    let rendered: string;
    try {
      rendered = this.template.render(variables);
    } catch (err) {
      throw new ChatTemplateError(`${this.source}: cannot render the chat template: ${(err as Error).message}`);
    }
    if (continueFinalMessage) rendered = cutAfterFinalMessage(rendered, messages);
    return rendered;
  }
}

// transformers' continue_final_message: cut the text right after the content of the last message.
function cutAfterFinalMessage(rendered: string, messages: readonly ChatMessage[]): string {
  const last = messages[messages.length - 1];
  let final: unknown = last?.content;
  if (Array.isArray(final)) {
    const block = [...final].reverse().find((b) => b && typeof b === 'object' && typeof (b as { text?: unknown }).text === 'string');
    final = block ? (block as { text: string }).text : undefined;
  }
  if (typeof final !== 'string') throw new ChatTemplateError('continueFinalMessage: the last message has no text content');
  const stripped = final.trim();
  const at = rendered.lastIndexOf(stripped);
  if (stripped.length === 0 || at < 0) {
    throw new ChatTemplateError('continueFinalMessage: the content of the last message is not in the rendered text');
  }
  const lstripped = final.trimStart();
  if (rendered.slice(at, at + lstripped.length) === final) return rendered.slice(0, at + lstripped.length);
  return rendered.slice(0, at + stripped.length);
}

/** A prompt as given to the model: its text, and whether a chat template rendered it (then it holds its special tokens). */
export interface RenderedPrompt {
  text: string;
  templated: boolean;
}

/**
 * The text of a prompt for generation.
 * - Messages are rendered with the chat template and a generation prompt; without a template, an error.
 * - Plain text with a template is taken as one user message and rendered the same way, unless `raw` is set.
 * - Plain text without a template (a base model) is used as is: this is the fallback for model folders that
 *   have no chat template.
 * Other options (e.g. `enable_thinking`) are template variables, given to every rendering.
 */
export function renderPrompt(prompt: string | readonly ChatMessage[], template: ChatTemplate | undefined, options: RenderOptions & { raw?: boolean } = {}): RenderedPrompt {
  const { raw = false, ...renderOptions } = options;
  if (typeof prompt === 'string') {
    if (raw || !template) return { text: prompt, templated: false };
    return { text: template.render([{ role: 'user', content: prompt }], { addGenerationPrompt: true, ...renderOptions }), templated: true };
  }
  if (!template) throw new ChatTemplateError('a conversation needs a chat template, and none was given (give the prompt as plain text instead)');
  return { text: template.render(prompt, { addGenerationPrompt: !renderOptions.continueFinalMessage, ...renderOptions }), templated: true };
}

/** The text of a prompt for generation (see `renderPrompt`). */
export function promptText(prompt: string | readonly ChatMessage[], template: ChatTemplate | undefined, options: RenderOptions & { raw?: boolean } = {}): string {
  return renderPrompt(prompt, template, options).text;
}

/**
 * The one rule for special tokens, as transformers applies them: text that a chat template rendered already holds
 * its special tokens and is encoded without any (`apply_chat_template` tokenizes with `add_special_tokens=False`);
 * plain text (no template, `raw` prompts, base models) gets the tokenizer's own, as `tokenizer(text)` adds them
 * (`add_special_tokens=True`: Gemma's and Mistral's BOS, Llama-3.1's `<|begin_of_text|>`; none for Qwen).
 */
export function encodePrompt(tokenizer: Tokenizer, prompt: RenderedPrompt): number[] {
  return tokenizer.encode(prompt.text, { addSpecialTokens: !prompt.templated });
}

/** `renderPrompt` then `encodePrompt`: the ids of a prompt for generation. */
export function promptIds(tokenizer: Tokenizer, prompt: string | readonly ChatMessage[], template: ChatTemplate | undefined, options: RenderOptions & { raw?: boolean } = {}): number[] {
  return encodePrompt(tokenizer, renderPrompt(prompt, template, options));
}

/**
 * A response's ids as they follow a prompt (TRL 1.13's rule for text data: prompt + response encoded whole, the ids
 * after the prompt's): a response encoded alone can start with a token it never starts with in context (a
 * SentencePiece-style tokenizer's word boundary: Gemma's, Llama-2's, Mistral's). When the whole's ids do not start
 * with the prompt's (a token spanning the boundary), the response is encoded alone.
 */
export function responseIdsAfter(tokenizer: Tokenizer, prompt: RenderedPrompt, promptIds: readonly number[], response: string): number[] {
  const whole = encodePrompt(tokenizer, { text: prompt.text + response, templated: prompt.templated });
  if (whole.length > promptIds.length && promptIds.every((id, i) => whole[i] === id)) return whole.slice(promptIds.length);
  return tokenizer.encode(response, { addSpecialTokens: false });
}

/**
 * `responseIdsAfter` for a prompt known by its ids only (a remote server's text-only answer): the response encoded
 * after the text of the prompt's last k tokens, for the smallest k (up to 16) whose text encodes back to those very
 * tokens (decoding a whole prompt need not give its text back: Gemma's decoder puts a space after special tokens),
 * else alone.
 */
export function responseIdsAfterIds(tokenizer: Tokenizer, promptIds: readonly number[], response: string): number[] {
  for (let k = 1; k <= Math.min(16, promptIds.length); k++) {
    const tail = promptIds.slice(-k);
    const whole = tokenizer.encode(tokenizer.decode(tail) + response, { addSpecialTokens: false });
    if (whole.length > k && tail.every((id, i) => whole[i] === id)) return whole.slice(k);
  }
  return tokenizer.encode(response, { addSpecialTokens: false });
}

/**
 * A conversation's prompt and completion as TRL 1.13's trainers tokenize them (DPOTrainer's and SFTTrainer's
 * conversational rule): the prompt rendered with the generation prompt, prompt + completion rendered whole, both
 * encoded as rendered templates are (no special tokens added), and the completion's ids those that follow the
 * prompt's. `prefix` is false when the whole's ids do not start with the prompt's (a template that renders earlier
 * turns differently once an answer follows; TRL then warns and slices all the same).
 */
export function conversationIds(
  tokenizer: Tokenizer,
  template: ChatTemplate,
  prompt: readonly ChatMessage[],
  completion: readonly ChatMessage[],
  variables: Record<string, unknown> = {},
): { promptIds: number[]; completionIds: number[]; prefix: boolean } {
  const promptIds = tokenizer.encode(template.render(prompt, { ...variables, addGenerationPrompt: true }), { addSpecialTokens: false });
  const whole = tokenizer.encode(template.render([...prompt, ...completion], { ...variables }), { addSpecialTokens: false });
  const prefix = promptIds.every((id, i) => whole[i] === id);
  return { promptIds, completionIds: whole.slice(promptIds.length), prefix };
}

/** A chat template that renders earlier turns differently once later ones follow (oneSequence). */
export class NotPrefixPreservingError extends RangeError {
  override name = 'NotPrefixPreservingError';
}

/** One assistant turn's trained positions in `through` (the conversation rendered up to and with it): from `from` through its first `endId`. */
function markTurn(trained: number[], through: readonly number[], from: number, endId: number | undefined): void {
  let end = through.length;
  if (endId !== undefined) {
    const at = through.indexOf(endId, from);
    if (at >= 0) end = at + 1;
  }
  for (let j = from; j < end; j++) trained[j] = 1;
}

const startsWith = (a: readonly number[], b: readonly number[]): boolean => b.length <= a.length && b.every((id, i) => a[i] === id);

type ConversationEncoder = (m: readonly ChatMessage[], gen: boolean) => number[];

/** Messages rendered with the template (with or without the generation prompt) and encoded as rendered templates are. */
function conversationEncoder(tokenizer: Tokenizer, template: ChatTemplate, variables: Record<string, unknown>): ConversationEncoder {
  return (m, gen) => tokenizer.encode(template.render(m, { ...variables, addGenerationPrompt: gen }), { addSpecialTokens: false });
}

/** The indices of the assistant turns that train: every one, or the last. */
function trainedTurns(messages: readonly ChatMessage[], which: 'all' | 'last'): number[] {
  const turns = messages.flatMap((m, k) => (m.role === 'assistant' ? [k] : []));
  return which === 'last' ? turns.slice(-1) : turns;
}

/**
 * A conversation's ids and, for each, whether training predicts it: the tokens of each turn in `turns` (TRL's
 * conversational prompt-completion rule applied at each assistant turn k: the ids rendering messages[0..k] adds
 * after messages[0..k-1] rendered with the generation prompt), each cut after its first `endId` (the turn's
 * terminator: what the model emits before it stops; the template's scaffolding after it, e.g. ChatML's newline,
 * stays context). The ids are the whole conversation rendered (no generation prompt). Throws
 * NotPrefixPreservingError, naming the message, where the template is not prefix-preserving (it renders earlier turns
 * differently once later ones follow, e.g. Qwen3's, which drops past reasoning), so that the turns cannot be placed in
 * one sequence.
 */
function oneSequence(encode: ConversationEncoder, messages: readonly ChatMessage[], turns: readonly number[], endId: number | undefined): { ids: number[]; trained: number[] } {
  const ids = encode(messages, false);
  const trained = new Array<number>(ids.length).fill(0);
  for (const k of turns) {
    const before = encode(messages.slice(0, k), true);
    const through = k === messages.length - 1 ? ids : encode(messages.slice(0, k + 1), false);
    if (!startsWith(through, before) || !startsWith(ids, through)) {
      throw new NotPrefixPreservingError(`message ${k + 1} (assistant): the chat template renders the turns before it differently once later turns follow (it is not prefix-preserving), so its tokens cannot be placed in the conversation`);
    }
    markTurn(trained, through, before.length, endId);
  }
  return { ids, trained };
}

/**
 * The sequences that train a conversation's assistant turns: one, the whole conversation (oneSequence), where the template is
 * prefix-preserving for it; else one per trained turn k, the conversation rendered up to and with turn k (as the
 * template renders it when the model answers at k: Qwen3's drops the reasoning of earlier answers, and gives the
 * last its `<think>` block), turn k's tokens trained (TRL's prompt-completion rule at that turn). `split` says which.
 * Throws, naming the message, where even a turn's own rendering does not start with its prompt's.
 */
export function assistantTurnSequences(
  tokenizer: Tokenizer,
  template: ChatTemplate,
  messages: readonly ChatMessage[],
  variables: Record<string, unknown> = {},
  endId?: number,
  which: 'all' | 'last' = 'all',
): { sequences: { ids: number[]; trained: number[] }[]; split: boolean } {
  const encode = conversationEncoder(tokenizer, template, variables);
  const turns = trainedTurns(messages, which);
  try {
    return { sequences: [oneSequence(encode, messages, turns, endId)], split: false };
  } catch (e) {
    if (!(e instanceof NotPrefixPreservingError)) throw e;
  }
  const sequences: { ids: number[]; trained: number[] }[] = [];
  for (const k of turns) {
    const before = encode(messages.slice(0, k), true);
    const through = encode(messages.slice(0, k + 1), false);
    if (!startsWith(through, before)) {
      throw new RangeError(`message ${k + 1} (assistant): the chat template renders the conversation up to this answer so that it does not start with the conversation before it and the generation prompt, so the answer's tokens cannot be told apart`);
    }
    const trained = new Array<number>(through.length).fill(0);
    markTurn(trained, through, before.length, endId);
    sequences.push({ ids: through, trained });
  }
  return { sequences, split: true };
}

const PROBE_USER = 'Probe question 1729?';
const PROBE_ANSWER = 'Probe answer 4104.';

/**
 * The id of the token that ends an assistant turn in a chat template, derived from the template: a conversation
 * with a known assistant turn is rendered, and the first token after the answer's text is the terminator when it
 * is a special token (Llama-3's `<|eot_id|>`, Gemma's `<end_of_turn>`, Qwen's `<|im_end|>`, Mistral's `</s>`).
 * Undefined when the template does not render such a conversation, or the answer is followed by no special token.
 */
export function turnTerminatorId(tokenizer: Tokenizer, template: ChatTemplate, variables: Record<string, unknown> = {}): number | undefined {
  let text: string;
  try {
    text = template.render([{ role: 'user', content: PROBE_USER }, { role: 'assistant', content: PROBE_ANSWER }], { ...variables, addGenerationPrompt: false });
  } catch {
    return undefined;
  }
  const at = text.lastIndexOf(PROBE_ANSWER);
  if (at < 0) return undefined;
  const after = text.slice(at + PROBE_ANSWER.length).trimStart();
  if (after.length === 0) return undefined;
  const first = tokenizer.encode(after, { addSpecialTokens: false })[0];
  return first !== undefined && tokenizer.isSpecial(first) ? first : undefined;
}

/**
 * The token that ends a training response: the template's turn terminator (see `turnTerminatorId`) when there is a
 * template (not `raw`) and it has one, else the tokenizer's EOS (base models, and templates that end a turn with
 * no special token). Undefined when neither exists.
 */
export function responseEndId(tokenizer: Tokenizer, template: ChatTemplate | undefined, variables: Record<string, unknown> = {}): number | undefined {
  return (template ? turnTerminatorId(tokenizer, template, variables) : undefined) ?? tokenizer.eosTokenId;
}

/**
 * A warning (or undefined) when the stop set of a model folder (the tokenizer's eos and generation_config.json's
 * `eos_token_id`, else config.json's) lacks the template's turn terminator: generation would never stop at the end
 * of a turn (Llama-3-Instruct without its generation_config.json).
 */
export function stopSetWarning(tokenizer: Tokenizer, template: ChatTemplate | undefined, variables: Record<string, unknown> = {}): string | undefined {
  if (!template) return undefined;
  const end = turnTerminatorId(tokenizer, template, variables);
  if (end === undefined || tokenizer.eosTokenIds.has(end)) return undefined;
  const stops = [...tokenizer.eosTokenIds].map((id) => `${id} ${JSON.stringify(tokenizer.idToToken(id))}`).join(', ') || 'none';
  return `${tokenizer.dir}: the chat template ends a turn with ${JSON.stringify(tokenizer.idToToken(end))} (id ${end}), which is not ` +
    `among the ids that stop generation (${stops}: the tokenizer's eos_token and generation_config.json's eos_token_id, ` +
    `else config.json's). Generation will not stop at the end of a turn: add ${end} to eos_token_id in generation_config.json.`;
}

/** `responseEndId` for the chat template of the tokenizer's own folder (none with `raw`, or when it has none). */
export function folderResponseEndId(tokenizer: Tokenizer, options: { raw?: boolean; chatTemplateKwargs?: Record<string, unknown> } = {}): number | undefined {
  const template = !options.raw && ChatTemplate.hasTemplate(tokenizer.dir) ? ChatTemplate.fromFolder(tokenizer.dir, { specialTokens: tokenizer.specialTokens }) : undefined;
  return responseEndId(tokenizer, template, options.chatTemplateKwargs);
}
