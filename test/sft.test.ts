// Supervised fine-tuning: response-only loss, the loss falls, `sppo sft` (run as a process) from random weights and
// from a folder; the data read by the library's readSftData.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSftData, sft, sftLoss, truncateExample } from '../src/sppo/sft.js';
import { sppoFails, sppoOk } from './helpers/cli.js';
import { loadModel } from '../src/models/registry.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { ChatTemplate } from '../src/text/chat_template.js';
import { writeTokenizerFolder, llamaConfig } from '../src/demo/tokenizer.js';
import { hfTiny } from './helpers/fixtures.js';
import { tensor, tidy } from '../src/torch/index.js';
import { removeDir, tempDir } from './text_helpers.js';
import { LOGPROB32 } from './helpers/tolerances.js';

const fixture = join(hfTiny, 'llama');
const skip = existsSync(join(fixture, 'model.safetensors')) ? false : `no fixture at ${fixture}`;

test('sft: the loss is the mean over response tokens only, and training lowers it', { skip }, async () => {
  const model = loadModel(fixture, { dtype: 'float32', device: 'cpu' });
  try {
    const ex = [{ promptIds: [5, 6, 7, 8], responseIds: [9, 10, 2] }, { promptIds: [11, 12], responseIds: [13, 2] }];
    const before = sftLoss(model, ex);
    // Only response tokens count: the loss equals minus the mean of the per-token log-probs at the response positions.
    const lp = tidy(() => model.tokenLogprobs({ inputIds: tensor(BigInt64Array.from([5, 6, 7, 8, 9, 10, 2].map(BigInt)), { shape: [1, 7] }) }).toArray() as number[][]);
    const one = sftLoss(model, [ex[0]!]);
    // The same float32 log-probs, possibly in another reduction order (LOGPROB32 each, averaged).
    assert.ok(Math.abs(one - -(lp[0]![3]! + lp[0]![4]! + lp[0]![5]!) / 3) <= LOGPROB32, `${one}`);
    assert.ok(Number.isFinite(before) && before > 0);
    const r = await sft({ model, examples: ex, lr: 1e-2, epochs: 20, batchSize: 2, seed: 0, warmupRatio: 0, schedule: 'constant', device: 'cpu', dtype: 'float32' });
    assert.equal(r.steps, 20);
    const after = sftLoss(model, ex);
    assert.ok(after < before * 0.5, `${before} -> ${after}`);
    assert.ok(r.metrics.at(-1)!.loss < r.metrics[0]!.loss);
  } finally {
    model.dispose();
  }
  assert.deepEqual(truncateExample({ promptIds: [1, 2, 3, 4], responseIds: [5, 6] }, 4), { promptIds: [3, 4], responseIds: [5, 6] });
  assert.deepEqual(truncateExample({ promptIds: [1, 2], responseIds: [5, 6, 7, 8] }, 3), { promptIds: [2], responseIds: [5, 6] });
});

test('sppo sft --init: random weights of a config, demo tokenizer, learns a fixed answer; errors name file:line', async () => {
  const dir = tempDir('sft-cli');
  try {
    const tokDir = join(dir, 'tok');
    writeTokenizerFolder(tokDir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(llamaConfig({ hidden: 32, layers: 1, heads: 2, intermediate: 64 })));
    const data = join(dir, 'data.jsonl');
    const rows = Array.from({ length: 16 }, (_, i) => (i % 2 ? { prompt: `Add ${i}+1.`, response: `It is ${i + 1}.` } : { messages: [{ role: 'user', content: `Add ${i}+1.` }, { role: 'assistant', content: `It is ${i + 1}.` }] }));
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(dir, 'out');
    const metrics = join(dir, 'm.jsonl');
    sppoOk(['sft', '--init', join(dir, 'config.json'), '--tokenizer', tokDir, '--data', data, '--out', out, '--lr', '1e-2', '--epochs', '6', '--batch-size', '8',
      '--metrics', metrics, '--device', 'cpu', '--seed', '3']);
    const m = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss: number });
    assert.equal(m.length, 12);
    assert.ok(m.at(-1)!.loss < m[0]!.loss * 0.6, `${m[0]!.loss} -> ${m.at(-1)!.loss}`);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'generation_config.json']) assert.ok(existsSync(join(out, f)), f);
    // continue from the folder (--model), one more epoch
    const out2 = join(dir, 'out2');
    sppoOk(['sft', '--model', out, '--data', data, '--out', out2, '--lr', '1e-3', '--device', 'cpu']);
    const tok = Tokenizer.fromFolder(out2);
    const chat = ChatTemplate.fromFolder(out2, { specialTokens: tok.specialTokens });
    const model = loadModel(out2);
    try {
      const p = tok.encode(chat.render([{ role: 'user', content: 'Add 3+1.' }], { addGenerationPrompt: true }), { addSpecialTokens: false });
      const loss = sftLoss(model, [{ promptIds: p, responseIds: [...tok.encode('It is 4.', { addSpecialTokens: false }), tok.eosTokenId!] }]);
      assert.ok(loss < m[0]!.loss, `${loss}`);
    } finally {
      model.dispose();
    }
    writeFileSync(data, '{"prompt": "x", "response": "y"}\n{"prompt": "x"}\n');
    await assert.rejects(readSftData(data), /data\.jsonl:2: "response" \(or "completion"\) must be a string/);
    writeFileSync(data, '{"prompt": "x", "response": "y"}\nnot json\n');
    await assert.rejects(readSftData(data), /data\.jsonl:2: not valid JSON/);
    sppoFails(['sft', '--data', data, '--out', out], 2, /exactly one of --model/);
  } finally {
    removeDir(dir);
  }
});
