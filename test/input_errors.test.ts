// Bad input, as users hand it over: each case gets an error that names the file, line, field or option at fault,
// before any work is done and with no input overwritten. (Found by feeding every command malformed files.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { forEachJsonl, jsonErrorMessage, readJson, readJsonl, readText } from '../src/util/files.js';
import { parseConfig, positionLimit } from '../src/models/config.js';
import { loadModel } from '../src/models/registry.js';
import { checkPromptRoom, generate } from '../src/generate/generate.js';
import { readPairLines } from '../src/sppo/stages/pairs.js';
import { train, type TrainExample } from '../src/sppo/trainer.js';
import { pairByInstruction, readOutputsFile } from '../src/eval/evaluate.js';
import { cuda, tensor } from '../src/torch/index.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { sppoCli, sppoFails } from './helpers/cli.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const gpt2 = join(fixtureRoot, 'gpt2');
const llama = join(fixtureRoot, 'llama');
const skip = existsSync(join(gpt2, 'model.safetensors')) && existsSync(join(llama, 'model.safetensors')) ? false : `no gpt2/llama fixtures under ${fixtureRoot}`;

test('text files: bytes that are not UTF-8 name their line; a byte-order mark is dropped; a folder is said to be one', () => {
  const dir = tempDir('input-text');
  try {
    const latin1 = join(dir, 'latin1.jsonl');
    writeFileSync(latin1, Buffer.concat([Buffer.from('{"prompt": "ok"}\n{"prompt": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
    assert.throws(() => readJsonl(latin1), (e: Error) => e.message === `${latin1}:2: not valid UTF-8 (save the file as UTF-8)`);
    const bom = join(dir, 'bom.jsonl');
    writeFileSync(bom, '\ufeff{"prompt": "a"}\r\n{"prompt": "b"}\r\n');
    assert.deepEqual(readJsonl(bom), [{ prompt: 'a' }, { prompt: 'b' }]);
    assert.equal(readText(bom).charCodeAt(0), '{'.charCodeAt(0));
    assert.throws(() => forEachJsonl(dir, () => {}), (e: Error) => e.message === `${dir}: cannot read (a folder, not a file)`);
    assert.throws(() => readText(join(dir, 'none.json')), /none\.json: cannot read \(no such file\)/);
  } finally {
    removeDir(dir);
  }
});

test('JSON syntax errors give the line and column, not only the character offset', () => {
  const text = '{\n  "a": 1\n  "b": [1, 2]\n}';
  let err: unknown;
  try {
    JSON.parse(text);
  } catch (e) {
    err = e;
  }
  const msg = jsonErrorMessage(text, err);
  const pos = Number(/position (\d+)/.exec((err as Error).message)![1]);
  const before = text.slice(0, pos).split('\n');
  assert.ok(msg.endsWith(`(line ${before.length}, column ${before.at(-1)!.length + 1})`), msg);
  assert.equal(before.length, 3);
  const dir = tempDir('input-json');
  try {
    writeFileSync(join(dir, 'c.json'), text);
    assert.throws(() => readJson(join(dir, 'c.json')), (e: Error) => e.message.startsWith(`${join(dir, 'c.json')}: cannot read (`) && e.message.includes('(line 3, column'));
  } finally {
    removeDir(dir);
  }
});

test('config.json: a field of the wrong type or out of range names the file and the field, never falls back to a default', () => {
  const base = { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 128, vocab_size: 512 };
  const ok = parseConfig({ ...base, rope_theta: 500000, head_dim: null, num_key_value_heads: null }, 'm/config.json');
  assert.equal(ok.rope.theta, 500000);
  assert.equal(ok.headDim, 16);
  assert.equal(ok.numKvHeads, 4);
  const bad: [Record<string, unknown>, string][] = [
    [{ rope_theta: '500000.0' }, 'm/config.json: rope_theta must be a number, got "500000.0"'],
    [{ rope_parameters: { rope_type: 'default', rope_theta: '1e6' } }, 'm/config.json: rope_parameters: rope_theta must be a number, got "1e6"'],
    [{ rms_norm_eps: '1e-05' }, 'm/config.json: rms_norm_eps must be a number, got "1e-05"'],
    [{ hidden_size: '64' }, 'm/config.json: hidden_size must be a number, got "64"'],
    [{ hidden_size: 0 }, 'm/config.json: hidden_size must be a positive whole number, got 0'],
    [{ head_dim: 2.5 }, 'm/config.json: head_dim must be a positive whole number, got 2.5'],
    [{ max_position_embeddings: -5 }, 'm/config.json: max_position_embeddings must be a positive whole number, got -5'],
    [{ num_key_value_heads: 3 }, 'm/config.json: num_attention_heads (4) must be a multiple of num_key_value_heads (3)'],
  ];
  for (const [change, message] of bad) assert.throws(() => parseConfig({ ...base, ...change }, 'm/config.json'), (e: Error) => e.message === message, message);
  assert.throws(() => parseConfig({ ...base, hidden_size: undefined }, 'm/config.json'), /m\/config\.json: missing hidden_size \/ n_embd/);
});

test('positions: past GPT-2\'s learned position embeddings is an error before any work, past a rotary model\'s trained length a warning', { skip }, () => {
  const g = loadModel(gpt2);
  const l = loadModel(llama);
  try {
    const n = g.config.maxPositions;
    assert.equal(positionLimit(g.config, n), null);
    assert.equal(positionLimit(g.config, n + 1)?.learned, true);
    assert.equal(positionLimit(l.config, l.config.maxPositions + 1)?.learned, false);
    const long = Array.from({ length: n - 3 }, (_, i) => 10 + (i % 50));
    assert.throws(() => generate(g, [[5, 6], long], { maxNewTokens: 4 }), (e: Error) => e instanceof RangeError && e.message.startsWith(`generate: prompt 1 has ${n - 3} tokens; with maxNewTokens 4 that is ${n + 1} positions, more than the ${n} the model has`));
    assert.equal(generate(g, [[5, 6], long], { maxNewTokens: 3, temperature: 0 }).length, 2); // exactly n positions fit
    // The model itself refuses a longer sequence, naming it, where aten::embedding would give an index error.
    const ids = tensor(Array.from({ length: n + 1 }, (_, i) => i % 50), { dtype: 'int64' }).unsqueeze(0);
    try {
      assert.throws(() => g.hidden({ inputIds: ids }), (e: Error) => e instanceof RangeError && e.message === `GPT2LMHeadModel: ${n + 1} positions, more than the ${n} the model has (GPT2LMHeadModel's learned position embeddings, config.json n_positions)`);
    } finally {
      ids.dispose();
    }
    // A rotary model: one process warning, naming the code, for any number of calls.
    const warnings: Error[] = [];
    const listen = (w: Error): void => void warnings.push(w);
    process.on('warning', listen);
    checkPromptRoom(l, [[1, 2, 3]], l.config.maxPositions);
    checkPromptRoom(l, [[1, 2, 3]], l.config.maxPositions);
    checkPromptRoom(l, [[1, 2]], l.config.maxPositions - 2);
    // emitWarning delivers on a later tick; the calls above have all run by then.
    return new Promise<void>((resolve, reject) =>
      setImmediate(() => {
        process.off('warning', listen);
        try {
          const ours = warnings.filter((w) => (w as Error & { code?: string }).code === 'SPPO_PAST_MAX_POSITIONS');
          assert.equal(ours.length, 1);
          assert.match(ours[0]!.message, /^generate: prompt 0 has 3 tokens; with maxNewTokens \d+ that is \d+ positions, more than the model's max_position_embeddings/);
          resolve();
        } catch (e) {
          reject(e);
        }
      }),
    );
  } finally {
    g.dispose();
    l.dispose();
  }
});

test('train(): a pair longer than GPT-2\'s positions, or with a token id outside the vocabulary, is refused naming the pair', { skip }, async () => {
  const opts = { policy: gpt2, loss: 'sppo' as const, beta: 0.1, lr: 1e-3, epochs: 1, batchSize: 1, gradAccum: 1, optimizer: 'adamw' as const, warmupRatio: 0, maxPromptLength: 64, maxGradNorm: 1, seed: 0, device: 'cpu' };
  const pair = (chosen: number[]): TrainExample => ({ promptIds: [1, 2, 3], chosenIds: chosen, rejectedIds: [4, 5], chosenWinRate: 0.7, rejectedWinRate: 0.3, chosenOverRejected: 0.6 });
  const n = loadConfigPositions(gpt2);
  const long = Array.from({ length: n }, (_, i) => 10 + (i % 40));
  await assert.rejects(train({ ...opts, maxLength: 1024, examples: [pair([4, 5]), pair(long)] }), (e: Error) => e.message.startsWith(`train: pair 2: ${n + 3} positions, more than the ${n} the model has`) && e.message.endsWith(`set maxLength (sppo train --max-length) to at most ${n}`));
  await assert.rejects(train({ ...opts, maxLength: 128, examples: [pair([4, 99999])] }), (e: Error) => e.message.startsWith('train: pair 1: chosen token id 99999 is outside the model\'s vocabulary (0 to '));
});

function loadConfigPositions(dir: string): number {
  const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  return parseConfig(raw).maxPositions;
}

test('a run\'s pairs.jsonl read back (resumed or edited) is checked field by field, naming the file and the line', () => {
  const dir = tempDir('input-pairs');
  try {
    const good = { index: 0, chosen: 1, rejected: 0, chosen_win_rate: 0.7, rejected_win_rate: 0.3, chosen_over_rejected: 0.6, degenerate: false, prompt_ids: [1, 2], chosen_ids: [3], rejected_ids: [4], chosen_ref_logprob: -1.5 };
    const path = join(dir, 'pairs.jsonl');
    const cases: [Record<string, unknown>, string][] = [
      [{ chosen_win_rate: undefined }, 'chosen_win_rate must be a number in [0, 1], and is missing'],
      [{ rejected_win_rate: 1.5 }, 'rejected_win_rate must be a number in [0, 1], got 1.5'],
      [{ chosen_ids: [3, -1] }, 'chosen_ids must be a list of token ids (whole numbers >= 0), got [3,-1]'],
      [{ prompt_ids: [] }, 'prompt_ids must be a list of token ids (whole numbers >= 0), not empty, got []'],
      [{ degenerate: 'no' }, 'degenerate must be true or false, got "no"'],
      [{ chosen_ref_logprob: 'x' }, 'chosen_ref_logprob must be a finite number, got "x"'],
    ];
    for (const [change, message] of cases) {
      writeFileSync(path, `${JSON.stringify(good)}\n${JSON.stringify({ ...good, ...change })}\n`);
      assert.throws(() => readPairLines(path), (e: Error) => e.message === `${path}:2: ${message}`, message);
    }
    writeFileSync(path, `${JSON.stringify(good)}\n`);
    assert.deepEqual(readPairLines(path), [good]);
  } finally {
    removeDir(dir);
  }
});

test('eval: an output with no reference names its file and line and the reference file', () => {
  const dir = tempDir('input-eval');
  try {
    const outs = join(dir, 'outs.jsonl');
    const refs = join(dir, 'refs.json');
    writeFileSync(outs, ['{"instruction": "a", "output": "x"}', '', '{"instruction": "b", "output": "y"}'].join('\n') + '\n');
    writeFileSync(refs, JSON.stringify([{ instruction: 'a', output: 'r' }]));
    assert.throws(() => pairByInstruction(readOutputsFile(outs), readOutputsFile(refs)), (e: Error) => e.message === `${outs}:3: no reference output in ${refs} for the instruction "b"`);
    writeFileSync(refs, JSON.stringify([{ instruction: 'a', output: 'r' }, { instruction: 'b' }]));
    assert.throws(() => readOutputsFile(refs), (e: Error) => e.message === `${refs}: record 2: no "output" string (or "responses"[0].text)`);
  } finally {
    removeDir(dir);
  }
});

test('the CLI refuses an output that is one of its inputs, or an existing folder, before any work; inputs stay as they were', { skip }, () => {
  const dir = tempDir('input-out');
  try {
    const prompts = join(dir, 'p.jsonl');
    const text = '{"prompt": "Hello"}\n';
    writeFileSync(prompts, text);
    sppoFails(['generate', '--model', llama, '--prompts', prompts, '--out', prompts, '--max-new-tokens', '2'], 2, /--out .*p\.jsonl is the --prompts input: writing it would replace what the command reads; give another path/);
    assert.equal(readFileSync(prompts, 'utf8'), text);
    mkdirSync(join(dir, 'folder'));
    sppoFails(['generate', '--model', llama, '--prompts', prompts, '--out', join(dir, 'folder'), '--max-new-tokens', '2'], 2, /--out .*folder is a folder; give a file path/);
    const gens = join(dir, 'g.jsonl');
    const gensText = `${JSON.stringify({ prompt: 'Hi', responses: [{ text: 'a', token_ids: [1] }, { text: 'b', token_ids: [2] }] })}\n`;
    writeFileSync(gens, gensText);
    writeFileSync(join(dir, 'judge.mjs'), 'export function prefer(p, a, b) { return a.length >= b.length ? 0.6 : 0.4; }\n');
    sppoFails(['judge', '--judge', join(dir, 'judge.mjs'), '--generations', gens, '--out', join(dir, '.', 'g.jsonl')], 2, /is the --generations input/);
    assert.equal(readFileSync(gens, 'utf8'), gensText);
    const model = join(dir, 'model');
    cpSync(llama, model, { recursive: true });
    const weights = readFileSync(join(model, 'model.safetensors'));
    const pairs = join(dir, 'pairs.jsonl');
    writeFileSync(pairs, '{"prompt": "Hi", "chosen": "a", "rejected": "b"}\n');
    sppoFails(['train', '--model', model, '--pairs', pairs, '--out', model], 2, /--out .*model is the --model input/);
    assert.ok(readFileSync(join(model, 'model.safetensors')).equals(weights));
  } finally {
    removeDir(dir);
  }
});

test('the CLI: prompts too long for GPT-2 name their line; --dtype float16 and --device cuda where they cannot run are usage errors', { skip }, () => {
  const dir = tempDir('input-len');
  try {
    const prompts = join(dir, 'p.jsonl');
    writeFileSync(prompts, '{"prompt": "Hi"}\n' + JSON.stringify({ prompt: 'word '.repeat(400) }) + '\n');
    const where = `${prompts}:2: `.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    sppoFails(['generate', '--model', gpt2, '--prompts', prompts, '--out', join(dir, 'o.jsonl'), '--max-new-tokens', '8', '--device', 'cpu'], 1, new RegExp(`${where}the prompt has \\d+ tokens; with --max-new-tokens 8 that is \\d+ positions, more than the 128 the model has .*: shorten it or lower --max-new-tokens`));
    assert.equal(existsSync(join(dir, 'o.jsonl')), false);
    sppoFails(['serve', gpt2, '--max-model-len', '1000', '--device', 'cpu'], 2, /--max-model-len 1000: 1000 positions, more than the 128 the model has/);
    // float16 on the CPU: PyTorch 2's libtorch has its matrix product, 1.13's does not; either it runs or it is refused up front.
    const half = sppoCli(['generate', '--model', llama, '--prompts', prompts, '--out', join(dir, 'h.jsonl'), '--max-new-tokens', '2', '--dtype', 'float16', '--device', 'cpu']);
    if (half.status !== 0) {
      assert.equal(half.status, 2, half.stderr);
      assert.match(half.stderr, /--dtype float16: this libtorch \([^)]+\) has no float16 matrix product on the CPU; use bfloat16 or float32 there/);
    } else assert.equal(readFileSync(join(dir, 'h.jsonl'), 'utf8').trim().split('\n').length, 2);
    if (!cuda.isAvailable()) sppoFails(['generate', '--model', llama, '--prompts', prompts, '--out', join(dir, 'c.jsonl'), '--device', 'cuda'], 2, /--device cuda: no CUDA device here \(this libtorch, [^,]+, (sees no GPU|is built without CUDA)\)/);
  } finally {
    removeDir(dir);
  }
});

test('a tokenizer.json whose model type the library does not implement is refused naming it; --min-new-tokens above --max-new-tokens is a usage error', { skip }, () => {
  const dir = tempDir('input-tok');
  try {
    const folder = join(dir, 'm');
    cpSync(llama, folder, { recursive: true });
    const tj = JSON.parse(readFileSync(join(folder, 'tokenizer.json'), 'utf8')) as { model: { type: string } };
    tj.model.type = 'WordLevel';
    writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(tj));
    assert.throws(() => Tokenizer.fromFolder(folder), (e: Error) => e.message === `${join(folder, 'tokenizer.json')}: model.type "WordLevel" is not supported (BPE, WordPiece, Unigram)`);
    const prompts = join(dir, 'p.jsonl');
    writeFileSync(prompts, '{"prompt": "Hi"}\n');
    sppoFails(['generate', '--model', llama, '--prompts', prompts, '--out', join(dir, 'o.jsonl'), '--min-new-tokens', '9', '--max-new-tokens', '4'], 2, /--min-new-tokens 9 is more than --max-new-tokens 4/);
  } finally {
    removeDir(dir);
  }
});
