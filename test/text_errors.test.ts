// Error messages and fallbacks of the text layer: missing and malformed files, folders without a chat template,
// special tokens from the config ids, named templates, continueFinalMessage, plain-text prompts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '../src/text/tokenizer.js';
import { ChatTemplate, ChatTemplateError, promptText } from '../src/text/chat_template.js';
import { copyFolder, fixtureRoot, modelFolders, removeDir, tempDir } from './text_helpers.js';

const folders = modelFolders();
const skip = folders.length === 0 ? `no fixtures at ${fixtureRoot} (set SPPO_HF_FIXTURES)` : false;
// A folder with a ChatML-like template and the fixtures' special tokens (<s>, </s>, <pad>, <|im_end|>).
const source = join(fixtureRoot, folders.includes('qwen2') ? 'qwen2' : (folders[0] ?? 'none'));

function withCopy(fn: (dir: string) => void): void {
  const dir = copyFolder(source, 'texterr');
  try {
    fn(dir);
  } finally {
    removeDir(dir);
  }
}

function editJson(path: string, edit: (value: Record<string, unknown>) => void): void {
  const value = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  edit(value);
  writeFileSync(path, JSON.stringify(value));
}

test('a missing tokenizer.json is named in the error', () => {
  const dir = tempDir('empty');
  try {
    assert.throws(() => Tokenizer.fromFolder(dir), (err: Error) => err.message.includes(join(dir, 'tokenizer.json')) && /not found/.test(err.message));
  } finally {
    removeDir(dir);
  }
});

test('a malformed tokenizer.json is named in the error', { skip }, () => {
  withCopy((dir) => {
    writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0", "model": ');
    assert.throws(() => Tokenizer.fromFolder(dir), (err: Error) => err.message.includes(join(dir, 'tokenizer.json')) && /malformed JSON/.test(err.message));
    writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
    assert.throws(() => Tokenizer.fromFolder(dir), (err: Error) => err.message.includes(join(dir, 'tokenizer.json')) && /no "model"/.test(err.message));
  });
});

test('a malformed tokenizer_config.json is named by the tokenizer and the chat template', { skip }, () => {
  withCopy((dir) => {
    rmSync(join(dir, 'chat_template.jinja'));
    writeFileSync(join(dir, 'tokenizer_config.json'), '{"bos_token": "<s>",}');
    const named = (err: Error) => err.message.includes(join(dir, 'tokenizer_config.json')) && /malformed JSON/.test(err.message);
    assert.throws(() => Tokenizer.fromFolder(dir), named);
    assert.throws(() => ChatTemplate.fromFolder(dir), named);
  });
});

test('a folder without a chat template: a helpful error naming the folder, and plain text used as is', { skip }, () => {
  withCopy((dir) => {
    rmSync(join(dir, 'chat_template.jinja'));
    assert.equal(ChatTemplate.hasTemplate(dir), false);
    assert.equal(ChatTemplate.findInFolder(dir), undefined);
    assert.throws(() => ChatTemplate.fromFolder(dir), (err: Error) => err instanceof ChatTemplateError && err.message.includes(dir) && /no chat template/.test(err.message) && /plain text/.test(err.message));
    assert.equal(promptText('Once upon a time', undefined), 'Once upon a time');
    assert.throws(() => promptText([{ role: 'user', content: 'hi' }], undefined), ChatTemplateError);
  });
});

test('plain text with a template is one user turn, unless raw', { skip }, () => {
  const template = ChatTemplate.fromFolder(source);
  const expected = template.render([{ role: 'user', content: 'Tell me a story.' }], { addGenerationPrompt: true });
  assert.equal(promptText('Tell me a story.', template), expected);
  assert.equal(promptText('Tell me a story.', template, { raw: true }), 'Tell me a story.');
  assert.equal(promptText([{ role: 'user', content: 'Tell me a story.' }], template), expected);
});

