// `sppo run` end to end on a tiny fixture model with a programmatic judge (prefers responses containing a
// given token): after 2 iterations the model beats the starting model by more than twice the standard error,
// as `sppo eval` measures it; the iterative DPO and IPO baselines run through the same loop.
//
// Settings for the tiny (150k-parameter, random-weight) llama fixture: K = 8 samples of 16 tokens at
// temperature 1, 48 prompts per iteration, AdamW lr 3e-3, beta 0.1 (the paper's 1e-3 is for 7B models),
// 2 epochs of batch 8, no warmup. The judge's token 'given' is one the fixture samples in a few percent of
// its responses, so the pairs carry signal and the model can learn to say it more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSppo } from '../src/sppo/loop.js';
import type { SppoConfigInput } from '../src/sppo/config.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';
import { LOGPROB32 } from './helpers/tolerances.js';
import { sppoCli, type CliResult } from './helpers/cli.js';
import { LIKES_TOKEN_JUDGE } from './helpers/judges.js';

const model = join(fixtureRoot, 'llama');
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no llama fixture at ${model}`;

const JUDGE = LIKES_TOKEN_JUDGE;

const TOPICS = ['cats', 'dogs', 'the sea', 'numbers', 'music', 'stars', 'bread', 'rain'];

function writePrompts(path: string, n: number, prefix: string): void {
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ id: `${prefix}${i}`, prompt: `${prefix} ${i}: say something about ${TOPICS[i % TOPICS.length]}.` }));
  writeFileSync(path, lines.join('\n') + '\n');
}

function config(loss: string, k: number, evalCount: number): string {
  return [
    `model: ${JSON.stringify(model)}`,
    'prompts: prompts.jsonl',
    `runDir: run-${loss}`,
    'judge: { kind: module, path: judge.mjs, options: { token: given } }',
    'iterations: 2',
    'seed: 3',
    'device: cpu',
    'promptsPerIteration: 48',
    `generation: { k: ${k}, temperature: 1, topP: 1, maxNewTokens: 16, batchSize: 16 }`,
    `training: { loss: ${loss}, beta: 0.1, lr: 0.003, optimizer: adamw, epochs: 2, batchSize: 8, maxLength: 64, maxPromptLength: 48, warmupRatio: 0 }`,
    `eval: { count: ${evalCount} }`,
  ].join('\n') + '\n';
}

const node = (args: string[], cwd: string): CliResult => sppoCli(args, { cwd, env: { SPPO_TEST_KILL_AT: '' } });

test('sppo run (SPPO, 2 iterations): iteration 2 beats the starting model by > 2 standard errors in sppo eval', { skip }, () => {
  const dir = tempDir('loop');
  try {
    writeFileSync(join(dir, 'judge.mjs'), JUDGE);
    writePrompts(join(dir, 'prompts.jsonl'), 256, 'Question');
    writeFileSync(join(dir, 'sppo.yaml'), config('sppo', 8, 128));
    const r = node(['run', 'sppo.yaml'], dir);
    assert.equal(r.status, 0, r.stderr);
    const run = join(dir, 'run-sppo');
    for (const t of [1, 2]) {
      for (const f of ['generations.jsonl', 'preferences.jsonl', 'pairs.jsonl', 'train-metrics.jsonl', 'eval-responses.jsonl', 'eval.json', 'checkpoint/model.safetensors', 'checkpoint/config.json', 'checkpoint/tokenizer.json']) {
        assert.ok(existsSync(join(run, `iter-${t}`, f)), `iter-${t}/${f}`);
      }
      assert.ok(!existsSync(join(run, `iter-${t}`, 'partial')), 'chunks removed once a stage is done');
    }
    assert.ok(existsSync(join(run, 'iter-0/eval-responses.jsonl')));

    // Artifacts have the documented shape.
    const gens = readFileSync(join(run, 'iter-1/generations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(gens.length, 48);
    for (const g of gens) {
      assert.equal(g.responses.length, 8);
      for (const x of g.responses) assert.ok(x.token_ids.length >= 1 && x.token_ids.length <= 16 && Number.isFinite(x.logprob) && x.logprob < 0);
    }
    const prefs = readFileSync(join(run, 'iter-1/preferences.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    for (const p of prefs) {
      assert.equal(p.matrix.length, 8);
      assert.ok(Math.abs(p.win_rates.reduce((a: number, x: number) => a + x, 0) - 4) < 1e-9, 'win rates sum to K/2');
    }
    const pairs = readFileSync(join(run, 'iter-1/pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(pairs.length, 48);
    for (const p of pairs) {
      assert.ok(p.chosen_win_rate >= p.rejected_win_rate);
      assert.ok(Number.isFinite(p.chosen_ref_logprob) && Number.isFinite(p.rejected_ref_logprob), 'float32: reference log-probs from generation');
    }
    const metrics = readFileSync(join(run, 'iter-1/train-metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(metrics.length >= 2 && metrics.every((m) => Number.isFinite(m.loss) && !('tokens_per_s' in m)));
    const loopEval = JSON.parse(readFileSync(join(run, 'iter-2/eval.json'), 'utf8'));
    assert.equal(loopEval.n, 128);
    assert.ok(loopEval.winRate > 0.5, `loop's own eval: ${loopEval.winRate}`);
    const summary = JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8'));
    assert.equal(summary.finalModel, 'iter-2/checkpoint');

    // The measurement: sppo eval of iteration 2 against pi_0 on the run's 128 held-out prompts, same judge.
    const split = JSON.parse(readFileSync(join(run, 'splits.json'), 'utf8')) as { eval: number[]; iterations: number[][] };
    assert.equal(split.eval.length, 128);
    const all = readFileSync(join(dir, 'prompts.jsonl'), 'utf8').trim().split('\n');
    writeFileSync(join(dir, 'heldout.jsonl'), split.eval.map((i) => all[i]).join('\n') + '\n');
    const e = node(
      ['eval', '--judge', 'judge.mjs', '--judge-options', '{"token": "given"}', '--model', join(run, 'iter-2/checkpoint'), '--reference-model', model,
        '--prompts', 'heldout.jsonl', '--temperature', '1', '--top-p', '1', '--max-new-tokens', '16', '--seed', '11', '--device', 'cpu', '--out', 'eval.json'],
      dir,
    );
    assert.equal(e.status, 0, e.stderr);
    const rep = JSON.parse(readFileSync(join(dir, 'eval.json'), 'utf8'));
    assert.deepEqual(JSON.parse(e.stdout), rep);
    assert.equal(rep.n, 128);
    console.log(`# sppo eval, iteration 2 vs pi_0: win rate ${rep.winRate.toFixed(3)} ± ${rep.standardError.toFixed(3)} (LC ${rep.lcWinRate?.toFixed(3)}), loop's eval ${loopEval.winRate.toFixed(3)} ± ${loopEval.standardError.toFixed(3)}`);
    assert.ok(rep.winRate - 0.5 > 2 * rep.standardError, `win rate ${rep.winRate} ± ${rep.standardError} is not above 1/2 by 2 SE`);
    assert.ok(rep.avgLength > 0 && rep.avgReferenceLength > 0);
  } finally {
    removeDir(dir);
  }
});

