// The text layer where real models differ from the tiny fixtures (issue 27): a BOS on plain text, the turn
// terminator ending training responses, transformers 5's decoding, template variables, `bos_token` as transformers
// gives it, the stop-set warning and the Rust library's byte fallback. Each runs on a Gemma-style copy of the
// hf-tiny gemma2 folder: a BOS (`<s>`, id 1) added by tokenizer.json's post-processor, a template that starts with
// `{{ bos_token }}` and ends a turn with `<end_of_turn>` (id 9), and EOS `</s>` (id 2), as Gemma-2/3-it ship.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '../src/text/tokenizer.js';
import { ChatTemplate, encodePrompt, promptIds, responseEndId, stopSetWarning, turnTerminatorId } from '../src/text/chat_template.js';
import { modelPrompt } from '../src/sppo/prompts.js';
import { tokenizeSft } from '../src/sppo/sft.js';
import { tokenizePairs } from '../src/sppo/pairs_file.js';
import { parseConfig } from '../src/sppo/config.js';
import { parseChat } from '../src/serve/protocol.js';
import { runSppo } from '../src/sppo/loop.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const source = join(fixtureRoot, 'gemma2');
const skip = existsSync(join(source, 'model.safetensors')) ? false : `no gemma2 fixture at ${source}`;

const BOS = 1;
const EOS = 2;
const END_OF_TURN = 9;
// Gemma-2-it's chat template, as google/gemma-2-*-it ship it.
const GEMMA2_TEMPLATE = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" +
  "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}" +
  "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

type Json = Record<string, unknown>;
const readJson = (p: string): Json => JSON.parse(readFileSync(p, 'utf8')) as Json;

/** A Gemma-style model folder (weights included) in a temp folder; `stops`: generation_config.json's eos_token_id. */
function gemmaStyleFolder(o: { stops?: number[]; template?: string } = {}): string {
  const dir = tempDir('gemma-style');
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(source, f), join(dir, f));
  const tj = readJson(join(source, 'tokenizer.json'));
  tj.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [BOS], tokens: ['<s>'] } },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tj));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>', add_bos_token: true, tokenizer_class: 'GemmaTokenizer' }));
  writeFileSync(join(dir, 'chat_template.jinja'), o.template ?? GEMMA2_TEMPLATE);
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: BOS, eos_token_id: o.stops ?? [EOS, END_OF_TURN], pad_token_id: 0 }));
  return dir;
}

function withFolder(o: Parameters<typeof gemmaStyleFolder>[0], fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = gemmaStyleFolder(o);
  return Promise.resolve(fn(dir)).finally(() => removeDir(dir));
}

test('BOS: plain text gets the tokenizer\'s own special tokens, template output none (one BOS either way)', { skip }, () => withFolder({}, (dir) => {
  const tok = Tokenizer.fromFolder(dir);
  const template = ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens });
  const raw = promptIds(tok, 'Write a haiku about autumn.', template, { raw: true });
  assert.equal(raw[0], BOS);
  assert.deepEqual(raw.slice(1), tok.encode('Write a haiku about autumn.', { addSpecialTokens: false }));
  const chat = promptIds(tok, 'Write a haiku about autumn.', template);
  assert.equal(chat[0], BOS);
  assert.equal(chat.filter((id) => id === BOS).length, 1, 'template output holds its BOS: none added');
  // A conversation without a template (a base model, or raw) is plain text too.
  const plain = modelPrompt([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }], undefined);
  assert.equal(plain.templated, false);
  assert.equal(encodePrompt(tok, plain)[0], BOS);
}));

