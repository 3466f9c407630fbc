// `sppo generate` (run as a process, as a user runs it): JSONL in, JSONL out (atomically), errors naming the
// file and line; the prompt lines read by the library's readPromptLines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPromptLines } from '../src/sppo/prompts.js';
import { sppoFails, sppoOk } from './helpers/cli.js';
import { assertSameJsonlUpToLogprobs } from './helpers/artifacts.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const model = join(fixtureRoot, 'qwen2');
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no qwen2 fixture at ${model}`;

test('sppo generate writes n responses per prompt, reproducibly', { skip }, async () => {
  const dir = tempDir('gen-cli');
  try {
    const prompts = join(dir, 'p.jsonl');
    writeFileSync(prompts, ['{"id": "a", "prompt": "Hello there"}', '', '{"id": "b", "messages": [{"role": "user", "content": "Sort 3 1 2"}]}', '{"prompt": "x"}'].join('\n') + '\n');
    const args = ['--model', model, '--prompts', prompts, '-n', '3', '--max-new-tokens', '6', '--seed', '5', '--temperature', '0.9', '--top-p', '0.95', '--batch-size', '2', '--device', 'cpu'];
    sppoOk(['generate', ...args, '--out', join(dir, 'o1.jsonl')]);
    sppoOk(['generate', ...args, '--out', join(dir, 'o2.jsonl')]);
    const o1 = readFileSync(join(dir, 'o1.jsonl'), 'utf8');
    assert.equal(readFileSync(join(dir, 'o2.jsonl'), 'utf8'), o1);
    // The graph-ready static step (run eagerly on the CPU) writes the same responses as the op-by-op loop, its
    // log-probs to rounding (it sums over the cache's capacity: test/generate_decode_step.test.ts).
    sppoOk(['generate', ...args, '--graph', 'on', '--out', join(dir, 'o3.jsonl')]);
    assertSameJsonlUpToLogprobs(join(dir, 'o3.jsonl'), join(dir, 'o1.jsonl'), 'sppo generate --graph on vs off');
    const lines = o1.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    assert.deepEqual(lines.map((l) => l.id), ['a', 'b', undefined]);
    assert.ok(lines[1].prompt_text.includes('<|im_start|>user\nSort 3 1 2<|im_end|>'));
    for (const l of lines) {
      assert.equal(l.responses.length, 3);
      for (const r of l.responses) {
        assert.equal(r.token_ids.length, r.logprobs.length);
        assert.ok(['eos', 'stop', 'length'].includes(r.finish_reason));
        assert.equal(typeof r.text, 'string');
      }
    }
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
  } finally {
    removeDir(dir);
  }
});

test('sppo generate --mixture DIR --mixture-coef C: C = 1 samples what DIR samples alone, C = 0.5 neither model\'s tokens; bad mixtures are usage errors', { skip }, async () => {
  const dir = tempDir('gen-cli-mix');
  try {
    const llama = join(fixtureRoot, 'llama'); // the same vocabulary and tokenizer as qwen2's fixture
    const prompts = join(dir, 'p.jsonl');
    writeFileSync(prompts, ['{"prompt": "Hello there"}', '{"prompt": "Sort 3 1 2"}'].join('\n') + '\n');
    const args = ['--prompts', prompts, '-n', '2', '--max-new-tokens', '6', '--seed', '3', '--raw', '--device', 'cpu'];
    const tokens = (out: string): number[][] => readFileSync(out, 'utf8').trim().split('\n').flatMap((l) => JSON.parse(l).responses.map((r: { token_ids: number[] }) => r.token_ids));
    sppoOk(['generate', '--model', model, ...args, '--out', join(dir, 'q.jsonl')]);
    sppoOk(['generate', '--model', llama, ...args, '--out', join(dir, 'l.jsonl')]);
    sppoOk(['generate', '--model', model, '--mixture', llama, '--mixture-coef', '1', ...args, '--out', join(dir, 'm1.jsonl')]);
    assert.deepEqual(tokens(join(dir, 'm1.jsonl')), tokens(join(dir, 'l.jsonl')));
    sppoOk(['generate', '--model', model, '--mixture', llama, '--mixture-coef', '0.5', ...args, '--temperature', '0', '--out', join(dir, 'mh.jsonl')]);
    sppoOk(['generate', '--model', model, ...args, '--temperature', '0', '--out', join(dir, 'qg.jsonl')]);
    sppoOk(['generate', '--model', llama, ...args, '--temperature', '0', '--out', join(dir, 'lg.jsonl')]);
    assert.notDeepEqual(tokens(join(dir, 'mh.jsonl')), tokens(join(dir, 'qg.jsonl')));
    assert.notDeepEqual(tokens(join(dir, 'mh.jsonl')), tokens(join(dir, 'lg.jsonl')));
    sppoFails(['generate', '--model', model, '--mixture', llama, ...args, '--out', join(dir, 'x.jsonl')], 2, /--mixture and --mixture-coef go together/);
    sppoFails(['generate', '--model', model, '--mixture', llama, '--mixture-coef', '2', ...args, '--out', join(dir, 'x.jsonl')], 2, /--mixture-coef/);
    sppoFails(['generate', '--model', model, '--mixture', join(dir, 'nowhere'), '--mixture-coef', '0.5', ...args, '--out', join(dir, 'x.jsonl')], 2, /--mixture/);
    assert.ok(!existsSync(join(dir, 'x.jsonl')));
  } finally {
    removeDir(dir);
  }
});

test('sppo generate: a malformed line stops with the file and line number; bad options are usage errors', { skip }, async () => {
  const dir = tempDir('gen-cli-bad');
  try {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "ok"}\n\n{"prompt": 3}\n');
    assert.throws(() => readPromptLines(bad), /bad\.jsonl:3: expected "prompt"/);
    writeFileSync(bad, '{"prompt": "ok"}\n{oops\n');
    sppoFails(['generate', '--model', model, '--prompts', bad, '--out', join(dir, 'o.jsonl')], 1, /bad\.jsonl:2: not valid JSON/);
    assert.ok(!existsSync(join(dir, 'o.jsonl')));
    writeFileSync(bad, '{"messages": [{"content": "no role"}]}\n');
    assert.throws(() => readPromptLines(bad), /bad\.jsonl:1: messages\[0\]/);
    assert.throws(() => readPromptLines(join(dir, 'none.jsonl')), /none\.jsonl does not exist/);
    sppoFails(['generate', '--model', model, '--prompts', bad], 2, /--out/);
    sppoFails(['generate', '--model', model, '--prompts', bad, '--out', 'x', '--top-p', '0'], 2, /--top-p/);
    sppoFails(['generate', '--model', model, '--prompts', bad, '--out', 'x', '--graph', 'always'], 2, /--graph must be auto, on or off/);
    sppoFails(['generate', '--model', model, '--prompts', join(dir, 'none.jsonl'), '--out', 'x'], 2, /--prompts: .*none\.jsonl does not exist/);
    sppoFails(['generate', '--bogus'], 2);
  } finally {
    removeDir(dir);
  }
});

test('sppo generate --repetition-penalty, --presence-penalty, --frequency-penalty: the library\'s penalised generation; out-of-range values are usage errors', { skip }, async () => {
  const dir = tempDir('gen-cli-pen');
  try {
    const prompts = join(dir, 'p.jsonl');
    writeFileSync(prompts, ['{"prompt": "Hello there"}', '{"prompt": "Sort 3 1 2"}'].join('\n') + '\n');
    const args = ['--model', model, '--prompts', prompts, '--max-new-tokens', '10', '--temperature', '0', '--raw', '--device', 'cpu'];
    const tokens = (out: string): number[][] => readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l).responses[0].token_ids);
    sppoOk(['generate', ...args, '--out', join(dir, 'plain.jsonl')]);
    sppoOk(['generate', ...args, '--repetition-penalty', '0.6', '--presence-penalty=-1', '--frequency-penalty', '0.5', '--out', join(dir, 'pen.jsonl')]);
    const { loadModel } = await import('../src/models/index.js');
    const { generate } = await import('../src/generate/index.js');
    const { Tokenizer } = await import('../src/text/tokenizer.js');
    const tok = Tokenizer.fromFolder(model);
    const m = loadModel(model);
    try {
      const ids = ['Hello there', 'Sort 3 1 2'].map((t) => tok.encode(t, { addSpecialTokens: true }));
      const want = generate(m, ids, { temperature: 0, maxNewTokens: 10, tokenizer: tok, repetitionPenalty: 0.6, presencePenalty: -1, frequencyPenalty: 0.5 }).map((g) => g.tokens);
      assert.deepEqual(tokens(join(dir, 'pen.jsonl')), want);
      assert.notDeepEqual(tokens(join(dir, 'plain.jsonl')), want);
    } finally {
      m.dispose();
    }
    sppoFails(['generate', ...args, '--repetition-penalty', '0', '--out', join(dir, 'x.jsonl')], 2, /--repetition-penalty must be a number > 0/);
    sppoFails(['generate', ...args, '--presence-penalty', '2.5', '--out', join(dir, 'x.jsonl')], 2, /--presence-penalty must be a number in \[-2, 2\]/);
  } finally {
    removeDir(dir);
  }
});