for (const loss of ['dpo', 'ipo'] as const) {
  test(`the same loop with loss '${loss}' (iterative ${loss.toUpperCase()}) completes (library API)`, { skip }, async () => {
    const dir = tempDir(`loop-${loss}`);
    try {
      writeFileSync(join(dir, 'judge.mjs'), JUDGE);
      writePrompts(join(dir, 'prompts.jsonl'), 112, 'Question');
      const { parse } = await import('yaml');
      const cfg = { ...(parse(config(loss, 4, 16)) as SppoConfigInput), promptsPerIteration: 24 };
      const lines: string[] = [];
      const res = await runSppo(cfg, { baseDir: dir, progress: false, log: (s) => lines.push(s) });
      assert.equal(res.iterations.length, 2);
      assert.equal(res.finalModel, join(dir, `run-${loss}`, 'iter-2/checkpoint'));
      for (const it of res.iterations) {
        assert.ok(it.pairs > 0);
        assert.equal(it.eval?.n, 16);
        assert.ok(it.eval!.winRate! >= 0 && it.eval!.winRate! <= 1);
        const metrics = readFileSync(join(dir, `run-${loss}`, `iter-${it.iteration}`, 'train-metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
        assert.ok(metrics.length > 0 && metrics.every((m) => Number.isFinite(m.loss)));
      }
      assert.ok(readdirSync(join(dir, `run-${loss}`, 'iter-2/checkpoint')).includes('model.safetensors'));
      assert.equal(lines.filter((l) => /win rate vs pi_0/.test(l)).length, 2);
    } finally {
      removeDir(dir);
    }
  });
}

test("refLogprobs: generation's summed log-probs match a recomputation in float32; 'recompute' leaves them to the trainer; pairs: ranked", { skip }, async () => {
  const dir = tempDir('loop-ref');
  try {
    writeFileSync(join(dir, 'judge.mjs'), JUDGE);
    writePrompts(join(dir, 'prompts.jsonl'), 8, 'Question');
    const { parse } = await import('yaml');
    const base = parse(config('sppo', 3, 0)) as Record<string, unknown>;
    const cfg = { ...base, iterations: 1, promptsPerIteration: 8, runDir: 'run-gen' } as SppoConfigInput;
    await runSppo(cfg, { baseDir: dir, progress: false, log: () => {} });
    await runSppo({ ...cfg, runDir: 'run-re', refLogprobs: 'recompute' }, { baseDir: dir, progress: false, log: () => {} });
    const read = (run: string, f: string): Record<string, unknown>[] => readFileSync(join(dir, run, 'iter-1', f), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const gen = read('run-gen', 'pairs.jsonl');
    const re = read('run-re', 'pairs.jsonl');
    assert.ok(re.every((p) => !('chosen_ref_logprob' in p)), "'recompute': no reference log-probs in pairs.jsonl");
    assert.deepEqual(re.map((p) => p.chosen_ids), gen.map((p) => p.chosen_ids), 'same samples either way');
    // The trainer's own computation (right-padded full forward) agrees with generation's (KV cache).
    const { pairLogprobs } = await import('../src/sppo/trainer.js');
    const { loadModel } = await import('../src/models/registry.js');
    const m = loadModel(model);
    try {
      const lps = pairLogprobs(m, gen.map((p) => ({ promptIds: p.prompt_ids as number[], chosenIds: p.chosen_ids as number[], rejectedIds: p.rejected_ids as number[] })));
      gen.forEach((p, i) => {
        // Sequence log-probs (sums of n response log-probs) computed in other batches: n * LOGPROB32 at most.
        assert.ok(Math.abs((p.chosen_ref_logprob as number) - lps[i]![0]) <= (p.chosen_ids as number[]).length * LOGPROB32, `chosen ${p.chosen_ref_logprob} vs ${lps[i]![0]}`);
        assert.ok(Math.abs((p.rejected_ref_logprob as number) - lps[i]![1]) <= (p.rejected_ids as number[]).length * LOGPROB32, `rejected ${p.rejected_ref_logprob} vs ${lps[i]![1]}`);
      });
    } finally {
      m.dispose();
    }
    // pairs: ranked: the same samples and the same first pair per prompt, then the next pair inwards by win rate.
    await runSppo({ ...cfg, runDir: 'run-ranked', pairs: 'ranked' }, { baseDir: dir, progress: false, log: () => {} });
    const ranked = read('run-ranked', 'pairs.jsonl');
    assert.equal(ranked.length, 8 * 1, 'K = 3: one pair per prompt (the middle response left out)');
    assert.deepEqual(ranked.map((p) => [p.index, p.chosen, p.rejected]), gen.map((p) => [p.index, p.chosen, p.rejected]));
    await runSppo({ ...cfg, runDir: 'run-ranked4', pairs: 'ranked', generation: { ...(cfg.generation as object), k: 4 } }, { baseDir: dir, progress: false, log: () => {} });
    const r4 = read('run-ranked4', 'pairs.jsonl');
    const prefs4 = read('run-ranked4', 'preferences.jsonl');
    assert.equal(r4.length, 2 * 8, 'K = 4: two pairs per prompt');
    for (const pr of prefs4) {
      const mine = r4.filter((p) => p.index === pr.index);
      const wr = pr.win_rates as number[];
      assert.deepEqual(mine.flatMap((p) => [p.chosen, p.rejected]).sort(), [0, 1, 2, 3], `prompt ${pr.index}: each response in one pair`);
      const near = (a: unknown, b: number): boolean => Math.abs((a as number) - b) <= 1e-12;
      assert.ok(near(mine[0]!.chosen_win_rate, Math.max(...wr)) && near(mine[0]!.rejected_win_rate, Math.min(...wr)), `prompt ${pr.index}: the outer pair first`);
    }
    const summary4 = JSON.parse(readFileSync(join(dir, 'run-ranked4', 'summary.json'), 'utf8')) as { iterations: { pairs: number; degeneratePairs: number }[] };
    assert.equal(summary4.iterations[0]!.pairs + summary4.iterations[0]!.degeneratePairs, 16);
    assert.ok(existsSync(join(dir, 'run-ranked4', 'iter-1/checkpoint/model.safetensors')));
    assert.ok(!existsSync(join(dir, 'run-gen', 'iter-0')), 'eval.count 0: no evaluation');
    assert.ok(existsSync(join(dir, 'run-re', 'iter-1/checkpoint/model.safetensors')));
  } finally {
    removeDir(dir);
  }
});