test('the end of a training response is the template\'s turn terminator: sft and pairs files end with <end_of_turn>', { skip }, () => withFolder({}, (dir) => {
  const tok = Tokenizer.fromFolder(dir);
  const template = ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens });
  assert.equal(tok.eosTokenId, EOS);
  assert.equal(turnTerminatorId(tok, template), END_OF_TURN);
  const [ex] = tokenizeSft(tok, template, [{ prompt: 'Say hi.', response: 'Hi there.' }]);
  assert.equal(ex!.responseIds.at(-1), END_OF_TURN);
  assert.equal(ex!.responseIds.filter((id) => id === EOS).length, 0);
  assert.equal(ex!.promptIds.filter((id) => id === BOS).length, 1);
  // --raw (no template): the prompt gets the BOS, the response the EOS.
  const [rawEx] = tokenizeSft(tok, undefined, [{ prompt: 'Say hi.', response: 'Hi there.' }], { raw: true });
  assert.equal(rawEx!.promptIds[0], BOS);
  assert.equal(rawEx!.responseIds.at(-1), EOS);
  const text = template.render([{ role: 'user', content: 'Say hi.' }], { addGenerationPrompt: true });
  const [pair] = tokenizePairs(tok, [{ prompt: text, chosen: 'Hi.', rejected: 'No.' }], true, template);
  assert.equal(pair!.chosenIds.at(-1), END_OF_TURN);
  assert.equal(pair!.rejectedIds.at(-1), END_OF_TURN);
  assert.equal(pair!.promptIds.filter((id) => id === BOS).length, 1);
  // A base model's pairs: plain prompts get the BOS, responses the EOS.
  const [base] = tokenizePairs(tok, [{ prompt: 'Say hi.', chosen: 'Hi.', rejected: 'No.' }], true);
  assert.equal(base!.promptIds[0], BOS);
  assert.equal(base!.chosenIds.at(-1), EOS);
  // A template that ends a turn with no special token: EOS.
  const plainTurns = new ChatTemplate("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}");
  assert.equal(responseEndId(tok, plainTurns), EOS);
}));

test('sppo sft (CLI) on a Gemma-style folder trains responses ending with <end_of_turn>', { skip }, async () => withFolder({}, async (dir) => {
  const { sppoCli } = await import('./helpers/cli.js');
  writeFileSync(join(dir, 'sft.jsonl'), [{ prompt: 'Say hi.', response: 'Hi there.' }, { prompt: 'Say bye.', response: 'Bye.' }].map((l) => JSON.stringify(l)).join('\n') + '\n');
  const r = sppoCli(['sft', '--model', dir, '--data', join(dir, 'sft.jsonl'), '--out', join(dir, 'out'), '--epochs', '1', '--batch-size', '2', '--device', 'cpu']);
  assert.equal(r.status, 0, r.stderr);
  // The response tokens the CLI trains on are tokenizeSft's (the same call): checked above; here the run completes
  // and the saved folder still derives <end_of_turn> from its template.
  const out = Tokenizer.fromFolder(join(dir, 'out'));
  assert.equal(turnTerminatorId(out, ChatTemplate.fromFolder(join(dir, 'out'), { specialTokens: out.specialTokens })), END_OF_TURN);
}));

