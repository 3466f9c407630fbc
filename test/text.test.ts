// Tokenizer and chat template against the outputs of transformers on the hf-tiny fixture folders, in their
// transformers 5 layout and in a transformers 4 layout copy (chat template inside tokenizer_config.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '../src/text/tokenizer.js';
import { ChatTemplate } from '../src/text/chat_template.js';
import { fixtureRoot, modelFolders, readExpected, readIntTensor, removeDir, transformers4Copy, tempDir } from './text_helpers.js';
import { fixtureCases } from './helpers/fixtures.js';

const folders = modelFolders();
const noFixtures = folders.length === 0 ? `no fixtures at ${fixtureRoot} (set SPPO_HF_FIXTURES)` : false;

test('the fixture root holds the model folders', { skip: noFixtures }, () => {
  for (const name of ['llama', 'qwen2', 'mistral', 'gemma2', 'gpt2']) {
    if (process.env.SPPO_HF_FIXTURES) break; // another fixture set may hold other models
    assert.ok(folders.includes(name), `${name} missing from ${folders.join(', ')}`);
  }
});

function checkFolder(dir: string, expectedDir: string): void {
  const expected = readExpected(expectedDir);
  const tok = Tokenizer.fromFolder(dir);
  const template = ChatTemplate.fromFolder(dir);
  assert.equal(expected.messages.length, expected.prompts.length);
  expected.messages.forEach((messages, i) => {
    const prompt = template.render(messages, { addGenerationPrompt: true });
    assert.equal(prompt, expected.prompts[i], `prompt ${i}`);
    assert.deepEqual(tok.encode(prompt, { addSpecialTokens: false }), expected.prompt_ids[i], `prompt ids ${i}`);
    // The template from the Tokenizer's special tokens renders the same.
    assert.equal(ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens }).render(messages, { addGenerationPrompt: true }), expected.prompts[i]);
  });
  assert.deepEqual(tok.encodeBatch(expected.prompts, { addSpecialTokens: false }), expected.prompt_ids);
  const specialStrings = [...tok.specialTokenIds].map((id) => tok.idToToken(id)!);
  const texts = Object.keys(expected.roundtrip);
  assert.ok(texts.length > 0);
  for (const text of texts) {
    const { ids, decoded } = expected.roundtrip[text];
    const got = tok.encode(text, { addSpecialTokens: false });
    assert.deepEqual(got, ids, `ids of ${JSON.stringify(text)}`);
    assert.equal(tok.decode(got), decoded, `decoding of ${JSON.stringify(text)}`);
    // Texts without special tokens come back identical (the SentencePiece-like tokenizers add a space after an
    // added token, as transformers does: expected.json records that).
    if (!specialStrings.some((s) => text.includes(s))) assert.equal(tok.decode(got), text, `round trip of ${JSON.stringify(text)}`);
  }
  assert.deepEqual(tok.decodeBatch(texts.map((t) => expected.roundtrip[t].ids)), texts.map((t) => expected.roundtrip[t].decoded));
  const greedyPath = join(expectedDir, 'expected.safetensors');
  if (existsSync(greedyPath)) {
    const greedy = readIntTensor(greedyPath, 'greedy_tokens');
    assert.deepEqual(tok.decodeBatch(greedy, { skipSpecialTokens: true }), expected.greedy_text, 'greedy_text');
  }
}

// Every manifest folder registers its tests (skipped with the missing file's name when one is missing).
for (const { name, dir, skip } of fixtureCases(['config.json', 'tokenizer.json', 'expected.json'], fixtureRoot)) {

  test(`${name}: prompts, prompt ids, round trips and greedy text as transformers (transformers 5 layout)`, { skip }, () => {
    checkFolder(dir, dir);
  });

  test(`${name}: the same from a transformers 4 layout copy (template in tokenizer_config.json)`, { skip }, () => {
    for (const asList of [false, true]) {
      const copy = transformers4Copy(dir, asList);
      try {
        assert.equal(existsSync(join(copy, 'chat_template.jinja')), false);
        assert.equal(ChatTemplate.findInFolder(copy)?.source.includes('tokenizer_config.json'), true);
        checkFolder(copy, dir);
      } finally {
        removeDir(copy);
      }
    }
  });

  test(`${name}: special tokens`, { skip }, () => {
    const tok = Tokenizer.fromFolder(dir);
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, string>;
    assert.equal(tok.bosTokenId, tok.tokenToId(config.bos_token));
    assert.equal(tok.eosTokenId, tok.tokenToId(config.eos_token));
    assert.equal(tok.padTokenId, tok.tokenToId(config.pad_token));
    assert.equal(tok.idToToken(tok.eosTokenId!), config.eos_token);
    assert.ok(tok.eosTokenIds.has(tok.eosTokenId!));
    assert.ok(tok.isSpecial(tok.eosTokenId!));
    assert.equal(tok.isSpecial(tok.encode('hello', { addSpecialTokens: false })[0]), false);
    const modelConfig = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { vocab_size: number };
    assert.ok(tok.vocabSize > 0 && tok.vocabSize <= modelConfig.vocab_size, `vocabSize ${tok.vocabSize}`);
    assert.equal(tok.decode([]), '');
  });

  test(`${name}: save copies the tokenizer files`, { skip }, () => {
    const out = tempDir('save');
    try {
      const tok = Tokenizer.fromFolder(dir);
      tok.save(join(out, 'model'));
      for (const file of ['tokenizer.json', 'chat_template.jinja']) {
        if (!existsSync(join(dir, file))) continue;
        assert.deepEqual(readFileSync(join(out, 'model', file)), readFileSync(join(dir, file)), file);
      }
      // tokenizer_config.json: the same but for the class transformers 4 also has (models/transformers4.ts).
      const cfg = (p: string): Record<string, unknown> => JSON.parse(readFileSync(join(p, 'tokenizer_config.json'), 'utf8'));
      const src = cfg(dir);
      const written = cfg(join(out, 'model'));
      if (src.tokenizer_class === 'TokenizersBackend') {
        assert.equal(written.tokenizer_class, 'PreTrainedTokenizerFast');
        delete src.tokenizer_class;
        delete src.backend;
        delete written.tokenizer_class;
      }
      assert.deepEqual(written, src);
      const again = Tokenizer.fromFolder(join(out, 'model'));
      const text = readExpected(dir).prompts[1];
      assert.deepEqual(again.encode(text), tok.encode(text));
      assert.equal(ChatTemplate.fromFolder(join(out, 'model')).text, ChatTemplate.fromFolder(dir).text);
    } finally {
      removeDir(out);
    }
  });
}
