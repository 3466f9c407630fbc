// styleWinRates (src/demo/style_winrates.ts): each style's share, correctness and mean win rate under the run's
// judge and the gold judge, read from a run folder written by hand (one prompt, K = 4, a known matrix).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointStyleGames, playedStyleGame, PLAYED_GAME_BOOTSTRAP, styleWinRates } from '../src/demo/style_winrates.js';
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

// playedStyleGame: the gold win rate W_s of each style's answers against the other samples of their prompt, and
// 2 max_s W_s - 1. The expected figures follow from the gold rules by hand.
const R = GOLD_RULES;
const near = (a: number, b: number, tol: number, what: string): void => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);

test('playedStyleGame: a correct answer in one style against a wrong one in another; equal answers; the style cycle with its length term', () => {
  // 'It is 8.' correct, '9' wrong: W_sentence = correctWins, W_terse = 1 - correctWins.
  const a = playedStyleGame(['Add 3+5.'], [['It is 8.', '9']]);
  assert.equal(a.prompts, 1);
  assert.equal(a.samples, 2);
  assert.deepEqual(a.share, { terse: 0.5, sentence: 0.5, formatted: 0 });
  assert.deepEqual(a.correct.terse, 0);
  assert.deepEqual(a.correct.sentence, 1);
  assert.ok(Number.isNaN(a.winRate.formatted) && Number.isNaN(a.correct.formatted), 'a style without answers has no win rate');
  near(a.winRate.sentence, R.correctWins, 1e-15, 'W sentence');
  near(a.winRate.terse, 1 - R.correctWins, 1e-15, 'W terse');
  near(a.exploitability, 2 * R.correctWins - 1, 1e-15, 'exploitability');
  // One prompt: every resample is the same; the mean of `boot` equal values is off by at most boot ulps.
  assert.ok(a.se <= PLAYED_GAME_BOOTSTRAP.boot * Number.EPSILON, `one prompt: every resample is the same (${a.se})`);
  // The same answer three times: every sample wins 1/2 against the others.
  const b = playedStyleGame(['Add 3+5.'], [['8', '8', '8']]);
  assert.equal(b.winRate.terse, 0.5);
  assert.equal(b.exploitability, 0);
  // Equally correct, terse (1 character) against sentence (8): the cycle's cycleWins plus the length term
  // lengthWeight * (1 - 8) / lengthScale towards the longer answer.
  const c = playedStyleGame(['Add 3+5.'], [['8', 'It is 8.']]);
  const pTerse = R.cycleWins + (R.lengthWeight * (1 - 8)) / R.lengthScale;
  near(c.winRate.terse, pTerse, 1e-12, 'W terse');
  near(c.winRate.sentence, 1 - pTerse, 1e-12, 'W sentence');
  near(c.exploitability, 2 * pTerse - 1, 1e-12, 'exploitability');
});

test('playedStyleGame: the samples\' mean win rate is 1/2 whatever the counts per prompt, so the exploitability is >= 0', () => {
  const prompts = ['Add 3+5.', 'Number after 47?', 'Sort 4 1 3.'];
  const samples = [
    ['8', 'It is 8.', 'Answer: 9', 'It is 7.', '8'],
    ['It is 48.', '48'],
    ['Answer: 1 3 4', '1 3 4', 'It is 4 3 1.'],
  ];
  const g = playedStyleGame(prompts, samples);
  assert.equal(g.samples, 10);
  const mean = (['terse', 'sentence', 'formatted'] as const).reduce((x, s) => x + g.share[s] * g.winRate[s], 0);
  near(mean, 0.5, 1e-12, 'share-weighted mean of W_s');
  assert.ok(g.exploitability > 0);
  near(g.exploitability, 2 * Math.max(g.winRate.terse, g.winRate.sentence, g.winRate.formatted) - 1, 1e-15, 'the maximum over the styles');
});