test('chat templates: named list entries, a missing default, raise_exception and parse errors', () => {
  const dir = tempDir('tmpl');
  try {
    const config = join(dir, 'tokenizer_config.json');
    writeFileSync(config, JSON.stringify({
      bos_token: { content: '<s>', special: true }, eos_token: '</s>',
      chat_template: [{ name: 'default', template: '{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}{% endfor %}' },
        { name: 'tool_use', template: 'tools={{ tools | length }}' }],
    }));
    const msgs = [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }];
    assert.equal(ChatTemplate.fromFolder(dir).render(msgs), '<s>user: a</s>assistant: b</s>');
    assert.equal(ChatTemplate.fromFolder(dir).render(msgs, { bosToken: '[B]', eosToken: '[E]' }), '[B]user: a[E]assistant: b[E]');
    assert.equal(ChatTemplate.fromFolder(dir, { name: 'tool_use' }).render(msgs, { tools: [{}, {}] }), 'tools=2');
    assert.throws(() => ChatTemplate.fromFolder(dir, { name: 'rag' }), (err: Error) => err.message.includes(config) && /rag/.test(err.message) && /default, tool_use/.test(err.message));

    writeFileSync(config, JSON.stringify({ chat_template: "{% if messages[0].role != 'user' %}{{ raise_exception('must start with user') }}{% endif %}ok{{ extra_var }}" }));
    const t = ChatTemplate.fromFolder(dir);
    assert.equal(t.render([{ role: 'user', content: 'x' }], { extra_var: '!' }), 'ok!');
    assert.throws(() => t.render([{ role: 'system', content: 'x' }]), (err: Error) => err instanceof ChatTemplateError && /must start with user/.test(err.message));

    writeFileSync(config, JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content }' }));
    assert.throws(() => ChatTemplate.fromFolder(dir), (err: Error) => err instanceof ChatTemplateError && err.message.includes(config));

    writeFileSync(config, JSON.stringify({ chat_template: 42 }));
    assert.throws(() => ChatTemplate.fromFolder(dir), (err: Error) => err.message.includes(config));
  } finally {
    removeDir(dir);
  }
});

test('continueFinalMessage ends the text after the last message, as transformers', { skip }, () => {
  const template = ChatTemplate.fromFolder(source);
  const msgs = [{ role: 'user', content: 'Count to three.' }, { role: 'assistant', content: '1 2' }];
  const full = template.render(msgs);
  const open = template.render(msgs, { continueFinalMessage: true });
  assert.ok(full.startsWith(open) && open.endsWith('1 2') && open.length < full.length, JSON.stringify(open));
  assert.throws(() => template.render(msgs, { continueFinalMessage: true, addGenerationPrompt: true }), ChatTemplateError);
});

test('special tokens fall back to the config ids; pad falls back to eos; eos may be a list', { skip }, () => {
  withCopy((dir) => {
    editJson(join(dir, 'tokenizer_config.json'), (c) => {
      delete c.bos_token;
      delete c.eos_token;
      delete c.pad_token;
      c.additional_special_tokens = [{ content: '<|im_end|>' }];
    });
    editJson(join(dir, 'generation_config.json'), (c) => {
      c.eos_token_id = [2, 5];
      delete c.pad_token_id;
    });
    editJson(join(dir, 'config.json'), (c) => {
      delete c.pad_token_id;
    });
    const tok = Tokenizer.fromFolder(dir);
    assert.equal(tok.bosTokenId, 1);
    assert.equal(tok.eosTokenId, 2);
    assert.deepEqual([...tok.eosTokenIds].sort(), [2, 5]);
    assert.equal(tok.padTokenId, 2);
    // As transformers 5: the template variables come from tokenizer_config.json only (config ids do not fill them).
    assert.equal(tok.specialTokens.bos_token, undefined);
    assert.equal(tok.specialTokens.eos_token, undefined);
    assert.deepEqual(tok.specialTokens.additional_special_tokens, ['<|im_end|>']);
    assert.ok(tok.isSpecial(5));

    // Without generation_config.json, config.json's ids.
    rmSync(join(dir, 'generation_config.json'));
    editJson(join(dir, 'config.json'), (c) => {
      c.eos_token_id = 5;
    });
    const tok2 = Tokenizer.fromFolder(dir);
    assert.equal(tok2.eosTokenId, 5);
    assert.deepEqual([...tok2.eosTokenIds], [5]);
  });
});

test('decode: unknown ids are skipped as HF tokenizers does, negative ids throw, bigint ids work', { skip }, () => {
  const tok = Tokenizer.fromFolder(source);
  const ids = tok.encode('Hello, world!', { addSpecialTokens: false });
  assert.equal(tok.decode([...ids, tok.vocabSize + 100]), 'Hello, world!');
  assert.equal(tok.decode(BigInt64Array.from(ids.map(BigInt))), 'Hello, world!');
  assert.throws(() => tok.decode([-1]), /invalid token id/);
  const eos = tok.eosTokenId!;
  assert.equal(tok.decode([...ids, eos], { skipSpecialTokens: true }), 'Hello, world!');
  assert.equal(tok.decode([...ids, eos]), `Hello, world!${tok.idToToken(eos)}`);
});