test('decoding as transformers 5: clean_up_tokenization_spaces is ignored for BPE tokenizers, applied to WordPiece', { skip }, () => withFolder({}, (dir) => {
  const cfgPath = join(dir, 'tokenizer_config.json');
  writeFileSync(cfgPath, JSON.stringify({ ...readJson(cfgPath), clean_up_tokenization_spaces: true }));
  const tok = Tokenizer.fromFolder(dir);
  for (const text of ['x = a ?? b', "it 's here , isn 't it ?", 'end .']) {
    assert.equal(tok.decode(tok.encode(text, { addSpecialTokens: false })), text);
  }
  // transformers' escape hatch forces it on a BPE tokenizer.
  writeFileSync(cfgPath, JSON.stringify({ ...readJson(cfgPath), clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output: true }));
  const forced = Tokenizer.fromFolder(dir);
  assert.equal(forced.decode(forced.encode('x = a ?? b', { addSpecialTokens: false })), 'x = a?? b');
  // A WordPiece tokenizer (BERT-like) with the flag: cleaned, as transformers does.
  const wp = tempDir('wordpiece');
  try {
    const vocab = { '[UNK]': 0, x: 1, '?': 2, a: 3, '##b': 4, ',': 5 };
    writeFileSync(join(wp, 'tokenizer.json'), JSON.stringify({
      version: '1.0', truncation: null, padding: null, added_tokens: [{ id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
      normalizer: null, pre_tokenizer: { type: 'BertPreTokenizer' }, post_processor: null,
      decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
    }));
    writeFileSync(join(wp, 'tokenizer_config.json'), JSON.stringify({ clean_up_tokenization_spaces: true, unk_token: '[UNK]' }));
    const w = Tokenizer.fromFolder(wp);
    assert.equal(w.decode([1, 2, 3, 4, 5, 1]), 'x? ab, x');
  } finally {
    removeDir(wp);
  }
}));

test('template variables: chatTemplateKwargs in the run config, --chat-template-kwargs, the serve request field, given to the rendering', { skip }, () => withFolder({}, async (dir) => {
  const tok = Tokenizer.fromFolder(dir);
  const template = new ChatTemplate("{% for m in messages %}{{ m['content'] }}{% endfor %}{% if enable_thinking is defined and enable_thinking is false %}<think></think>{% endif %}", tok.specialTokens);
  assert.equal(modelPrompt('q', template, false, { enable_thinking: false }).text, 'q<think></think>');
  assert.equal(modelPrompt('q', template).text, 'q');
  const cfg = parseConfig({ model: dir, prompts: 'p.jsonl', runDir: 'r', judge: { kind: 'module', path: 'j.mjs' }, chatTemplateKwargs: { enable_thinking: false } });
  assert.deepEqual(cfg.chatTemplateKwargs, { enable_thinking: false });
  const limits = { maxTokens: 100, maxN: 4, maxSequences: 8, maxLogprobs: 5, maxStops: 4 };
  const req = parseChat({ model: 'm', messages: [{ role: 'user', content: 'q' }], chat_template_kwargs: { enable_thinking: false } }, limits);
  assert.deepEqual(req.chatTemplateKwargs, { enable_thinking: false });
  assert.throws(() => parseChat({ model: 'm', messages: [{ role: 'user', content: 'q' }], chat_template_kwargs: [1] }, limits), /chat_template_kwargs/);
  const { chatTemplateKwargsOption } = await import('../src/cli/args.js');
  assert.deepEqual(chatTemplateKwargsOption('{"enable_thinking": false}'), { enable_thinking: false });
  assert.throws(() => chatTemplateKwargsOption('[1]'), /--chat-template-kwargs must be a JSON object/);
  assert.throws(() => chatTemplateKwargsOption('{oops'), /--chat-template-kwargs must be a JSON object/);
}));

test('bos_token is given to templates as transformers gives it: unset in tokenizer_config.json = empty, even with a config id', { skip }, () => withFolder({}, (dir) => {
  // Qwen's layout: bos_token null in tokenizer_config.json, bos_token_id in config.json.
  const cfgPath = join(dir, 'tokenizer_config.json');
  writeFileSync(cfgPath, JSON.stringify({ ...readJson(cfgPath), bos_token: null }));
  writeFileSync(join(dir, 'chat_template.jinja'), "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}");
  const tok = Tokenizer.fromFolder(dir);
  assert.equal(tok.bosTokenId, BOS, 'the id is still known from the config');
  assert.equal(ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens }).render([{ role: 'user', content: 'hi' }]), 'hi');
  assert.equal(ChatTemplate.fromFolder(dir).render([{ role: 'user', content: 'hi' }]), 'hi');
}));

test('a stop set without the template\'s turn terminator is a warning naming the folder', { skip }, () => withFolder({ stops: [EOS] }, (dir) => {
  const tok = Tokenizer.fromFolder(dir);
  const template = ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens });
  const w = stopSetWarning(tok, template);
  assert.ok(w?.includes(dir), w);
  assert.match(w!, /<end_of_turn>/);
  assert.equal(stopSetWarning(tok, undefined), undefined);
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [EOS, END_OF_TURN] }));
  const fixed = Tokenizer.fromFolder(dir);
  assert.equal(stopSetWarning(fixed, template), undefined);
}));

test('sppo serve warns at start-up when the stop set lacks the template\'s turn terminator, naming the folder', { skip, timeout: 60_000 }, async () => withFolder({ stops: [EOS] }, async (dir) => {
  const { spawn } = await import('node:child_process');
  const { projectRoot } = await import('./helpers/fixtures.js');
  const child = spawn(process.execPath, [join(projectRoot, 'bin', 'sppo.js'), 'serve', dir, '--host', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  try {
    // The warning comes right after the "listening" line, before any request; the server is stopped once both are in.
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        if (/listening on[^\n]*\n[^\n]*warning[^\n]*\n/.test(stderr)) resolve();
      });
      child.on('exit', () => (/listening on/.test(stderr) ? resolve() : reject(new Error(`sppo serve exited: ${stderr}`))));
    });
  } finally {
    child.kill('SIGKILL');
  }
  assert.match(stderr, /listening on/, stderr);
  assert.ok(stderr.split('\n').some((l) => l.includes('warning') && l.includes(dir) && l.includes('<end_of_turn>')), stderr);
}));

