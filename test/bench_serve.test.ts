// `sppo bench` end to end with `sppo serve` as the judge: the fixture model (tiny Llama) answers the questions
// (--model) and, served over the OpenAI API, judges them. A model this small writes no verdicts its judge
// prompts can parse, so the numbers mean nothing; the point is the pipeline (generation, the judge's
// requests over HTTP, the benchmarks' file formats) and the counting of what could not be parsed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { llamaDir, MODEL, noLlama, serve, type Served } from './serve_helpers.js';
import { removeDir, tempDir } from './text_helpers.js';
import { sppoAsync } from './helpers/cli.js';

const DATA = join(process.cwd(), '..', 'shared', 'data');
const skip = noLlama || (existsSync(join(DATA, 'mt_bench_question.jsonl')) ? false : `no benchmark data at ${DATA}`);

const cli = (args: string[]) => sppoAsync(args);

const jsonl = (p: string): Record<string, any>[] => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

/** The judge: the fixture served with a context long enough for the judge prompts (RoPE has no position table). */
async function judgeServer(): Promise<Served> {
  return serve({ engine: { maxModelLen: 16384 } });
}

const common = (s: Served, out: string): string[] => ['--model', llamaDir, '--device', 'cpu', '--limit', '2', '--max-new-tokens', '8', '--judge', `openai:${s.url}`, '--judge-max-tokens', '8', '--data', DATA, '--out', out];

test('sppo bench mt-bench with sppo serve as the judge: two turns generated, four judgments, FastChat formats', { skip, timeout: 300_000 }, async () => {
  const dir = tempDir('bench-serve-mt');
  const s = await judgeServer();
  try {
    const r = await cli(['bench', 'mt-bench', ...common(s, dir)]);
    assert.equal(r.status, 0, r.stderr);
    const answers = jsonl(join(dir, 'model_answer', 'llama.jsonl'));
    assert.deepEqual(answers.map((a) => a.question_id), [81, 82]);
    assert.ok(answers.every((a) => a.choices[0].turns.length === 2 && a.choices[0].turns.every((t: unknown) => typeof t === 'string')));
    const j = jsonl(join(dir, 'model_judgment', `${MODEL}_single.jsonl`));
    assert.deepEqual(j.map((x) => [x.question_id, x.turn, x.judge[0], x.judge[1]]), [[81, 1, MODEL, 'single-v1'], [81, 2, MODEL, 'single-v1-multi-turn'], [82, 1, MODEL, 'single-v1'], [82, 2, MODEL, 'single-v1-multi-turn']]);
    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
    assert.equal(res.n_scored + res.n_unparseable, 4);
    assert.equal(res.judge.requests, 4);
    assert.equal(res.judge.model, MODEL, 'the model named by GET /v1/models');
    assert.ok(res.judge.usage.prompt_tokens > 0 && res.judge.usage.completion_tokens > 0);
    assert.match(r.stdout, /########## First turn ##########/);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('sppo bench arena-hard with sppo serve as the judge: both games of each question, Arena-Hard formats', { skip, timeout: 300_000 }, async () => {
  const dir = tempDir('bench-serve-ah');
  const s = await judgeServer();
  try {
    const r = await cli(['bench', 'arena-hard', ...common(s, dir)]);
    assert.equal(r.status, 0, r.stderr);
    const answers = jsonl(join(dir, 'model_answer', 'llama.jsonl'));
    assert.equal(answers.length, 2);
    assert.ok(answers.every((a) => typeof a.choices[0].turns[0].content === 'string' && a.choices[0].turns[0].token_len <= 8));
    const j = jsonl(join(dir, 'model_judgment', MODEL, 'llama.jsonl'));
    assert.equal(j.length, 2);
    for (const x of j) {
      assert.equal(x.games.length, 2);
      for (const g of x.games) assert.ok(typeof g.user_prompt === 'string' && typeof g.judgment === 'string' && (g.score === null || typeof g.score === 'string'));
      assert.ok(x.games[0].user_prompt.indexOf("<|The Start of Assistant A's Answer|>") > 0);
    }
    const rep = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    const games = j.flatMap((x) => x.games);
    assert.equal(rep.unparseable, games.filter((g) => g.score === null).length);
    // A game without a verdict is asked twice (the continue message): 4 to 8 requests.
    assert.ok(rep.judge.requests >= 4 && rep.judge.requests <= 8, String(rep.judge.requests));
    assert.equal(readFileSync(join(dir, 'leaderboard.csv'), 'utf8').split('\n')[0], 'model,score,rating_q025,rating_q975,CI,avg_tokens,date');
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('sppo bench alpaca-eval with sppo serve as the judge: log-probs requested, annotations and leaderboard row written', { skip, timeout: 300_000 }, async () => {
  const dir = tempDir('bench-serve-ae');
  const s = await judgeServer();
  try {
    const r = await cli(['bench', 'alpaca-eval', ...common(s, dir), '--judge-top-logprobs', '20']);
    assert.equal(r.status, 0, r.stderr);
    const outputs = JSON.parse(readFileSync(join(dir, 'model_outputs.json'), 'utf8'));
    assert.equal(outputs.length, 2);
    assert.ok(outputs.every((o: { generator: string }) => o.generator === 'llama'));
    const ann = JSON.parse(readFileSync(join(dir, 'weighted_alpaca_eval_gpt4_turbo', 'annotations.json'), 'utf8'));
    assert.equal(ann.length, 2);
    for (const a of ann) {
      assert.equal(a.generator_1, 'gpt4_1106_preview');
      assert.equal(a.generator_2, 'llama');
      assert.ok(a.preference === null || (a.preference >= 1 && a.preference <= 2));
    }
    const rep = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    assert.equal(rep.n_total + rep.n_unparseable, 2);
    assert.equal(rep.judge.requests, 2);
    // The cache holds the server's answers with their top log-probs (sppo serve returns them).
    const cache = jsonl(join(dir, 'judge_cache.jsonl'));
    assert.equal(cache.length, 2);
    assert.ok(cache.every((c) => Array.isArray(c.response.firstTopLogprobs) && c.response.firstTopLogprobs.length === 20));
    assert.match(readFileSync(join(dir, 'weighted_alpaca_eval_gpt4_turbo', 'leaderboard.csv'), 'utf8'), /^,win_rate,standard_error,.*,length_controlled_winrate,lc_standard_error\nllama,/);
  } finally {
    await s.close();
    removeDir(dir);
  }
});