test('playedStyleGame: the standard error resamples the prompts', () => {
  // Prompt A decides the game (0.9: a correct sentence against a wrong terse answer); prompt B has two equal terse
  // answers (W 1/2). A resample holds A with probability 3/4 (exploitability 2 correctWins - 1: W_sentence is
  // correctWins whatever B adds to terse) and only B with 1/4 (0), so the standard deviation is
  // (2 correctWins - 1) sqrt(3/16). Its estimate from `boot` resamples: the Bernoulli share p has sd
  // sqrt(p (1 - p) / boot), and sd's derivative in p is (1 - 2p) / (2 sqrt(p (1 - p))): four such deviations bound it.
  const top = 2 * R.correctWins - 1;
  const g = playedStyleGame(['Add 3+5.', 'Add 3+4.'], [['It is 8.', '9'], ['7', '7']]);
  near(g.exploitability, top, 1e-15, 'exploitability');
  const p = 3 / 4;
  const tol = 4 * top * (Math.abs(1 - 2 * p) / (2 * Math.sqrt(p * (1 - p)))) * Math.sqrt((p * (1 - p)) / PLAYED_GAME_BOOTSTRAP.boot) + 1e-3;
  near(g.se, top * Math.sqrt(3 / 16), tol, 'bootstrap SE');
  assert.equal(playedStyleGame(['Add 3+5.', 'Add 3+4.'], [['It is 8.', '9'], ['7', '7']]).se, g.se, 'seeded: the same resamples');
  assert.notEqual(playedStyleGame(['Add 3+5.', 'Add 3+4.'], [['It is 8.', '9'], ['7', '7']], { seed: 7 }).se, g.se, 'another seed, other resamples');
  assert.throws(() => playedStyleGame(['Add 3+5.'], []), /1 prompts but 0 sample lists/);
  assert.throws(() => playedStyleGame(['Add 3+5.'], [['8']]), /no prompt has two samples/);
});

test('sppo demo style-game --run: the game played from each checkpoint\'s style samples; style samples without held-out prompts name run.json', () => {
  const run = runFolder();
  try {
    const root = join(run, '..');
    writeFileSync(join(root, 'eval-prompts.jsonl'), JSON.stringify({ prompt: 'Add 3+4.' }) + '\n' + JSON.stringify({ prompt: 'Add 3+5.' }) + '\n');
    mkdirSync(join(run, 'iter-0'), { recursive: true });
    writeFileSync(join(run, 'iter-0', 'style-samples.jsonl'), [{ index: 0, responses: ['7', '7'] }, { index: 1, responses: ['It is 8.', '9'] }].map((x) => JSON.stringify(x)).join('\n') + '\n');
    // Without config.eval.prompts the samples cannot be read.
    assert.throws(() => checkpointStyleGames(run), /config\.eval\.prompts is not set/);
    sppoFails(['demo', 'style-game', '--run', run], 2, /run\.json: config\.eval\.prompts is not set/);
    writeFileSync(join(run, 'run.json'), JSON.stringify({ format: 1, config: { prompts: join(root, 'prompts.jsonl'), iterations: 3, eval: { prompts: join(root, 'eval-prompts.jsonl') } } }));
    const rows = checkpointStyleGames(run);
    assert.deepEqual(rows.map((r) => r.iteration), [0], 'only the written checkpoints');
    near(rows[0]!.exploitability, 2 * R.correctWins - 1, 1e-15, 'exploitability');
    const ok = sppoOk(['demo', 'style-game', '--run', run]);
    assert.match(ok.stdout, /starter \(4 samples\): share 75\.0 % \| 25\.0 % \| 0\.0 %; correct 66\.7 % \| 100\.0 % \| NaN %; win rate W_s 0\.350 \| 0\.950 \| NaN; exploitability 0\.900 ± 0\.\d{3}/);
  } finally {
    removeDir(join(run, '..'));
  }
});
