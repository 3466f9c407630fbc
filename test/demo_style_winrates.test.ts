// styleWinRates (src/demo/style_winrates.ts): each style's share, correctness and mean win rate under the run's
// judge and the gold judge, read from a run folder written by hand (one prompt, K = 4, a known matrix).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { styleWinRates } from '../src/demo/style_winrates.js';
import { goldPreference, GOLD_RULES } from '../src/demo/gold_judge.js';
import { sppoFails, sppoOk } from './helpers/cli.js';
import { removeDir, tempDir } from './text_helpers.js';

const PROMPT = 'Add 10+8.';
// terse correct, sentence correct, formatted wrong, sentence wrong
const RESPONSES = ['18', 'It is 18.', 'Answer: 17', 'It is 19.'];
// The judge's matrix (P + P^T = 1, 1/2 on the diagonal).
const M = [
  [0.5, 0.6, 0.9, 0.8],
  [0.4, 0.5, 0.7, 0.9],
  [0.1, 0.3, 0.5, 0.2],
  [0.2, 0.1, 0.8, 0.5],
];

function runFolder(): string {
  const out = tempDir('style-winrates');
  writeFileSync(join(out, 'prompts.jsonl'), JSON.stringify({ prompt: 'Number after 48?' }) + '\n' + JSON.stringify({ prompt: PROMPT }) + '\n');
  const run = join(out, 'sppo');
  mkdirSync(join(run, 'iter-1'), { recursive: true });
  writeFileSync(join(run, 'run.json'), JSON.stringify({ format: 1, config: { prompts: join(out, 'prompts.jsonl'), iterations: 3 } }));
  writeFileSync(join(run, 'iter-1', 'generations.jsonl'), JSON.stringify({ index: 1, prompt_text: `<s><|user|>${PROMPT}<|assistant|>`, prompt_ids: [], responses: RESPONSES.map((text) => ({ text, token_ids: [], logprob: 0, finish_reason: 'eos' })) }) + '\n');
  writeFileSync(join(run, 'iter-1', 'preferences.jsonl'), JSON.stringify({ index: 1, matrix: M, win_rates: M.map((r) => r.reduce((a, b) => a + b) / 4) }) + '\n');
  return run;
}

test('styleWinRates: shares, correctness, the judge\'s row means and the gold judge\'s, per style; only the written iterations', () => {
  const run = runFolder();
  try {
    const rows = styleWinRates(run);
    assert.equal(rows.length, 1, 'iterations 2 and 3 are not written');
    const r = rows[0]!;
    assert.equal(r.iteration, 1);
    assert.equal(r.samples, 4);
    assert.deepEqual(r.share, { terse: 0.25, sentence: 0.5, formatted: 0.25 });
    assert.deepEqual(r.correct, { terse: 1, sentence: 0.5, formatted: 0 });
    const rowMean = (i: number): number => M[i]!.reduce((a, b) => a + b) / 4;
    assert.equal(r.judge.terse, rowMean(0));
    assert.ok(Math.abs(r.judge.sentence - (rowMean(1) + rowMean(3)) / 2) <= 1e-15);
    assert.equal(r.judge.formatted, rowMean(2));
    // Gold: a correct answer beats a wrong one with correctWins whatever the style, so the wrong formatted answer
    // wins 1 - correctWins against each correct one, 1/2 against itself and the style game's verdict against the
    // wrong sentence.
    const top = GOLD_RULES.correctWins;
    const fVsS = goldPreference(PROMPT, 'Answer: 17', 'It is 19.');
    assert.ok(Math.abs(r.gold.formatted - ((1 - top) * 2 + 0.5 + fVsS) / 4) <= 1e-15, `${r.gold.formatted}`);
    assert.ok(fVsS < 0.5, 'sentence beats formatted in the cycle');
  } finally {
    removeDir(join(run, '..'));
  }
});

test('sppo demo style-game --run: the table per iteration; a folder that is not a run is a usage error naming it', () => {
  const run = runFolder();
  try {
    const ok = sppoOk(['demo', 'style-game', '--run', run]);
    assert.match(ok.stdout, /iteration 1 \(4 samples\): share 25\.0 % \| 50\.0 % \| 25\.0 %; correct 100\.0 % \| 50\.0 % \| 0\.0 %/);
    sppoFails(['demo', 'style-game', '--run', join(run, 'iter-1')], 2, /iter-1: no run\.json/);
  } finally {
    removeDir(join(run, '..'));
  }
});
