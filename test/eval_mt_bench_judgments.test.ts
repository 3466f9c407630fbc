// `sppo bench mt-bench --judgments FILE`: FastChat's model_judgment/JUDGE_single.jsonl scored without a judge, as
// its show_result.py does (per model: mean rating of turn 1, of turn 2, of all; -1 left out), the judgment texts
// re-parsed and compared with the stored ratings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from './text_helpers.js';
import { sppoFails, sppoOk } from './helpers/cli.js';

test('bench mt-bench --judgments: show_result.py means per model and turn, -1 left out, ratings re-parsed', () => {
  const dir = tempDir('mt-judgments');
  try {
    const line = (model: string, qid: number, turn: 1 | 2, score: number, judgment: string) => JSON.stringify({ question_id: qid, model, judge: ['gpt-4', turn === 1 ? 'single-v1' : 'single-v1-multi-turn'], user_prompt: 'p', judgment, score, turn, tstamp: 1 });
    const rows = [
      line('a', 81, 1, 8, 'Rating: [[8]]'),
      line('a', 81, 2, 6, 'Rating: [[6]]'),
      line('a', 101, 1, 3, 'first [3] then nothing'),
      line('a', 101, 2, -1, 'no rating here'),
      line('a', 102, 1, 10, 'Rating: [[10]]'),
      line('b', 81, 1, 7.5, 'Rating: [[7.5]]'),
      line('b', 81, 2, 5, 'Rating: [[4]]'), // stored 5, text says 4: counted as a difference, the stored score used
    ];
    const f = join(dir, 'gpt-4_single.jsonl');
    writeFileSync(f, rows.join('\n') + '\n');
    const r = sppoOk(['bench', 'mt-bench', '--judgments', f, '--out', join(dir, 'out')]);
    const res = JSON.parse(readFileSync(join(dir, 'out', 'results.json'), 'utf8')) as { models: { model: string; first_turn: number; second_turn: number; average: number; n_scored: number; n_unparseable: number }[]; ratings_reparsed: { agree: number; differ: number } };
    const a = res.models.find((m) => m.model === 'a')!;
    assert.equal(a.first_turn, (8 + 3 + 10) / 3);
    assert.equal(a.second_turn, 6);
    assert.equal(a.average, (8 + 6 + 3 + 10) / 4); // the mean of all ratings, not of the two turn means
    assert.equal(a.n_unparseable, 1);
    const b = res.models.find((m) => m.model === 'b')!;
    assert.equal(b.average, 6.25);
    assert.deepEqual(res.ratings_reparsed, { agree: 6, differ: 1, first_differences: [`${f}:7 (stored 5, parsed 4)`] } as never);
    assert.match(r.stdout, /6 equal to the stored score, 1 not/);
    sppoFails(['bench', 'mt-bench', '--judgments', f, '--out', join(dir, 'o'), '--judge', 'openai:http://127.0.0.1:9/v1'], 2, /--judge does not apply/);
    writeFileSync(f, line('a', 81, 1, 8, 'x').replace('"turn":1', '"turn":3') + '\n');
    sppoFails(['bench', 'mt-bench', '--judgments', f, '--out', join(dir, 'o')], 2, /gpt-4_single\.jsonl:1: "turn" is not 1 or 2/);
  } finally {
    removeDir(dir);
  }
});
