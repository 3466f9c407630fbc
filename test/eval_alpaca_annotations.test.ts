// `sppo bench alpaca-eval --annotations FILE`: AlpacaEval's annotations.json scored without a judge, with the Hub
// files (df_gamed.csv, instruction_difficulty.csv) as the user downloads them. The data are the synthetic cases of
// test/fixtures/lc_sklearn.json written out in AlpacaEval's formats (texts of the fixture's lengths); the expected
// LC is scikit-learn's, computed by scripts/make-lc-sklearn-fixture.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from './text_helpers.js';
import { sppoCli, sppoFails, sppoOk } from './helpers/cli.js';
import { alpacaEvalPreference, parseGamedBaselinesCsv, parseInstructionDifficultyCsv } from '../src/eval/benchmarks/alpaca_eval_files.js';

import { skFixture as fixture, type SkCase } from './helpers/lc_sklearn.js';
const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} != ${b} (tol ${tol})`);
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

function writeCase(dir: string, c: SkCase): { annotations: string; gamed?: string; difficulty?: string } {
  // Texts of the fixture's lengths; a 2-code-point emoji in every reference checks that lengths are code points.
  const text = (n: number, ch: string) => ch.repeat(n);
  const ann = c.preference.map((p, i) => ({
    instruction: `instruction ${i}`,
    output_1: '\u{1F600}' + text(c.len_reference[i]! - 1, 'r'),
    generator_1: 'gpt4_1106_preview',
    dataset: 'synthetic',
    output_2: text(c.len_model[i]!, 'm'),
    generator_2: `model_${c.name}`,
    annotator: 'weighted_alpaca_eval_gpt4_turbo',
    preference: p,
    price_per_example: 0.01,
    raw_completion: { text: 'm' },
  }));
  const files: { annotations: string; gamed?: string; difficulty?: string } = { annotations: join(dir, 'annotations.json') };
  writeFileSync(files.annotations, JSON.stringify(ann, null, 2));
  if (c.gamed) {
    files.gamed = join(dir, 'df_gamed.csv');
    const g = c.gamed;
    // pandas' to_csv layout with an extra model column, as the Hub file has.
    const lines = ['model,index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline', ...g.index.map((idx, k) => `${k < g.index.length / 2 ? 'gpt4_1106_preview_verbose' : 'gpt4_1106_preview_concise'},${idx},${g.preference[k]},${g.std_delta_len[k]},${g.instruction_difficulty[k]},${g.not_gamed_baseline[k] ? 'True' : 'False'}`)];
    writeFileSync(files.gamed, lines.join('\n') + '\n');
  }
  if (c.instruction_difficulty) {
    files.difficulty = join(dir, 'instruction_difficulty.csv');
    writeFileSync(files.difficulty, ['index,instruction_difficulty', ...c.instruction_difficulty.map((d, i) => `${i},${d}`)].join('\n') + '\n');
  }
  return files;
}

for (const c of fixture.cases) {
  test(`bench alpaca-eval --annotations (${c.name}): raw win rate as AlpacaEval's get_winrate, LC as scikit-learn`, () => {
    const dir = tempDir('ae-annotations');
    try {
      const f = writeCase(dir, c);
      const args = ['bench', 'alpaca-eval', '--annotations', f.annotations, '--out', join(dir, 'out'), ...(f.gamed ? ['--gamed-baselines', f.gamed] : []), ...(f.difficulty ? ['--instruction-difficulty', f.difficulty] : [])];
      const r = sppoOk(args);
      const rep = JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8')) as Record<string, unknown> & { lc_coefficients: Record<string, number> };
      // Raw: preferences 1..2 -> p - 1, 0 -> 1/2, null left out (AlpacaEval's describe_head2head).
      const p = c.preference.filter((x) => x !== null).map((x) => (x === 0 ? 0.5 : x! - 1));
      close(rep.win_rate as number, mean(p) * 100, 1e-9, 'win_rate');
      assert.equal(rep.n_total, p.length);
      assert.equal(rep.n_draws, p.filter((x) => x === 0.5).length);
      assert.equal(rep.name, `model_${c.name}`);
      assert.equal(rep.avg_length, Math.trunc(mean(c.len_model)));
      const method = c.gamed ? 'length_controlled_v1' : c.instruction_difficulty ? 'tanh+difficulty+baseline (approximate)' : 'tanh+baseline (approximate)';
      assert.equal(rep.lc_method, method);
      if (method === 'length_controlled_v1') assert.doesNotMatch(r.stderr, /approximate/);
      else assert.match(r.stderr, /length_controlled_winrate is approximate/);
      assert.equal(rep.lc_C, c.expected.C);
      close(rep.length_controlled_winrate as number, c.expected.lc, 0.01, 'LC');
      close(rep.lc_standard_error as number, c.expected.lc_standard_error, 1e-3, 'lc_standard_error');
      close(rep.lc_coefficients['np.tanh(std_delta_len)'], c.expected.coef[0]!, 1e-3, 'length coefficient');
      assert.equal(rep.lc_converged, true);
      const csv = readFileSync(join(dir, 'out', 'weighted_alpaca_eval_gpt4_turbo', 'leaderboard.csv'), 'utf8').trim().split('\n');
      assert.equal(csv.length, 2);
      assert.ok(csv[1]!.startsWith(`model_${c.name},`));
    } finally {
      removeDir(dir);
    }
  });
}

