// `sppo train` (run as a process, as a user runs it): pairs JSONL in, a trained HF folder and per-step metrics
// out; usage errors. The pairs file is read by the library's readPairs (src/sppo/pairs_file.ts), errors naming file:line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPairs, tokenizePairs } from '../src/sppo/pairs_file.js';
import { sppoFails, sppoOk } from './helpers/cli.js';
import { loadModel } from '../src/models/registry.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { hfTiny } from './helpers/fixtures.js';
import { removeDir, tempDir } from './text_helpers.js';

const model = join(hfTiny, 'llama');
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no fixture at ${model}`;

function pairsFile(dir: string): string {
  const p = join(dir, 'pairs.jsonl');
  const lines = [
    { prompt: 'Q: what is 2+2?\nA:', chosen: ' 4.', rejected: ' five, probably', chosen_win_rate: 0.8, rejected_win_rate: 0.2, chosen_over_rejected: 0.9 },
    { prompt: 'Q: sky colour?\nA:', chosen: ' blue', rejected: ' green', chosen_win_rate: 0.7, rejected_win_rate: 0.3 },
    { prompt: 'Say hi.', chosen: ' Hi!', rejected: ' No.', chosen_win_rate: 0.6, rejected_win_rate: 0.4 },
    { prompt: 'Count: 1 2', chosen: ' 3 4', rejected: ' 9', chosen_win_rate: 0.9, rejected_win_rate: 0.1 },
  ];
  writeFileSync(p, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return p;
}

test('sppo train: trains, writes metrics and a loadable HF folder', { skip }, async () => {
  const dir = tempDir('train-cli');
  try {
    const pairs = pairsFile(dir);
    const out = join(dir, 'out');
    const metrics = join(dir, 'm.jsonl');
    sppoOk(['train', '--model', model, '--pairs', pairs, '--out', out, '--beta', '0.1', '--lr', '1e-5', '--epochs', '4', '--batch-size', '2', '--grad-accum', '2',
      '--warmup-ratio', '0', '--schedule', 'constant', '--metrics', metrics, '--device', 'cpu']);
    const m = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(m.length, 4);
    assert.ok(m[3].loss < m[0].loss, `${m[0].loss} -> ${m[3].loss}`);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(existsSync(join(out, f)), f);
    const trained = loadModel(out);
    const orig = loadModel(model);
    const a = trained.namedParameters()[1]![1];
    const b = orig.namedParameters()[1]![1];
    assert.ok(!a.equal(b), 'the weights changed');
    trained.dispose();
    orig.dispose();
  } finally {
    removeDir(dir);
  }
});

test('sppo train: text pairs tokenized as they follow the prompt, EOS appended; malformed pairs name file:line', { skip }, async () => {
  const dir = tempDir('train-cli');
  try {
    const pairs = pairsFile(dir);
    const tok = Tokenizer.fromFolder(model);
    const ex = tokenizePairs(tok, await readPairs(pairs, 'sppo'), true);
    assert.deepEqual(ex[0]!.promptIds, tok.encode('Q: what is 2+2?\nA:', { addSpecialTokens: false }));
    assert.deepEqual(ex[0]!.chosenIds, [...tok.encode(' 4.', { addSpecialTokens: false }), tok.eosTokenId]);
    assert.equal(ex[0]!.chosenOverRejected, 0.9);
    assert.deepEqual(tokenizePairs(tok, await readPairs(pairs, 'sppo'), false)[0]!.chosenIds, tok.encode(' 4.', { addSpecialTokens: false }));
    // sppo_single needs chosen_over_rejected, which line 2 lacks.
    await assert.rejects(readPairs(pairs, 'sppo_single'), /pairs\.jsonl:2: "chosen_over_rejected" \(or "chosen_probs", the official SPPO pipeline's name\) is required by the sppo_single loss/);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "p", "chosen": "a", "rejected": "b", "chosen_win_rate": 1.2, "rejected_win_rate": 0}\n');
    await assert.rejects(readPairs(bad, 'sppo'), /bad\.jsonl:1: "chosen_win_rate" must be a probability/);
    writeFileSync(bad, '\n{"prompt": "p", "chosen": 1}\n');
    await assert.rejects(readPairs(bad, 'dpo'), /bad\.jsonl:2: "chosen" must be a string/);
    // dpo does not need win rates.
    writeFileSync(bad, '{"prompt": "p", "chosen": "a", "rejected": "b"}\n');
    assert.equal((await readPairs(bad, 'dpo')).length, 1);
  } finally {
    removeDir(dir);
  }
});

test('sppo train: usage errors', () => {
  sppoFails(['train', '--pairs', 'x', '--out', 'y'], 2, /--model is required/);
  sppoFails(['train', '--model', 'm', '--pairs', 'x', '--out', 'y', '--loss', 'kto'], 2, /--loss must be one of/);
  sppoFails(['train', '--model', 'm', '--pairs', 'x', '--out', 'y', '--beta', '0'], 2, /--beta/);
  sppoFails(['train', '--model', 'm', '--pairs', 'x', '--out', 'y', '--label-smoothing', '0.1'], 2, /dpo only/);
  sppoFails(['train', '--model', 'm', '--pairs', 'x', '--out', 'y', '--optimizer', 'sgd'], 2);
});

test('sppo train --loss mpo --tau --magnet trains toward the magnet; the last-iterate losses say what they need', { skip }, () => {
  sppoFails(['train', '--model', model, '--pairs', 'x', '--out', 'y', '--loss', 'mpo'], 2, /--loss mpo needs --tau > 0/);
  sppoFails(['train', '--model', model, '--pairs', 'x', '--out', 'y', '--loss', 'nash-md', '--tau', '0.1'], 2, /needs --magnet DIR/);
  sppoFails(['train', '--model', model, '--pairs', 'x', '--out', 'y', '--tau', '0.1'], 2, /apply to --loss mpo, nash-md and extragradient only/);
  const dir = tempDir('train-cli-mpo');
  try {
    const pairs = pairsFile(dir);
    const metrics = join(dir, 'm.jsonl');
    sppoOk(['train', '--model', model, '--pairs', pairs, '--out', join(dir, 'out'), '--loss', 'mpo', '--tau', '0.5', '--magnet', model, '--beta', '0.1', '--lr', '1e-5',
      '--epochs', '2', '--batch-size', '4', '--warmup-ratio', '0', '--schedule', 'constant', '--metrics', metrics, '--device', 'cpu']);
    const m = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    // Step 1, policy = reference = magnet (a = 0, m = 0): the loss is the mean of (T_w^2 + T_l^2) / 2, T = eta (P - 1/2) / (1 + eta tau).
    const T = (p: number): number => (10 * (p - 0.5)) / (1 + 10 * 0.5);
    const expected = [[0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.9, 0.1]].reduce((s, [w, l]) => s + (T(w!) ** 2 + T(l!) ** 2) / 2, 0) / 4;
    assert.ok(Math.abs(m[0].loss - expected) < 1e-3 * expected, `${m[0].loss} vs ${expected}`);
    const omwu = join(dir, 'omwu.jsonl');
    writeFileSync(omwu, JSON.stringify({ prompt: 'Say hi.', chosen: ' Hi!', rejected: ' No.', chosen_win_rate: 0.6, rejected_win_rate: 0.4 }) + '\n');
    sppoFails(['train', '--model', model, '--pairs', omwu, '--out', join(dir, 'o'), '--loss', 'omwu', '--device', 'cpu'], 1, /"chosen_prev_win_rate" is required by the omwu loss/);
  } finally {
    removeDir(dir);
  }
});

test('sppo train --lora-r: merged model in OUT, PEFT adapter in --adapter-out; sppo merge of that adapter gives the same model', { skip }, () => {
  const dir = tempDir('train-cli-lora');
  try {
    const pairs = pairsFile(dir);
    const out = join(dir, 'out');
    const adapter = join(dir, 'adapter');
    const metrics = join(dir, 'm.jsonl');
    sppoOk(['train', '--model', model, '--pairs', pairs, '--out', out, '--beta', '0.1', '--lr', '1e-2', '--optimizer', 'adamw', '--epochs', '4', '--batch-size', '4',
      '--warmup-ratio', '0', '--schedule', 'constant', '--metrics', metrics, '--device', 'cpu',
      '--lora-r', '4', '--lora-alpha', '8', '--lora-dropout', '0.05', '--lora-target-modules', 'q_proj,v_proj,down_proj', '--adapter-out', adapter]);
    const m = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(m[3].loss < m[0].loss, `${m[0].loss} -> ${m[3].loss}`);
    const cfg = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));
    assert.deepEqual([cfg.peft_type, cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules], ['LORA', 4, 8, 0.05, ['down_proj', 'q_proj', 'v_proj']]);
    const merged = join(dir, 'merged');
    sppoOk(['merge', model, adapter, merged]);
    const a = loadModel(out);
    const b = loadModel(merged);
    const orig = loadModel(model);
    try {
      const pa = new Map(a.namedParameters());
      const po = new Map(orig.namedParameters());
      for (const [n, t] of b.namedParameters()) {
        // The same float32 merge (W + s B A) of the same weights, by the trainer and by sppo merge: bit for bit.
        assert.ok(t.equal(pa.get(n)!), `${n}: sppo merge differs from sppo train's merged model`);
        const adapted = /layers\.\d+\.(self_attn\.[qv]_proj|mlp\.down_proj)\.weight$/.test(n);
        assert.equal(!t.equal(po.get(n)!), adapted, `${n}: ${adapted ? 'unchanged' : 'changed'}`);
      }
    } finally {
      a.dispose();
      b.dispose();
      orig.dispose();
    }
    sppoFails(['merge', model, adapter, merged], 2, /exists/);
    sppoFails(['merge', model, join(dir, 'none'), join(dir, 'x')], 2, /ADAPTER: .* does not exist/);
    sppoFails(['merge', model, model, join(dir, 'x')], 2, /ADAPTER: .* has no adapter_config\.json: not a PEFT adapter/);
  } finally {
    removeDir(dir);
  }
});

test('sppo train: LoRA usage errors', () => {
  sppoFails(['train', '--model', 'm', '--pairs', 'x', '--out', 'y', '--lora-alpha', '8'], 2, /--lora-alpha needs --lora-r/);
  sppoFails(['train', '--model', 'm', '--pairs', 'x', '--out', 'y', '--lora-r', '0'], 2, /--lora-r must be an integer/);
  sppoFails(['merge', 'a'], 2, /expected \[BASE\] ADAPTER OUT, got 1 argument\n/);
});
