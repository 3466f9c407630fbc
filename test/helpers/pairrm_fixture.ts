// A PairRM-hf-layout folder with random weights on the tiny DeBERTa-v2 backbone of the hf-tiny fixtures
// (../shared/fixtures/hf-tiny/deberta-v2, conformance-checked against transformers): written by
// scripts/make-pairrm-fixture.mjs and by the tests, into a folder they choose (never committed).
//
//   config.json           the deberta-v2 fixture's config with architectures ["DebertaV2PairRM"] and llm-blender's
//                         fields (n_tasks 1, drop_out, source/cand1/cand2/cand prefix ids, sep_token_id), in the
//                         transformers 5 layout or (layout 4) with torch_dtype and pos_att_type "p2c|c2p"
//   model.safetensors     the encoder's tensors under `pretrained_model.`, and a random head
//                         head_layer.1 [64, 128] + [64], head_layer.4 [1, 64] + [1] (normal, std 0.2, seeded)
//   tokenizer.json        a DeBERTa-v3-like tokenizer built here: Metaspace (U+2581, prepended to every piece)
//                         + Unigram over FIXTURE_WORDS (whole words, score -5), U+2581 (-4) and single characters
//                         (-6), [CLS] $A [SEP] post-processing; special tokens [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3
//                         [MASK]=4, llm-blender's added tokens <|source|>=508 <|candidate1|>=509
//                         <|candidate2|>=510 <|candidate|>=511
//   tokenizer_config.json the special tokens
// The ids are fixed by this layout, so tests can write down the ids of a text by hand (fixtureWordId).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Generator, randn, SafetensorsFile, saveSafetensors, type Tensor } from '../../src/torch/index.js';
import { hfTiny } from './fixtures.js';

export const DEBERTA_FIXTURE = join(hfTiny, 'deberta-v2');

export const SPECIAL = { pad: 0, cls: 1, sep: 2, unk: 3, mask: 4 } as const;
export const PAIRRM_IDS = { source: 508, cand1: 509, cand2: 510, cand: 511 } as const;
/** Id of the piece U+2581 alone. */
export const SPACE_ID = 5;
/** Whole-word pieces, ids WORD_BASE + index. */
export const FIXTURE_WORDS = [
  'the', 'a', 'is', 'are', 'cat', 'cats', 'dog', 'dogs', 'good', 'bad', 'hello', 'world', 'say', 'something', 'about',
  'answer', 'question', 'sea', 'stars', 'music', 'rain', 'bread', 'numbers', 'yes', 'no', 'it', 'i', 'you', 'like',
  'very', 'nice', 'and', 'or', 'not', 'of', 'to', 'in', 'on', 'for', 'with', 'what', 'why', 'how', 'one', 'two',
];
export const WORD_BASE = 6;
/** Single characters, ids CHAR_BASE + index. */
export const FIXTURE_CHARS = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?:;\'"-()[]{}<>/\\|_#*+=@&%$^~`'];
export const CHAR_BASE = WORD_BASE + FIXTURE_WORDS.length;

/** The id of a whole word of FIXTURE_WORDS (as it appears after a space or at the start of a part). */
export function fixtureWordId(word: string): number {
  const i = FIXTURE_WORDS.indexOf(word);
  if (i < 0) throw new Error(`'${word}' is not a fixture word`);
  return WORD_BASE + i;
}

/** The id of a single character piece (inside a word that is not a fixture word). */
export function fixtureCharId(c: string): number {
  const i = FIXTURE_CHARS.indexOf(c);
  if (i < 0) throw new Error(`'${c}' is not a fixture character`);
  return CHAR_BASE + i;
}

function tokenizerJson(): Record<string, unknown> {
  const vocab: [string, number][] = [['[PAD]', 0], ['[CLS]', 0], ['[SEP]', 0], ['[UNK]', 0], ['[MASK]', 0], ['\u2581', -4]];
  for (const w of FIXTURE_WORDS) vocab.push([`\u2581${w}`, -5]);
  for (const c of FIXTURE_CHARS) vocab.push([c, -6]);
  while (vocab.length < PAIRRM_IDS.source) vocab.push([`[unused${vocab.length}]`, -100]);
  for (const t of ['<|source|>', '<|candidate1|>', '<|candidate2|>', '<|candidate|>']) vocab.push([t, 0]);
  const added = (id: number, content: string, special: boolean): Record<string, unknown> => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      added(0, '[PAD]', true), added(1, '[CLS]', true), added(2, '[SEP]', true), added(3, '[UNK]', true), added(4, '[MASK]', true),
      added(PAIRRM_IDS.source, '<|source|>', false), added(PAIRRM_IDS.cand1, '<|candidate1|>', false),
      added(PAIRRM_IDS.cand2, '<|candidate2|>', false), added(PAIRRM_IDS.cand, '<|candidate|>', false),
    ],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true, prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [SPECIAL.cls], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [SPECIAL.sep], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true, prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: SPECIAL.unk, vocab, byte_fallback: false },
  };
}

export interface PairRMFixtureOptions {
  /** 5 (default): dtype, pos_att_type list; 4: torch_dtype, pos_att_type "p2c|c2p". */
  layout?: 4 | 5;
  /** Seed of the head's weights (default 7). */
  seed?: number;
}

/** Writes the fixture folder; returns its path. */
export function writePairRMFixture(dir: string, opts: PairRMFixtureOptions = {}): string {
  mkdirSync(dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(DEBERTA_FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;
  Object.assign(config, {
    architectures: ['DebertaV2PairRM'],
    n_tasks: 1,
    drop_out: 0.05,
    source_prefix_id: PAIRRM_IDS.source,
    cand1_prefix_id: PAIRRM_IDS.cand1,
    cand2_prefix_id: PAIRRM_IDS.cand2,
    cand_prefix_id: PAIRRM_IDS.cand,
    sep_token_id: SPECIAL.sep,
    pad_token_id: SPECIAL.pad,
  });
  if (opts.layout === 4) {
    config.torch_dtype = config.dtype;
    delete config.dtype;
    config.pos_att_type = (config.pos_att_type as string[]).join('|');
    config.transformers_version = '4.35.2';
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');

  const src = SafetensorsFile.open(join(DEBERTA_FIXTURE, 'model.safetensors'));
  const tensors = new Map<string, Tensor>();
  try {
    for (const name of src.entries.keys()) tensors.set(`pretrained_model.${name}`, src.load(name));
    const h = config.hidden_size as number;
    const gen = new Generator(opts.seed ?? 7, 'cpu');
    const normal = (shape: number[]): Tensor => {
      const t = randn(shape, { generator: gen });
      const s = t.mul(0.2);
      t.dispose();
      return s;
    };
    tensors.set('head_layer.1.weight', normal([h, 2 * h]));
    tensors.set('head_layer.1.bias', normal([h]));
    tensors.set('head_layer.4.weight', normal([1, h]));
    tensors.set('head_layer.4.bias', normal([1]));
    saveSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }

  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson()) + '\n');
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({
    tokenizer_class: 'DebertaV2Tokenizer',
    bos_token: '[CLS]', eos_token: '[SEP]', cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', unk_token: '[UNK]', mask_token: '[MASK]',
    model_max_length: 2048,
    clean_up_tokenization_spaces: false,
  }, null, 2) + '\n');
  return dir;
}
