// `sppo bench arena-hard --judgments FILE|DIR`: Arena-Hard-Auto's model_judgment files scored without a judge, as
// show_result.py scores them (game 1: the baseline is A; >> counts 3 battles; a tie half; no label nothing), the
// labels re-parsed from the judgment texts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from './text_helpers.js';
import { sppoFails, sppoOk } from './helpers/cli.js';

test('bench arena-hard --judgments: a folder of model files, scores from the weighted battles, labels re-parsed', () => {
  const dir = tempDir('ah-judgments');
  try {
    const folder = join(dir, 'gpt-4-1106-preview');
    mkdirSync(folder);
    const game = (label: string | null, text = label ? `My final verdict is [[${label}]]` : 'no verdict') => ({ user_prompt: 'p', judgment: text, score: label });
    // Model x: game 1 (baseline = A): B>>A -> 3 model wins; A=B -> tie; game 2 (model = A): A>B -> 1 model win; B>>A -> 3 baseline wins.
    const x = [
      { question_id: 'q1', model: 'x', judge: 'gpt-4-1106-preview', games: [game('B>>A'), game('A>B')] },
      { question_id: 'q2', model: 'x', judge: 'gpt-4-1106-preview', games: [game('A=B'), game('B>>A')] },
      { question_id: 'q3', model: 'x', judge: 'gpt-4-1106-preview', games: [game(null), game('A>B', 'first [[A>B]] then [[B>A]]')] }, // stored label, ambiguous text
    ];
    // Model y in the 2025 layout (uid, baseline): game 1 A>B -> 1 baseline win; game 2 A>>B -> 3 model wins.
    const y = [{ uid: 'u1', category: 'arena-hard-v0.1', judge: 'gpt-4-1106-preview', model: 'y', baseline: 'gpt-4-0314', games: [game('A>B'), game('A>>B')] }];
    writeFileSync(join(folder, 'x.jsonl'), x.map((o) => JSON.stringify(o)).join('\n') + '\n');
    writeFileSync(join(folder, 'y.jsonl'), y.map((o) => JSON.stringify(o)).join('\n') + '\n');
    const r = sppoOk(['bench', 'arena-hard', '--judgments', folder, '--out', join(dir, 'out')]);
    const rep = JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8')) as { models: { model: string; score: number; battles: number; unparseable: number }[]; labels_reparsed: { agree: number; differ: number } };
    const sx = rep.models.find((m) => m.model === 'x')!;
    // x: model wins 3 + 1 + 1 (q3 game 2, stored A>B with the model as A), ties 1, baseline wins 3: 9 battles.
    assert.equal(sx.battles, 9);
    assert.equal(sx.score, Math.round(((5 + 0.5) / 9) * 100 * 100) / 100);
    assert.equal(sx.unparseable, 1);
    const sy = rep.models.find((m) => m.model === 'y')!;
    assert.equal(sy.battles, 4);
    assert.equal(sy.score, 75);
    assert.equal(rep.labels_reparsed.agree, 7);
    assert.equal(rep.labels_reparsed.differ, 1);
    assert.match(r.stdout, /gpt-4-0314 +\| score: +50/);
    const csv = readFileSync(join(dir, 'out', 'leaderboard.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'model,score,rating_q025,rating_q975,CI,avg_tokens,date');
    assert.equal(csv.length, 4);
    writeFileSync(join(folder, 'z.jsonl'), JSON.stringify({ model: 'z', baseline: 'gpt-4-turbo', games: [] }) + '\n');
    sppoFails(['bench', 'arena-hard', '--judgments', folder, '--out', join(dir, 'o')], 2, /z\.jsonl:1: baseline "gpt-4-turbo", not gpt-4-0314/);
  } finally {
    removeDir(dir);
  }
});
