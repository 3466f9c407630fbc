// Tokenizer of a Hugging Face model folder: tokenizer.json through @huggingface/tokenizers (the pure-JS port of
// HF tokenizers, which reads tokenizer.json as is), special tokens from tokenizer_config.json, falling back to the
// token ids of generation_config.json and config.json.
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { jsonErrorMessage, readText } from '../util/files.js';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { copyTokenizerFiles } from '../models/transformers4.js';

export interface EncodeOptions {
  /** Add the special tokens of tokenizer.json's post-processor (e.g. a leading `<s>`). Default true, as in
   * transformers. Use false for text rendered by a chat template, which already holds its special tokens. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop the special tokens (added tokens flagged `special`) from the text. Default false, as in transformers. */
  skipSpecialTokens?: boolean;
}

type Json = Record<string, unknown>;

/** Reads and parses a JSON file; errors name the file. Returns undefined when `optional` and the file is absent. */
export function readJsonFile(path: string, optional: true): Json | undefined;
export function readJsonFile(path: string, optional?: false): Json;
export function readJsonFile(path: string, optional = false): Json | undefined {
  if (!existsSync(path)) {
    if (optional) return undefined;
    throw new Error(`${path}: file not found`);
  }
  const text = readText(path, Error);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: malformed JSON: ${jsonErrorMessage(text, err)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${path}: expected a JSON object`);
  }
  return value as Json;
}

/** A special token of tokenizer_config.json: a string, or an object `{content: ...}` (AddedToken), or null. */
export function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as Json).content === 'string') return (value as Json).content as string;
  return undefined;
}

/** The tokenizer.json model types @huggingface/tokenizers implements. */
const TOKENIZER_MODELS = ['BPE', 'WordPiece', 'Unigram'];

const NAMED_SPECIAL = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

/**
 * Special tokens that transformers 5's tokenizer classes set by default (their `__init__` arguments) when
 * tokenizer_config.json does not name them (a key set to null stays unset): e.g. Gemma's `<mask>`, which is then
 * special (skipped by `skip_special_tokens`). Applied only to tokens the vocabulary has.
 */
const CLASS_DEFAULTS: Record<string, Partial<Record<(typeof NAMED_SPECIAL)[number], string>>> = {
  GemmaTokenizer: { unk_token: '<unk>', bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', mask_token: '<mask>' },
  LlamaTokenizer: { unk_token: '<unk>', bos_token: '<s>', eos_token: '</s>' },
  Qwen2Tokenizer: { unk_token: '<|endoftext|>', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' },
};

/**
 * The special token strings of a tokenizer_config.json, as transformers' `special_tokens_map` (what
 * `apply_chat_template` passes to the template): `bos_token`, `eos_token`, `unk_token`, `pad_token`, ... when set,
 * and `additional_special_tokens` (a list; transformers 5 calls it `extra_special_tokens`, a list or a map).
 */
export function specialTokensMap(config: Json): Record<string, string | string[]> {
  const map: Record<string, string | string[]> = {};
  for (const key of NAMED_SPECIAL) {
    const s = tokenContent(config[key]);
    if (s !== undefined) map[key] = s;
  }
  const extra: string[] = [];
  for (const key of ['additional_special_tokens', 'extra_special_tokens']) {
    const v = config[key];
    const items = Array.isArray(v) ? v : v && typeof v === 'object' ? Object.values(v) : [];
    for (const item of items) {
      const s = tokenContent(item);
      if (s !== undefined && !extra.includes(s)) extra.push(s);
    }
  }
  if (extra.length > 0) map.additional_special_tokens = extra;
  return map;
}

function idList(value: unknown): number[] {
  if (typeof value === 'number' && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number' && Number.isInteger(v));
  return [];
}

/**
 * The pipeline transformers 5 runs for a tokenizer.json (tokenization_utils_tokenizers.py), where it differs from the
 * file, made explicit in the file before tokenizers.js reads it:
 * - a tokenizer class with its own `__init__` rebuilds the normalizer, pre-tokenizer and decoder in code, keeping
 *   the file's vocabulary, merges and post-processor. Of the classes of the models checked (test/text_real.test.ts),
 *   LlamaTokenizer (Mistral-7B, Llama-2) is the one whose rebuild differs from its tokenizer.json: no normalizer, a
 *   Metaspace pre-tokenizer that prepends `▁` ("always" when `legacy`, else "first"; "never" without
 *   `add_prefix_space`), so that " grabbed" is `▁grabbed`, not `▁▁grabbed`;
 * - `add_bos_token` / `add_eos_token` named in tokenizer_config.json (or no post-processor at all) replace the
 *   post-processor with one that adds exactly those (`update_post_processor`).
 */
function asTransformers5(tokenizerJson: Json, config: Json, map: Record<string, string | string[]>): void {
  const tokenizerClass = typeof config.tokenizer_class === 'string' ? config.tokenizer_class.replace(/Fast$/, '') : '';
  const model = tokenizerJson.model as Json;
  if (tokenizerClass === 'LlamaTokenizer' && model.type === 'BPE') {
    const addPrefixSpace = typeof config.add_prefix_space === 'boolean' ? config.add_prefix_space : true;
    const scheme = !addPrefixSpace ? 'never' : config.legacy === true ? 'always' : 'first';
    tokenizerJson.normalizer = null;
    tokenizerJson.pre_tokenizer = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: scheme, split: false };
    const decoders: Json[] = [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }];
    if (addPrefixSpace) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });
    tokenizerJson.decoder = { type: 'Sequence', decoders };
  }
  if ('add_bos_token' in config || 'add_eos_token' in config || !tokenizerJson.post_processor) {
    const idOf = (t: unknown): number | undefined => {
      if (typeof t !== 'string') return undefined;
      const added = (tokenizerJson.added_tokens as Json[]).find((a) => a.content === t);
      if (added) return added.id as number;
      const vocab = model.vocab;
      return vocab && typeof vocab === 'object' && !Array.isArray(vocab) ? (vocab as Record<string, number>)[t] : undefined;
    };
    const bos = config.add_bos_token === true && idOf(map.bos_token) !== undefined ? (map.bos_token as string) : undefined;
    const eos = config.add_eos_token === true && idOf(map.eos_token) !== undefined ? (map.eos_token as string) : undefined;
    const seq = (id: 'A' | 'B', typeId: number): Json[] => [
      ...(bos ? [{ SpecialToken: { id: bos, type_id: typeId } }] : []), { Sequence: { id, type_id: typeId } }, ...(eos ? [{ SpecialToken: { id: eos, type_id: typeId } }] : []),
    ];
    const special: Json = {};
    for (const t of [bos, eos]) if (t) special[t] = { id: t, ids: [idOf(t)], tokens: [t] };
    tokenizerJson.post_processor = { type: 'TemplateProcessing', single: seq('A', 0), pair: [...seq('A', 0), ...seq('B', 1)], special_tokens: special };
  }
}

/**
 * The BPE model of tokenizers.js made faster without changing a result (test/text_real.test.ts checks every id
 * against transformers): its merge ranks are looked up by pair in nested maps instead of by a JSON string of the pair
 * (the same rank: the last merge listed for a pair, as tokenizers.js's map keeps), and its word cache is a map cleared
 * when full instead of an LRU that reorders on every hit (a cache of pure results: any policy gives the same ids).
 */
function fasterBpe(model: unknown): void {
  if (!model || (typeof model !== 'object' && typeof model !== 'function')) return;
  type Node = { token: string; next: Node; bias: number; score: number };
  const m = model as { merges?: unknown; bpe_ranks?: unknown; add_node?: unknown; cache?: unknown; cache_capacity?: number };
  if (!Array.isArray(m.merges) || !(m.bpe_ranks instanceof Map) || typeof m.add_node !== 'function') return;
  const ranks = new Map<string, Map<string, number>>();
  m.merges.forEach((pair: unknown, i: number) => {
    if (!Array.isArray(pair)) return;
    let inner = ranks.get(pair[0] as string);
    if (!inner) ranks.set(pair[0] as string, (inner = new Map()));
    inner.set(pair[1] as string, i);
  });
  m.add_node = (queue: { push(n: Node): void }, node: Node): void => {
    const rank = ranks.get(node.token)?.get(node.next.token);
    if (rank !== undefined) {
      node.score = rank + node.bias;
      queue.push(node);
    }
  };
  m.bpe_ranks = undefined;
  const capacity = m.cache_capacity ?? 10000;
  const words = new Map<string, string[]>();
  m.cache = {
    get: (key: string): string[] | undefined => words.get(key),
    put: (key: string, value: string[]): void => {
      if (words.size >= capacity) words.clear();
      words.set(key, value);
    },
    clear: (): void => words.clear(),
  };
}

/** transformers' `clean_up_tokenization` (tokenization_utils_base.py): spaces before punctuation and English
 * contractions removed. */
export function cleanUpTokenization(text: string): string {
  return text.replaceAll(' .', '.').replaceAll(' ?', '?').replaceAll(' !', '!').replaceAll(' ,', ',').replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(" 's", "'s").replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}

/**
 * The ByteFallback decoders of a tokenizers.js decoder tree made to decode as the Rust library's: a run of byte
 * tokens (`<0xE2>`...) that is not valid UTF-8 becomes one U+FFFD per byte (tokenizers.js's TextDecoder gives one
 * per invalid sequence).
 */
function rustByteFallback(decoder: unknown): void {
  if (!decoder || (typeof decoder !== 'object' && typeof decoder !== 'function')) return; // tokenizers.js decoders are callables
  const d = decoder as { config?: { type?: string }; decoders?: unknown[]; text_decoder?: unknown };
  if (Array.isArray(d.decoders)) for (const inner of d.decoders) rustByteFallback(inner);
  if (d.config?.type === 'ByteFallback') {
    const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    d.text_decoder = {
      decode(bytes: Uint8Array): string {
        try {
          return strict.decode(bytes);
        } catch {
          return '\uFFFD'.repeat(bytes.length);
        }
      },
    };
  }
}


export class Tokenizer {
  /** The folder it was loaded from. */
  readonly dir: string;
  /** tokenizer_config.json ({} when the folder has none). */
  readonly config: Readonly<Json>;
  /** Special token strings of tokenizer_config.json (see `specialTokensMap`), as transformers 5 has them: a token
   * that tokenizer_config.json leaves unset (Qwen's `bos_token: null`) stays unset here, even when config.json has
   * an id for it (`bosTokenId` has that id), so that templates render it as transformers does (empty). */
  readonly specialTokens: Readonly<Record<string, string | string[]>>;
  readonly bosTokenId: number | undefined;
  /** The tokenizer's end-of-sequence token (the first of generation_config.json's when tokenizer_config.json has none). */
  readonly eosTokenId: number | undefined;
  /** Padding token; falls back to `eosTokenId` when the model has none. */
  readonly padTokenId: number | undefined;
  readonly unkTokenId: number | undefined;
  /** Every id that ends a generation: the tokenizer's eos and generation_config.json's `eos_token_id` (a number or a
   * list; config.json's when there is no generation_config.json). */
  readonly eosTokenIds: ReadonlySet<number>;
  /** Size of the id space: the largest id of the vocabulary (added tokens included) plus one. */
  readonly vocabSize: number;

  private readonly hf: HFTokenizer;
  private readonly cleanUpSpaces: boolean;
  private readonly specialIds: Set<number>;

  private constructor(dir: string, tokenizerJson: Json, config: Json, generation: Json | undefined, modelConfig: Json | undefined) {
    this.dir = dir;
    this.config = config;
    // Decoding as transformers 5 (tokenization_utils_tokenizers.py, `_decode`): `clean_up_tokenization_spaces`
    // (default false) is applied only to tokenizers whose model is not BPE, unless the folder also sets
    // `clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output`; the Rust library never applies it.
    // tokenizers.js would apply it to every model (and defaults it to true), so it is turned off there and done here.
    // Additional special tokens may be objects {content}; tokenizers.js expects strings.
    const map = specialTokensMap(config);
    const tokenizerClass = typeof config.tokenizer_class === 'string' ? config.tokenizer_class.replace(/Fast$/, '') : '';
    const vocab = (tokenizerJson.model as Json).vocab;
    const inVocab = (t: string): boolean => (tokenizerJson.added_tokens as Json[]).some((a) => a.content === t) ||
      (!!vocab && typeof vocab === 'object' && !Array.isArray(vocab) && Object.hasOwn(vocab, t));
    for (const [key, token] of Object.entries(CLASS_DEFAULTS[tokenizerClass] ?? {})) {
      if (!(key in config) && map[key] === undefined && inVocab(token)) map[key] = token;
    }
    asTransformers5(tokenizerJson, config, map);
    // Every named special token is special in decoding (transformers registers them with the Rust tokenizer).
    const skipped = [...(map.additional_special_tokens as string[] | undefined ?? [])];
    for (const key of NAMED_SPECIAL) if (typeof map[key] === 'string' && !skipped.includes(map[key] as string)) skipped.push(map[key] as string);
    const modelType = (tokenizerJson.model as Json).type;
    // A stated model type the library does not implement would be read as another (BPE): refused instead.
    // (Old files state none; the library infers it from the fields.)
    if (modelType !== undefined && !TOKENIZER_MODELS.includes(modelType as string)) {
      throw new Error(`${join(dir, 'tokenizer.json')}: model.type ${JSON.stringify(modelType)} is not supported (${TOKENIZER_MODELS.join(', ')})`);
    }
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true &&
      (modelType !== 'BPE' || config.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output === true);
    const hfConfig: Json = {
      ...config,
      clean_up_tokenization_spaces: false,
      additional_special_tokens: skipped,
    };
    try {
      this.hf = new HFTokenizer(tokenizerJson, hfConfig);
    } catch (err) {
      throw new Error(`${join(dir, 'tokenizer.json')}: unsupported or invalid tokenizer: ${(err as Error).message}`);
    }
    rustByteFallback((this.hf as unknown as { decoder?: unknown }).decoder);
    fasterBpe((this.hf as unknown as { model?: unknown }).model);

    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    // Ids of the model config files: generation_config.json first (what generate() uses), then config.json.
    const configIds = (key: string): number[] => {
      const g = idList(generation?.[key]);
      return g.length > 0 ? g : idList(modelConfig?.[key]);
    };
    const resolveToken = (name: 'bos' | 'eos' | 'pad' | 'unk'): number | undefined => {
      const s = map[`${name}_token`];
      if (typeof s === 'string') {
        const id = this.hf.token_to_id(s);
        if (id !== undefined) return id;
      }
      const ids = configIds(`${name}_token_id`);
      if (ids.length > 0) {
        return ids[0];
      }
      return undefined;
    };
    this.bosTokenId = resolveToken('bos');
    this.eosTokenId = resolveToken('eos');
    this.unkTokenId = resolveToken('unk');
    this.padTokenId = resolveToken('pad') ?? this.eosTokenId;
    const eos = new Set<number>(configIds('eos_token_id'));
    if (this.eosTokenId !== undefined) eos.add(this.eosTokenId);
    this.eosTokenIds = eos;
    this.specialTokens = map;

    this.specialIds = new Set<number>();
    for (const [id, token] of this.hf.get_added_tokens_decoder()) if (token.special) this.specialIds.add(id);
    for (const v of Object.values(map)) {
      for (const s of Array.isArray(v) ? v : [v]) {
        const id = this.hf.token_to_id(s);
        if (id !== undefined) this.specialIds.add(id);
      }
    }
  }

  /** Loads the tokenizer of a Hugging Face model folder (tokenizer.json required; tokenizer_config.json,
   * generation_config.json and config.json read when present). */
  static fromFolder(dir: string): Tokenizer {
    const folder = resolve(dir);
    const tokenizerPath = join(folder, 'tokenizer.json');
    if (!existsSync(tokenizerPath)) {
      throw new Error(`${tokenizerPath}: file not found (a Hugging Face model folder needs a tokenizer.json; ` +
        'folders with only a SentencePiece tokenizer.model are not supported: convert them with transformers first)');
    }
    const tokenizerJson = readJsonFile(tokenizerPath);
    if (!tokenizerJson.model || typeof tokenizerJson.model !== 'object') {
      throw new Error(`${tokenizerPath}: not a tokenizers file (no "model" object)`);
    }
    if (!Array.isArray(tokenizerJson.added_tokens)) tokenizerJson.added_tokens = [];
    const config = readJsonFile(join(folder, 'tokenizer_config.json'), true) ?? {};
    const generation = readJsonFile(join(folder, 'generation_config.json'), true);
    const modelConfig = readJsonFile(join(folder, 'config.json'), true);
    return new Tokenizer(folder, tokenizerJson, config, generation, modelConfig);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): number[][] {
    return texts.map((t) => this.encode(t, options));
  }

  decode(ids: ArrayLike<number | bigint>, options: DecodeOptions = {}): string {
    const all = Array.from(ids, Number);
    for (const id of all) if (!Number.isInteger(id) || id < 0) throw new Error(`decode: invalid token id ${id}`);
    // HF tokenizers (Rust) skips ids with no token (models often have more embedding rows than tokens);
    // tokenizers.js would turn them into the unk token. And tokenizers.js throws on an empty list where
    // transformers returns ''.
    const list = all.filter((id) => this.hf.id_to_token(id) !== undefined);
    if (list.length === 0) return '';
    const text = this.hf.decode(list, { skip_special_tokens: options.skipSpecialTokens ?? false });
    return this.cleanUpSpaces ? cleanUpTokenization(text) : text;
  }

  decodeBatch(batch: readonly ArrayLike<number | bigint>[], options: DecodeOptions = {}): string[] {
    return batch.map((ids) => this.decode(ids, options));
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** Whether an id is a special token: an added token flagged `special`, or one of the configured special tokens. */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The ids of all special tokens. */
  get specialTokenIds(): ReadonlySet<number> {
    return this.specialIds;
  }

  /** Copies the tokenizer files (models/transformers4.ts's TOKENIZER_FILES, those the source folder has; its
   * tokenizer_config.json written so that transformers 4 and 5 both load it) into a model folder being written. */
  save(dir: string): void {
    const target = resolve(dir);
    mkdirSync(target, { recursive: true });
    if (target === this.dir) return;
    if (!existsSync(join(this.dir, 'tokenizer.json'))) throw new Error(`${join(this.dir, 'tokenizer.json')}: file not found (was the source folder removed?)`);
    copyTokenizerFiles(this.dir, target);
  }
}