test('the difficulty is looked up by the annotation\'s row number in df_gamed.csv\'s rows, as AlpacaEval does', () => {
  // Rows of index 1 then 0: the first rows showing each index are file rows 0 (index 1) and 1 (index 0), so
  // annotation row 0 gets file row 0's difficulty (that of index 1).
  const g = parseGamedBaselinesCsv('index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\n1,0.5,0.1,-2,False\n0,0.25,0.2,3,False\n1,0.75,-0.1,-2,False\n', 'g.csv');
  assert.deepEqual([...g.difficultyByRow], [[0, -2], [1, 3]]);
  assert.equal(g.rows.length, 3);
  assert.equal(g.rows[1]!.notGamedBaseline, false);
  assert.throws(() => parseGamedBaselinesCsv('index,preference,std_delta_len,instruction_difficulty\n0,0.5,0,0\n', 'g.csv'), /g\.csv:1: no column "not_gamed_baseline"/);
  assert.throws(() => parseGamedBaselinesCsv('index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\n0,0.5,x,0,False\n', 'g.csv'), /g\.csv:2: std_delta_len = "x" is not a number/);
  assert.throws(() => parseGamedBaselinesCsv('index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\n0,1.5,0,0,False\n', 'g.csv'), /g\.csv:2: preference 1\.5 is not in \[0, 1\]/);
  const d = parseInstructionDifficultyCsv('index,instruction_difficulty\n0,-1.5\n1,0.25\n', 'd.csv');
  assert.deepEqual([...d], [[0, -1.5], [1, 0.25]]);
  assert.throws(() => parseInstructionDifficultyCsv('index,instruction_difficulty\n0,-1.5\n0,1\n', 'd.csv'), /d\.csv:3: index 0 repeated/);
  assert.equal(alpacaEvalPreference(0), 0.5);
  assert.equal(alpacaEvalPreference(2), 1);
  assert.ok(Number.isNaN(alpacaEvalPreference(null)));
  assert.throws(() => alpacaEvalPreference(3, 'x'), /x: 3 is not an AlpacaEval preference/);
});

test('bench alpaca-eval --annotations: bad files are usage errors naming the file', () => {
  const dir = tempDir('ae-annotations-bad');
  try {
    const a = join(dir, 'a.json');
    writeFileSync(a, JSON.stringify([{ output_1: 'x', output_2: 'y', preference: 2.5 }]));
    sppoFails(['bench', 'alpaca-eval', '--annotations', a, '--out', join(dir, 'o')], 2, /a\.json: annotation 0: preference: 2\.5 is not an AlpacaEval preference/);
    writeFileSync(a, JSON.stringify([{ output_1: 'x', preference: 2 }]));
    sppoFails(['bench', 'alpaca-eval', '--annotations', a, '--out', join(dir, 'o')], 2, /annotation 0: output_2 is not a string/);
    // A difficulty file without a row the annotations need.
    writeFileSync(a, JSON.stringify(Array.from({ length: 6 }, (_, i) => ({ output_1: 'x'.repeat(10 + i), output_2: 'y'.repeat(20 - i), preference: 1 + i / 6 }))));
    const d = join(dir, 'd.csv');
    writeFileSync(d, 'index,instruction_difficulty\n0,1\n1,2\n2,3\n3,4\n4,5\n');
    sppoFails(['bench', 'alpaca-eval', '--annotations', a, '--out', join(dir, 'o'), '--instruction-difficulty', d], 2, /annotation 5: the instruction-difficulty file has no instruction_difficulty for row 5/);
    sppoFails(['bench', 'alpaca-eval', '--annotations', a, '--out', join(dir, 'o'), '--judge', 'openai:http://127.0.0.1:9/v1'], 2, /--judge does not apply/);
    sppoFails(['bench', 'mt-bench', '--annotations', a, '--out', join(dir, 'o')], 2, /--annotations is for alpaca-eval only/);
    const ok = sppoCli(['bench', 'alpaca-eval', '--annotations', a, '--out', join(dir, 'o')]);
    assert.equal(ok.status, 0, ok.stderr);
  } finally {
    removeDir(dir);
  }
});