test('byte fallback: ids that end inside a multi-byte character decode to one U+FFFD per byte, as the Rust library', { skip }, () => withFolder({}, (dir) => {
  const tok = Tokenizer.fromFolder(dir);
  const byte = (b: number): number => tok.tokenToId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!;
  // '€' is E2 82 AC: two of its three bytes.
  assert.equal(tok.decode([byte(0xe2), byte(0x82)]), '\uFFFD\uFFFD');
  assert.equal(tok.decode([byte(0xe2), byte(0x82), byte(0xac)]), '€');
  // A byte-order mark decoded from bytes is kept (the Rust library's from_utf8 keeps it).
  assert.equal(tok.decode([byte(0xef), byte(0xbb), byte(0xbf)]), '\uFEFF');
}));

test('sppo run on a Gemma-style folder: raw prompts start with BOS; the template variables reach the prompts; the stop-set warning is logged', { skip }, async () => withFolder({ stops: [EOS], template: GEMMA2_TEMPLATE.replace("{{'<start_of_turn>model\n'}}", "{{'<start_of_turn>model\n'}}{% if enable_thinking is defined and enable_thinking is false %}<end_of_turn>{% endif %}") }, async (dir) => {
  writeFileSync(join(dir, 'judge.mjs'), 'export const name = "len"; export const positionBiased = false;\nexport default function ({ a, b }) { return a.length > b.length ? 0.7 : a.length < b.length ? 0.3 : 0.5; }\n');
  writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 4 }, (_, i) => JSON.stringify({ prompt: `Write a line about ${i}.` })).join('\n') + '\n');
  const base = {
    model: dir, prompts: 'prompts.jsonl', judge: { kind: 'module' as const, path: 'judge.mjs' }, iterations: 1, device: 'cpu',
    generation: { k: 2, temperature: 1, topP: 1, maxNewTokens: 4, batchSize: 4 },
    training: { epochs: 1, batchSize: 4, maxLength: 64, maxPromptLength: 32, warmupRatio: 0 },
    eval: { count: 0 },
  };
  const lines: string[] = [];
  await runSppo({ ...base, runDir: 'run-raw', raw: true }, { baseDir: dir, progress: false, log: (s) => lines.push(s) });
  const tok = Tokenizer.fromFolder(dir);
  const gens = readFileSync(join(dir, 'run-raw/iter-1/generations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Json);
  assert.ok(gens.length > 0);
  for (const g of gens) {
    const ids = (g.prompt_ids ?? g.promptIds) as number[] | undefined;
    const text = String(g.prompt_text ?? g.prompt ?? '');
    if (ids) {
      assert.equal(ids[0], BOS, `prompt ids ${JSON.stringify(ids)}`);
      assert.equal(ids.filter((id) => id === BOS).length, 1);
    } else assert.ok(text.length > 0);
  }
  const pairs = readFileSync(join(dir, 'run-raw/iter-1/pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Json);
  for (const p of pairs) assert.equal((p.prompt_ids as number[])[0], BOS);
  // With the template and chatTemplateKwargs: the prompt ids hold the variable's output, and one BOS.
  await runSppo({ ...base, runDir: 'run-kw', chatTemplateKwargs: { enable_thinking: false } }, { baseDir: dir, progress: false, log: (s) => lines.push(s) });
  const kwPairs = readFileSync(join(dir, 'run-kw/iter-1/pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Json);
  assert.ok(kwPairs.length > 0);
  for (const p of kwPairs) {
    const ids = p.prompt_ids as number[];
    assert.equal(ids.filter((id) => id === BOS).length, 1);
    assert.equal(ids.at(-1), END_OF_TURN, `the variable's output ends the prompt: ${tok.decode(ids)}`);
  }
  assert.ok(lines.some((l) => l.includes('warning') && l.includes(dir) && l.includes('<end_of_turn>')), lines.join('\n'));
}));

test("sppo serve: chat_template_kwargs reach the chat template (over HTTP)", async (t) => {
  const { fixture, noLlama, MODEL } = await import('./serve_helpers.js');
  if (noLlama) return t.skip(noLlama);
  const { Engine } = await import('../src/serve/engine.js');
  const { SppoServer } = await import('../src/serve/server.js');
  const { model, tokenizer } = fixture();
  const template = new ChatTemplate("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if enable_thinking is defined and enable_thinking is false %}<think></think>{% endif %}assistant:", tokenizer.specialTokens);
  const engine = new Engine(model, { tokenizer, seed: 0 });
  const server = new SppoServer(engine, tokenizer, template, { modelName: MODEL });
  await server.listen(0, '127.0.0.1');
  try {
    const ask = async (extra: Record<string, unknown>): Promise<{ status: number; body: any }> => {
      const res = await fetch(`${server.url}/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, temperature: 0, ...extra }),
      });
      return { status: res.status, body: await res.json() };
    };
    const messages = [{ role: 'user', content: 'hi' }];
    const plain = await ask({});
    const off = await ask({ chat_template_kwargs: { enable_thinking: false } });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.equal(plain.body.usage.prompt_tokens, tokenizer.encode(template.render(messages, { addGenerationPrompt: true }), { addSpecialTokens: false }).length);
    assert.equal(off.body.usage.prompt_tokens, tokenizer.encode(template.render(messages, { addGenerationPrompt: true, enable_thinking: false }), { addSpecialTokens: false }).length);
    assert.ok(off.body.usage.prompt_tokens > plain.body.usage.prompt_tokens);
    const bad = await ask({ chat_template_kwargs: 'no' });
    assert.equal(bad.status, 400);
    // vLLM's /tokenize renders messages with the same variables.
    const { post } = await import('./serve_helpers.js');
    const tk = await post(server.url, '/tokenize', { messages, chat_template_kwargs: { enable_thinking: false } });
    assert.equal(tk.status, 200, tk.text);
    assert.equal(tk.body.count, off.body.usage.prompt_tokens);
    assert.equal((await post(server.url, '/tokenize', { messages, chat_template_kwargs: 1 })).status, 400);
  } finally {
    await server.shutdown(1000);
    engine.dispose();
  }
});

test('a text-only remote backend: a response that stopped at the end of its turn ends with <end_of_turn>; with --raw (no chat turn), with EOS', { skip, timeout: 60_000 }, async () => withFolder({}, async (dir) => {
  const { createServer } = await import('node:http');
  const { sppoAsync } = await import('./helpers/cli.js');
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json');
      if (req.url === '/v1/models') return res.end(JSON.stringify({ object: 'list', data: [{ id: 'text-only', object: 'model' }] }));
      const b = JSON.parse(body) as { n: number };
      res.end(JSON.stringify({ choices: Array.from({ length: b.n }, (_, index) => ({ index, text: 'Hi there.', finish_reason: 'stop' })) }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    writeFileSync(join(dir, 'p.jsonl'), '{"prompt":"Say hi."}\n');
    const tok = Tokenizer.fromFolder(dir);
    const template = ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens });
    // The text as it follows the prompt (tokenized alone, "Hi" would get the tokenizer's word boundary).
    const after = (prompt: { text: string; templated: boolean }): number[] => encodePrompt(tok, { ...prompt, text: prompt.text + 'Hi there.' }).slice(encodePrompt(tok, prompt).length);
    const chat = { text: template.render([{ role: 'user', content: 'Say hi.' }], { addGenerationPrompt: true }), templated: true };
    const plain = { text: 'Say hi.', templated: false };
    assert.notDeepEqual(after(chat), tok.encode('Hi there.', { addSpecialTokens: false }), 'the fixture tokenizer starts a text alone with a word boundary');
    for (const [flags, end, prompt] of [[[], END_OF_TURN, chat], [['--raw'], EOS, plain]] as const) {
      const r = await sppoAsync(['generate', '--model', dir, '--prompts', join(dir, 'p.jsonl'), '--out', join(dir, 'o.jsonl'), '--device', 'cpu', '--backend-url', `http://127.0.0.1:${port}/v1`, ...flags]);
      assert.equal(r.status, 0, r.stderr);
      const line = JSON.parse(readFileSync(join(dir, 'o.jsonl'), 'utf8').trim()) as { responses: { token_ids: number[]; finish_reason: string }[] };
      for (const g of line.responses) {
        assert.deepEqual(g.token_ids, [...after(prompt), end], `${flags.join(' ') || 'chat'}: ${JSON.stringify(g)}`);
      }
    }
  } finally {
    server.close();
  }
}));
