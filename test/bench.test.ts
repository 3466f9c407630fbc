// `sppo bench`: the three benchmarks as child processes against a scripted judge server (chosen verdicts and
// log-probs; the metrics recomputed here from the script), the identical-outputs case, and a run killed with
// SIGKILL half-way and started again (same report, no repeated calls for the cached verdicts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scriptedJudge, type Reply } from './judge_server.js';
import { removeDir, tempDir } from './text_helpers.js';
import { EPS64 } from './helpers/tolerances.js';
import { sppoAsync } from './helpers/cli.js';

const DATA = join(process.cwd(), '..', 'shared', 'data');
const noData = existsSync(join(DATA, 'alpaca_eval2_ref_gpt4_1106_preview_outputs.json')) ? false : `no benchmark data at ${DATA}`;

const cli = (args: string[], onSpawn?: (kill: () => void) => void) => sppoAsync(args, { onSpawn });

const refs = (): { instruction: string; output: string; dataset: string }[] => JSON.parse(readFileSync(join(DATA, 'alpaca_eval2_ref_gpt4_1106_preview_outputs.json'), 'utf8'));

test('alpaca-eval --outputs = the reference outputs: ties without a judge call, win rate and LC exactly 50', { skip: noData, timeout: 120_000 }, async () => {
  const dir = tempDir('bench-same');
  const s = await scriptedJudge(() => ({ content: 'm' }));
  try {
    const r = await cli(['bench', 'alpaca-eval', '--outputs', join(DATA, 'alpaca_eval2_ref_gpt4_1106_preview_outputs.json'), '--judge', `openai:${s.url}#j`, '--data', DATA, '--out', dir, '--limit', '50']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(s.requests.length, 0);
    const csv = readFileSync(join(dir, 'weighted_alpaca_eval_gpt4_turbo', 'leaderboard.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], ',win_rate,standard_error,n_wins,n_wins_base,n_draws,n_total,discrete_win_rate,mode,avg_length,length_controlled_winrate,lc_standard_error');
    const row = csv[1]!.split(',');
    assert.equal(row[1], '50');
    assert.equal(row[10], '50');
    assert.equal(row[7], '50');
    assert.equal(row[6], '50');
    const ann = JSON.parse(readFileSync(join(dir, 'weighted_alpaca_eval_gpt4_turbo', 'annotations.json'), 'utf8')) as { preference: number; generator_1: string }[];
    assert.equal(ann.length, 50);
    assert.ok(ann.every((a) => a.preference === 1.5 && a.generator_1 === 'gpt4_1106_preview'));
  } finally {
    await s.close();
    removeDir(dir);
  }
});

/**
 * The model's outputs for the first n instructions: each carries a marker the scripted judge finds, and is the
 * reference's length plus 16 + 50 k characters (length differences that vary, so the LC fit is identified).
 */
function writeOutputs(dir: string, n: number): string {
  const path = join(dir, 'outputs.json');
  writeFileSync(path, JSON.stringify(refs().slice(0, n).map((r, k) => ({ instruction: r.instruction, output: `MODEL-OUTPUT-${k} ${r.output}${'y'.repeat(50 * k)}`, generator: 'm1' }))));
  return path;
}

/** P(model better) that the script gives instruction k; k = 4 gets a garbage answer. */
const pModel = (k: number): number => [0.9, 0.2, 0.7, 0.55, NaN, 0.35][k]!;

/** The weighted annotator's answer: log-probs of m and M with P(model) for the slot the model's output is in. */
function alpacaScript(delayMs = 0): (body: { messages: { content: string }[] }) => Reply {
  return (body) => {
    const user = body.messages[1]!.content;
    const k = Number(/MODEL-OUTPUT-(\d+)/.exec(user)![1]);
    const modelIsM = user.indexOf('MODEL-OUTPUT') < user.indexOf('"model_identifier": "M"');
    const p = pModel(k);
    const reply: Reply = Number.isNaN(p) ? { content: 'Both', top: [['Both', -0.1], ['The', -2]] } : { content: 'm', top: [['m', Math.log(modelIsM ? p : 1 - p)], ['M', Math.log(modelIsM ? 1 - p : p)], ['x', -9]] };
    return delayMs ? { delayMs, then: reply } : reply;
  };
}

test('alpaca-eval: preferences mapped back through the randomized order, garbage left out and counted, the leaderboard row', { skip: noData, timeout: 120_000 }, async () => {
  const dir = tempDir('bench-alpaca');
  const s = await scriptedJudge(alpacaScript());
  try {
    const r = await cli(['bench', 'alpaca-eval', '--outputs', writeOutputs(dir, 6), '--judge', `openai:${s.url}#j`, '--data', DATA, '--out', join(dir, 'out')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(s.requests.length, 6);
    const shownFirst = s.requests.map((b) => b.messages[1]!.content.indexOf('MODEL-OUTPUT') < b.messages[1]!.content.indexOf('"model_identifier": "M"'));
    assert.ok(shownFirst.includes(true) && shownFirst.includes(false), 'both orders occur among 6 instructions');
    const ann = JSON.parse(readFileSync(join(dir, 'out', 'weighted_alpaca_eval_gpt4_turbo', 'annotations.json'), 'utf8')) as { preference: number | null; verdict_method: string }[];
    ann.forEach((a, k) => {
      if (k === 4) assert.equal(a.preference, null);
      else assert.ok(Math.abs(a.preference! - (1 + pModel(k))) <= 8 * EPS64, `${k}: ${a.preference}`);
    });
    const rep = JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8'));
    const ps = [0, 1, 2, 3, 5].map(pModel);
    const mean = ps.reduce((x, y) => x + y) / 5;
    const sd = Math.sqrt(ps.reduce((x, p) => x + (p - mean) ** 2, 0) / 4);
    assert.ok(Math.abs(rep.win_rate - 100 * mean) <= 1e-12);
    assert.ok(Math.abs(rep.standard_error - (100 * sd) / Math.sqrt(5)) <= 1e-12);
    assert.deepEqual([rep.n_wins, rep.n_wins_base, rep.n_draws, rep.n_total, rep.n_unparseable], [3, 2, 0, 5, 1]);
    assert.deepEqual(rep.verdict_methods, { logprobs: 5, null: 1 });
    assert.equal(rep.judge.verdicts.unparseable, 1);
    assert.deepEqual(rep.judge.usage, { prompt_tokens: 60, completion_tokens: 6 });
    assert.ok(Number.isFinite(rep.length_controlled_winrate) && rep.length_controlled_winrate > 0 && rep.length_controlled_winrate < 100);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('alpaca-eval killed with SIGKILL half-way, then rerun: the same report, no repeated calls for cached verdicts', { skip: noData, timeout: 180_000 }, async () => {
  const dir = tempDir('bench-kill');
  const n = 6;
  const s = await scriptedJudge(alpacaScript(150));
  try {
    const outputs = writeOutputs(dir, n);
    const args = (out: string): string[] => ['bench', 'alpaca-eval', '--outputs', outputs, '--judge', `openai:${s.url}#j`, '--data', DATA, '--out', out, '--judge-concurrency', '1'];
    const cache = join(dir, 'a', 'judge_cache.jsonl');
    const lines = (): number => (existsSync(cache) ? readFileSync(cache, 'utf8').split('\n').filter((l) => l.trim()).length : 0);
    const killed = await cli(args(join(dir, 'a')), (kill) => {
      const t = setInterval(() => {
        if (lines() >= 2) {
          clearInterval(t);
          kill();
        }
      }, 10);
    });
    assert.equal(killed.signal, 'SIGKILL');
    assert.ok(!existsSync(join(dir, 'a', 'report.json')), 'killed before the report');
    const cachedAtKill = lines();
    assert.ok(cachedAtKill >= 2 && cachedAtKill < n, `${cachedAtKill} cached`);
    // A request the child sent just before it died may still be read by the server: let it arrive first.
    await new Promise((r) => setTimeout(r, 300));
    const before = s.requests.length;
    const resumed = await cli(args(join(dir, 'a')));
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.equal(s.requests.length - before, n - cachedAtKill, 'only the uncached verdicts are asked again');
    const afterResume = s.requests.length;
    const fresh = await cli(args(join(dir, 'b')));
    assert.equal(fresh.status, 0, fresh.stderr);
    assert.equal(s.requests.length - afterResume, n);
    for (const f of ['weighted_alpaca_eval_gpt4_turbo/leaderboard.csv', 'weighted_alpaca_eval_gpt4_turbo/annotations.json']) {
      assert.equal(readFileSync(join(dir, 'a', f), 'utf8'), readFileSync(join(dir, 'b', f), 'utf8'), f);
    }
    const rep = JSON.parse(readFileSync(join(dir, 'a', 'report.json'), 'utf8'));
    assert.equal(rep.judge.cacheHits, cachedAtKill);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('arena-hard: both orders judged, labels weighted as show_result.py (>> counts 3), ties half, no verdict left out', { skip: noData, timeout: 120_000 }, async () => {
  const dir = tempDir('bench-arena');
  const qs = readFileSync(join(DATA, 'arena_hard_v0.1_question.jsonl'), 'utf8').trim().split('\n').slice(0, 3).map((l) => JSON.parse(l) as { question_id: string });
  // Per question, the label of game 1 (baseline = A) and game 2 (model = A); null: no label even after the retry.
  const labels: [string | null, string | null][] = [['B>>A', 'A>B'], ['A=B', 'B>A'], [null, 'A>>B']];
  const s = await scriptedJudge((body) => {
    const user = body.messages[1]!.content;
    const k = Number(/ANSWER-(\d)/.exec(user)![1]);
    const game = user.indexOf('ANSWER-') < user.indexOf("<|The Start of Assistant B's Answer|>") ? 1 : 0;
    const label = labels[k]![game];
    return { content: label ? `My final verdict: [[${label}]]` : 'I cannot decide.' };
  });
  try {
    const outputs = join(dir, 'answers.jsonl');
    writeFileSync(outputs, qs.map((q, k) => JSON.stringify({ question_id: q.question_id, model_id: 'm1', choices: [{ index: 0, turns: [{ content: `ANSWER-${k}`, token_len: 10 + k }] }] })).join('\n') + '\n');
    const r = await cli(['bench', 'arena-hard', '--outputs', outputs, '--judge', `openai:${s.url}#judge/x`, '--data', DATA, '--out', join(dir, 'out'), '--limit', '3']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(s.requests.length, 7, 'six games, one asked again');
    const rep = JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8'));
    // model wins 3 + 1 + 3, one tie, one loss: (7 + 0.5) / 9.
    assert.equal(rep.battles, 9);
    assert.equal(rep.score, Math.round((7.5 / 9) * 10000) / 100);
    assert.equal(rep.unparseable, 1);
    assert.ok(rep.lower <= rep.score && rep.score <= rep.upper && rep.lower >= 0 && rep.upper <= 100);
    assert.equal(rep.avg_tokens, 11);
    const j = readFileSync(join(dir, 'out', 'model_judgment', 'judge_x', 'answers.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(j.map((x: { games: { score: string | null }[] }) => x.games.map((g) => g.score)), labels);
    assert.equal(j[0].judge, 'judge/x');
    const csv = readFileSync(join(dir, 'out', 'leaderboard.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'model,score,rating_q025,rating_q975,CI,avg_tokens,date');
    assert.match(csv[1]!, /^answers,83\.33,/);
    assert.match(csv[2]!, /^gpt-4-0314,50,50,50,"\(-0\.00, \+0\.00\)",/);
    assert.match(r.stdout, /answers\s+\| score: 83\.3 \| 95% CI:/);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('mt-bench: single grading per turn with the reference prompts for math/reasoning/coding; the turn and category means', { skip: noData, timeout: 120_000 }, async () => {
  const dir = tempDir('bench-mt');
  const qs = readFileSync(join(DATA, 'mt_bench_question.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { question_id: number; category: string });
  // One writing question and one math question.
  const pick = [qs.find((q) => q.category === 'writing')!, qs.find((q) => q.category === 'math')!];
  const score = (qid: number, turn: number): string => (qid === pick[0]!.question_id ? (turn === 1 ? 'Rating: [[8]]' : 'Rating: [6.5]') : turn === 1 ? 'Rating: [[3]]' : 'no rating here');
  const s = await scriptedJudge((body) => {
    const user = body.messages.at(-1)!.content;
    const qid = Number(/ANS-(\d+)-/.exec(user)![1]);
    return { content: score(qid, user.includes('-T2') ? 2 : 1) };
  });
  try {
    const outputs = join(dir, 'answers.jsonl');
    // --limit covers both picked questions (the first writing one, the first math one) and those between.
    const all = qs.filter((q) => q.question_id <= pick[1]!.question_id);
    writeFileSync(outputs, all.map((q) => JSON.stringify({ question_id: q.question_id, choices: [{ index: 0, turns: [`ANS-${q.question_id}-T1`, `ANS-${q.question_id}-T2`] }] })).join('\n') + '\n');
    const r = await cli(['bench', 'mt-bench', '--outputs', outputs, '--judge', `openai:${s.url}#j`, '--data', DATA, '--out', join(dir, 'out'), '--limit', String(all.length)]);
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(readFileSync(join(dir, 'out', 'results.json'), 'utf8'));
    const judg = readFileSync(join(dir, 'out', 'model_judgment', 'j_single.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(judg.length, 2 * all.length);
    const math = judg.filter((x: { question_id: number }) => x.question_id === pick[1]!.question_id);
    assert.deepEqual(math.map((x: { judge: string[] }) => x.judge[1]).sort(), ['single-math-v1', 'single-math-v1-multi-turn']);
    assert.ok(math[0].user_prompt.includes('[The Start of Reference Answer]'));
    const writing = judg.filter((x: { question_id: number }) => x.question_id === pick[0]!.question_id);
    assert.deepEqual(writing.map((x: { score: number }) => x.score).sort(), [6.5, 8]);
    // Every other question (ids without a scripted rating): "no rating here" on turn 2, [[3]] on turn 1.
    const t1 = judg.filter((x: { turn: number }) => x.turn === 1).map((x: { score: number }) => x.score);
    const t2 = judg.filter((x: { turn: number; score: number }) => x.turn === 2 && x.score !== -1).map((x: { score: number }) => x.score);
    const m = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(Math.abs(res.first_turn - m(t1)) <= 1e-12);
    assert.ok(Math.abs(res.second_turn - m(t2)) <= 1e-12);
    assert.equal(res.n_unparseable, all.length - 1);
    assert.equal(res.categories.math, 3);
    assert.match(r.stdout, /########## First turn ##########/);
  } finally {
    await s.close();
    removeDir(dir);
  }
});
