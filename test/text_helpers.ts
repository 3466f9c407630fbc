// Shared by the text tests: where the HF fixtures are, and how to make model folders from them.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to dist/test/: the project root is two folders up.
const projectRoot = fileURLToPath(new URL('../../', import.meta.url));

/** The hf-tiny fixture root: $SPPO_HF_FIXTURES, else ../shared/fixtures/hf-tiny from the project root. */
export const fixtureRoot = process.env.SPPO_HF_FIXTURES ? resolve(process.env.SPPO_HF_FIXTURES) : resolve(projectRoot, '../shared/fixtures/hf-tiny');

export interface Expected {
  messages: { role: string; content: string }[][];
  prompts: string[];
  prompt_ids: number[][];
  greedy_text: string[];
  roundtrip: Record<string, { ids: number[]; decoded: string }>;
}

/** Model folders with a tokenizer.json and an expected.json (deberta-v2, for one, has neither). */
export function modelFolders(): string[] {
  if (!existsSync(fixtureRoot)) return [];
  return readdirSync(fixtureRoot, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(fixtureRoot, e.name, 'expected.json')) && existsSync(join(fixtureRoot, e.name, 'tokenizer.json')))
    .map((e) => e.name)
    .sort();
}

export function readExpected(dir: string): Expected {
  return JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
}

const SMALL_FILES = ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'generation_config.json', 'config.json', 'expected.json'];

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `sppo-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Copies the small files (no weights) of a model folder into a new temp folder. */
export function copyFolder(src: string, prefix = 'text'): string {
  const dst = tempDir(prefix);
  for (const name of SMALL_FILES) if (existsSync(join(src, name))) copyFileSync(join(src, name), join(dst, name));
  return dst;
}

/**
 * A transformers-4-layout copy of a model folder: the chat template moved into tokenizer_config.json's
 * `chat_template` (as a string, or as a list of {name, template} when `asList`), chat_template.jinja removed, and
 * the special tokens written as AddedToken objects `{content, ...}` as transformers 4 often does.
 */
export function transformers4Copy(src: string, asList = false): string {
  const dst = copyFolder(src, 'text4');
  const config = JSON.parse(readFileSync(join(dst, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const jinja = join(dst, 'chat_template.jinja');
  if (existsSync(jinja)) {
    const template = readFileSync(jinja, 'utf8');
    config.chat_template = asList
      ? [{ name: 'tool_use', template: '{{ raise_exception("wrong template") }}' }, { name: 'default', template }]
      : template;
    rmSync(jinja);
  }
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
    if (typeof config[key] === 'string') {
      config[key] = { __type: 'AddedToken', content: config[key], lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
    }
  }
  config.clean_up_tokenization_spaces = false;
  writeFileSync(join(dst, 'tokenizer_config.json'), JSON.stringify(config, null, 2));
  return dst;
}

/** Reads one integer tensor (I64 or I32) of a safetensors file as rows of numbers. */
export function readIntTensor(path: string, name: string): number[][] {
  const buf = readFileSync(path);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const t = header[name];
  if (!t) throw new Error(`${path}: no tensor ${name}`);
  const start = 8 + headerLen + t.data_offsets[0];
  const bytes = buf.subarray(start, 8 + headerLen + t.data_offsets[1]);
  const values: number[] = [];
  if (t.dtype === 'I64') for (let i = 0; i < bytes.length; i += 8) values.push(Number(bytes.readBigInt64LE(i)));
  else if (t.dtype === 'I32') for (let i = 0; i < bytes.length; i += 4) values.push(bytes.readInt32LE(i));
  else throw new Error(`${path}: ${name} has dtype ${t.dtype}, expected an integer type`);
  const cols = t.shape.length === 2 ? t.shape[1] : values.length;
  const rows: number[][] = [];
  for (let i = 0; i < values.length; i += cols) rows.push(values.slice(i, i + cols));
  return rows;
}
