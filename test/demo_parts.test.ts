// The demo's parts that need no model: tokenizer files, task family, gold judge, demonstrations, report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeTokenizerFolder, VOCAB_SIZE, BOS_ID, EOS_ID } from '../src/demo/tokenizer.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { ChatTemplate } from '../src/text/chat_template.js';
import { heldOutPrompts, makeTask, parseResponse, render, STYLES, TASK_KINDS, taskOf, trainingPrompts } from '../src/demo/tasks.js';
import { goldPreference, goldVerdict, isCorrect, responseStats } from '../src/demo/gold_judge.js';
import { DEMO_STYLES, DEMO_STYLES_EQUILIBRIUM, demonstrations, parseStyleShares } from '../src/demo/demonstrations.js';
import { HELD_OUT_COUNT, HELD_OUT_SEED, STREAM_PROXY, STREAM_SPPO, STREAM_VALID, VALID_COUNT } from '../src/demo/constants.js';
import { bestOfK, evaluatePolicy, formatPolicyEval } from '../src/demo/policy_eval.js';
import { averageIterate, DEMO_HYPER, meanOfRuns, pickFinal, pickFinalists, pickSetting, sampleDetails, SEARCH_GRID } from '../src/demo/run.js';
import { existsSync, readFileSync } from 'node:fs';
import { sppoCli } from './helpers/cli.js';
import { projectRoot } from './helpers/fixtures.js';
import { chartSpecs, formatTable, reportHtml } from '../src/demo/report.js';
import { syntheticReport } from '../src/demo/synthetic.js';
import { createRng } from '../src/sppo/rng.js';
import { removeDir, tempDir } from './text_helpers.js';

test('demo tokenizer: loads, renders the chat template, and decodes every text back exactly', () => {
  const dir = tempDir('demo-tok');
  try {
    writeTokenizerFolder(dir);
    const tok = Tokenizer.fromFolder(dir);
    assert.equal(tok.vocabSize, VOCAB_SIZE);
    assert.equal(tok.bosTokenId, BOS_ID);
    assert.equal(tok.eosTokenId, EOS_ID);
    assert.deepEqual([...tok.eosTokenIds], [EOS_ID]);
    const chat = ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens });
    assert.equal(chat.render([{ role: 'user', content: 'Add 3+5.' }], { addGenerationPrompt: true }), '<s><|user|>Add 3+5.<|assistant|>');
    assert.equal(chat.render([{ role: 'user', content: 'Q' }, { role: 'assistant', content: 'A' }]), '<s><|user|>Q<|assistant|>A</s>');
    const ids = tok.encode('<s><|user|>Add 3+5.<|assistant|>', { addSpecialTokens: false });
    assert.equal(ids.length, 2 + 'Add 3+5.'.length + 1, 'special tokens are one id each, characters one id each');
    assert.deepEqual(tok.encode('ab', { addSpecialTokens: true }), [BOS_ID, ...tok.encode('ab', { addSpecialTokens: false })]);
    const rng = createRng(3);
    const texts = [' lead  and trail ', 'x\ny', '~!@#$%^&*()_+{}|:"<>?`-=[]\\;\',./', ''];
    for (let i = 0; i < 200; i++) {
      const t = makeTask(TASK_KINDS[i % TASK_KINDS.length]!, rng);
      texts.push(t.prompt, ...STYLES.map((s) => render(s, t.answer)));
    }
    for (const t of texts) assert.equal(tok.decode(tok.encode(t, { addSpecialTokens: false })), t, JSON.stringify(t));
    const withSpecial = '<s><|user|>hi<|assistant|>It is 8.</s>';
    assert.equal(tok.decode(tok.encode(withSpecial, { addSpecialTokens: false })), withSpecial);
    assert.equal(tok.decode(tok.encode(withSpecial, { addSpecialTokens: false }), { skipSpecialTokens: true }), 'hiIt is 8.');
    assert.deepEqual(tok.encode('é', { addSpecialTokens: false }), [tok.unkTokenId]);
  } finally {
    removeDir(dir);
  }
});

test('tasks: every prompt is parsed back with its answer; styles round-trip; malformed answers are "other"', () => {
  const rng = createRng(11);
  for (let i = 0; i < 800; i++) {
    const t = makeTask(TASK_KINDS[i % TASK_KINDS.length]!, rng);
    assert.deepEqual(taskOf(t.prompt), t);
    for (const s of STYLES) assert.deepEqual(parseResponse(render(s, t.answer)), { style: s, payload: t.answer });
  }
  assert.equal(taskOf('Add 3+5.')!.answer, '8');
  assert.equal(taskOf('Sort 4 1 3.')!.answer, '1 3 4');
  assert.equal(taskOf('Reverse cat.')!.answer, 'tac');
  assert.equal(taskOf('Hello?'), undefined);
  for (const bad of ['8.', 'it is 8', 'Answer 8', 'It is: 8', '', 'It is 8', 'Answer: ', '8 !']) assert.equal(parseResponse(bad).style, 'other', bad);
});

test('tasks: held-out prompts are distinct and never among the training prompts or the demonstrations', () => {
  const held = heldOutPrompts(256, 0);
  const set = new Set(held.map((t) => t.prompt));
  assert.equal(set.size, 256);
  for (const kind of TASK_KINDS) assert.equal(held.filter((t) => t.kind === kind).length, 32);
  for (const stream of [STREAM_PROXY, STREAM_SPPO]) {
    const tr = trainingPrompts(400, 0, held, stream);
    assert.equal(new Set(tr.map((t) => t.prompt)).size, 400);
    for (const t of tr) assert.ok(!set.has(t.prompt), t.prompt);
  }
  const demos = demonstrations(3000, 1, set);
  for (const d of demos) assert.ok(!set.has(d.prompt), d.prompt);
  // mixed quality: about half correct, and correctness as the gold judge sees it
  const share = demos.filter((d) => d.correct).length / demos.length;
  assert.ok(share > 0.4 && share < 0.6, `${share}`);
  for (const d of demos.slice(0, 500)) assert.equal(isCorrect(d.prompt, d.response), d.correct, `${d.prompt} ${d.response}`);
  assert.deepEqual(heldOutPrompts(256, 0), held, 'seeded');
});

test('demonstrations: style shares as given (the starter\'s last run: the gold style game\'s equilibrium); bad shares are named', () => {
  const held = new Set(heldOutPrompts(256, 0).map((t) => t.prompt));
  const n = 4000;
  const demos = demonstrations(n, 7, held, DEMO_STYLES_EQUILIBRIUM);
  for (const [style, p] of Object.entries(DEMO_STYLES_EQUILIBRIUM)) {
    const share = demos.filter((d) => d.style === style).length / n;
    // binomial: 5 standard errors sqrt(p (1 - p) / n) (0.037 at p = 0.4); a share of exactly 0 stays 0
    assert.ok(Math.abs(share - p) <= 5 * Math.sqrt((p * (1 - p)) / n), `${style}: ${share} vs ${p}`);
  }
  for (const d of demos.slice(0, 500)) assert.equal(parseResponse(d.response).style, d.style, d.response);
  // the default shares are DEMO_STYLES
  assert.deepEqual(demonstrations(50, 3, held), demonstrations(50, 3, held, DEMO_STYLES));
  assert.deepEqual(parseStyleShares('0.325,0.4,0.275,0'), DEMO_STYLES_EQUILIBRIUM);
  assert.throws(() => parseStyleShares('0.5,0.5,0'), /expected 4 comma-separated numbers/);
  assert.throws(() => parseStyleShares('0.5,-0.1,0.6,0'), /sentence must be a number >= 0, got '-0.1'/);
  assert.throws(() => parseStyleShares('0.5,0.4,0.3,0'), /must sum to 1, got 1.2/);
});

test('gold judge: correctness first, then a 3-cycle of styles and a mild length term; P(a>b) + P(b>a) = 1', () => {
  const q = 'Add 3+5.';
  assert.equal(goldPreference(q, '8', 'It is 9.'), 0.95);
  assert.equal(goldPreference(q, 'Answer: 7', 'It is 8.'), 1 - 0.95);
  assert.equal(goldPreference(q, 'It is 8.', 'It is 8.'), 0.5);
  // the cycle among three correct answers: no reward orders them
  const t = '8', s = 'It is 8.', f = 'Answer: 8';
  const ts = goldPreference(q, t, s), sf = goldPreference(q, s, f), ft = goldPreference(q, f, t);
  assert.ok(ts > 0.5 && sf > 0.5 && ft > 0.5, `${ts} ${sf} ${ft}`);
  // length term: within +-0.1 of the style term, towards the longer response
  assert.ok(Math.abs(ts - 0.7) <= 0.1 && ts < 0.7, `${ts}`);
  assert.ok(Math.abs(sf - 0.7) <= 0.1);
  assert.ok(ft > 0.7);
  // same style, both wrong: the longer one is mildly preferred
  const long = goldPreference(q, 'It is 123456.', 'It is 9.');
  assert.ok(long > 0.5 && long <= 0.6, `${long}`);
  // styled beats malformed when both are wrong (a malformed answer is never correct)
  assert.ok(goldPreference(q, 'It is 9.', '8.') > 0.7);
  assert.equal(goldVerdict(q, '8.', '8').bCorrect, true);
  const rng = createRng(5);
  const pool = ['8', 'It is 8.', 'Answer: 8', '9', 'It is 19.', 'Answer: 7', '8.', 'eight', 'It is: 8', ''];
  for (let i = 0; i < 300; i++) {
    const a = pool[rng.int(pool.length)]!, b = pool[rng.int(pool.length)]!;
    const p = goldPreference(q, a, b);
    assert.ok(p >= 0.02 && p <= 0.98);
    assert.ok(Math.abs(p + goldPreference(q, b, a) - 1) < 1e-12);
  }
  assert.throws(() => goldPreference('not a task', 'a', 'b'), /not a prompt of the demo's task family/);
  const st = responseStats([q, q, q, q], ['8', 'It is 9.', 'Answer: 8', 'junk!']);
  assert.equal(st.correct, 0.5);
  assert.deepEqual(st.styles, { terse: 0.25, sentence: 0.25, formatted: 0.25, other: 0.25 });
});

test('report: Table 1 layout and self-contained HTML with one SVG per chart', async () => {
  const d = syntheticReport();
  const table = formatTable(d.rows);
  assert.match(table.split('\n')[0]!, /method\s+iteration\s+LC win rate \(%\)\s+win rate \(%\)\s+avg\. length/);
  assert.match(table, /sppo\s+2\s+58\.0\s+60\.0 ± 2\.0\s+11\.0/);
  const html = await reportHtml(d);
  const n = chartSpecs(d).length;
  assert.equal((html.match(/<figure class="chart"/g) ?? []).length, n);
  assert.equal((html.match(/<svg/g) ?? []).length, n);
  assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html.replace(/xmlns(:xlink)?="[^"]*"/g, '')), 'no scripts or network references');
  assert.match(html, /a &lt;note&gt; &amp; more/);
  assert.deepEqual(chartSpecs(d).map((c) => c.id), ['win-rate', 'loss', 'length', 'correct', 'styles', 'exploitability']);
  const withDetails = formatTable(d.rows, d.details);
  assert.match(withDetails.split('\n')[0]!, /style exploitability \(length \/ cycle\)$/);
  // iteration 0 of the synthetic mix (0.2, 0.5, 0.25, 0.05): against the pure cycle terse wins
  // 0.2 .5 + 0.5 .7 + 0.25 .3 + 0.05 .8 = 0.565 -> 0.130
  assert.match(withDetails, /sppo\s+0 \(starter\).* \/ 0\.130$/m);
  assert.ok(join('a', 'b'));
});

test('validation prompts of the search: their own stream, never a held-out prompt; every method searched on the same grid', () => {
  const held = heldOutPrompts(HELD_OUT_COUNT, HELD_OUT_SEED);
  const heldSet = new Set(held.map((t) => t.prompt));
  const valid = trainingPrompts(VALID_COUNT, 0, held, STREAM_VALID);
  assert.equal(valid.length, VALID_COUNT);
  for (const t of valid) assert.ok(!heldSet.has(t.prompt), t.prompt);
  for (const m of ['sppo', 'dpo', 'ipo'] as const) assert.ok(SEARCH_GRID.some((h) => h.lr === DEMO_HYPER[m].lr && h.beta === DEMO_HYPER[m].beta), `${m}: a grid point`);
});

test("the search's choice: the smallest step within one standard error of the best point", () => {
  const pt = (lr: number, beta: number, win_rate: number, win_rate_se = 0.015) => ({ lr, beta, win_rate, win_rate_se });
  // best 1e-3 (0.606 +- 0.015): 5e-4 (0.599) is within one SE and the smaller lr; 2e-4 (0.578) is not.
  assert.deepEqual(pickSetting([pt(2e-4, 0.05, 0.578), pt(5e-4, 0.05, 0.599), pt(1e-3, 0.05, 0.606), pt(1e-3, 0.2, 0.551)]), { lr: 5e-4, beta: 0.05 });
  // same lr within one SE: the larger beta (the stronger pull towards pi_t)
  assert.deepEqual(pickSetting([pt(1e-4, 0.05, 0.55), pt(1e-4, 0.2, 0.56, 0.013)]), { lr: 1e-4, beta: 0.2 });
  assert.deepEqual(pickSetting([pt(1e-4, 0.05, 0.556, 0.013), pt(1e-4, 0.2, 0.545), pt(2e-4, 0.2, 0.566, 0.012)]), { lr: 1e-4, beta: 0.05 });
  // nothing within one SE: the best point itself
  assert.deepEqual(pickSetting([pt(1e-4, 0.05, 0.5, 0.01), pt(5e-4, 0.2, 0.6, 0.01)]), { lr: 5e-4, beta: 0.2 });
  assert.throws(() => pickSetting([]), /no search points/);
});

test("the search's second stage: the best one-iteration points go on; the choice, the least exploitable style mix within one standard error of the best final win rate", () => {
  const pt = (lr: number, beta: number, win_rate: number) => ({ lr, beta, win_rate, win_rate_se: 0.015 });
  // the n best by win rate; a tie goes to the smaller step (the smaller lr, then the larger beta)
  const one = [pt(1e-4, 0.05, 0.55), pt(1e-3, 0.05, 0.6), pt(5e-4, 0.1, 0.58), pt(2e-4, 0.05, 0.58), pt(2e-4, 0.2, 0.58)];
  assert.deepEqual(pickFinalists(one, 3).map((p) => [p.lr, p.beta]), [[1e-3, 0.05], [2e-4, 0.2], [2e-4, 0.05]]);
  assert.equal(pickFinalists(one, 9).length, one.length);
  assert.deepEqual(pickFinalists(one, 0), []);
  const fin = (lr: number, beta: number, win_rate: number, style_exploitability: number) => ({ lr, beta, win_rate, win_rate_se: 0.016, style_exploitability });
  // best 0.634 +- 0.016: 0.633 and 0.632 are within one SE, 0.608 is not (however low its exploitability)
  assert.deepEqual(pickFinal([fin(1e-3, 0.05, 0.608, 0.01), fin(5e-4, 0.1, 0.633, 0.030), fin(2e-4, 0.05, 0.632, 0.072), fin(5e-4, 0.05, 0.634, 0.015)]), { lr: 5e-4, beta: 0.05 });
  assert.deepEqual(pickFinal([fin(1e-3, 0.05, 0.608, 0.01), fin(5e-4, 0.1, 0.633, 0.012), fin(5e-4, 0.05, 0.634, 0.015)]), { lr: 5e-4, beta: 0.1 });
  // the same exploitability: the smaller step
  assert.deepEqual(pickFinal([fin(1e-3, 0.05, 0.63, 0.02), fin(1e-4, 0.2, 0.62, 0.02)]), { lr: 1e-4, beta: 0.2 });
  // a lone best point
  assert.deepEqual(pickFinal([fin(1e-4, 0.2, 0.603, 0.171), fin(2e-4, 0.1, 0.586, 0.183)]), { lr: 1e-4, beta: 0.2 });
  assert.throws(() => pickFinal([]), /no finalists/);
});

test("a finalist's figures: the means of its seeds' runs, the standard error of the mean win rate", () => {
  const run = (seed: number, wr: number[], se: number, expl: number, styles: Record<string, number>) => ({
    seed, iterations: wr.map((w, i) => ({ iteration: i + 1, win_rate: w, win_rate_se: se })), win_rate: wr.at(-1)!, win_rate_se: se, correct: 0.6 + seed / 100, styles, style_exploitability: expl,
  });
  const m = meanOfRuns([run(0, [0.6, 0.64], 0.016, 0.015, { terse: 0.3, sentence: 0.7 }), run(1, [0.62, 0.6], 0.012, 0.065, { terse: 0.5, formatted: 0.5 })]);
  assert.ok(Math.abs(m.win_rate - 0.62) < 1e-12);
  // sqrt((0.016^2 + 0.012^2) / 2 / 2) = sqrt(0.0001) = 0.01
  assert.ok(Math.abs(m.win_rate_se - 0.01) < 1e-12, String(m.win_rate_se));
  assert.deepEqual(m.iterations.map((x) => Number(x.win_rate.toFixed(12))), [0.61, 0.62]);
  assert.ok(Math.abs(m.style_exploitability - 0.04) < 1e-12);
  assert.ok(Math.abs(m.correct - 0.605) < 1e-12);
  assert.deepEqual(Object.fromEntries(Object.entries(m.styles).map(([k, v]) => [k, Number(v.toFixed(12))])), { terse: 0.4, sentence: 0.35, formatted: 0.25 });
  // one run: its own figures
  assert.equal(meanOfRuns([run(2, [0.5], 0.02, 0.1, {})]).win_rate_se, 0.02);
  assert.throws(() => meanOfRuns([]), /no runs/);
});

const starterDir = join(projectRoot, 'demo', 'starter');
test('policy-eval: correctness, pass@K per kind and style shares of the committed starter', { skip: existsSync(join(starterDir, 'model.safetensors')) ? false : 'demo/starter is missing' }, async () => {
  const tasks = heldOutPrompts(HELD_OUT_COUNT, HELD_OUT_SEED).slice(0, 16);
  const e = await evaluatePolicy({ model: starterDir, tasks, k: 3 });
  assert.equal(e.prompts, 16);
  assert.ok(e.correct >= 0 && e.correct <= e.passAtK && e.passAtK <= 1, `${e.correct} <= ${e.passAtK}`);
  const shares = Object.values(e.styles).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(shares - 1) < 1e-9);
  for (const k of TASK_KINDS) assert.ok(e.byKind[k].correct <= e.byKind[k].passAtK);
  assert.match(formatPolicyEval(e), /pass@3/);
  assert.equal(e.bestOfK, undefined);
  // against the starter itself: the best of 3 is correct on exactly the prompts where pass@3 is, and wins at least
  // as often as one sample would (>= 1/2 in expectation; the bound below allows 3 standard errors of noise)
  const v = await evaluatePolicy({ model: starterDir, tasks, k: 3, vs: starterDir });
  assert.ok(v.bestOfK);
  assert.equal(v.bestOfK.correct, v.passAtK);
  assert.ok(v.bestOfK.winRate > 0.5 - 3 * v.bestOfK.winRateSe && v.bestOfK.winRate < 1, JSON.stringify(v.bestOfK));
  assert.match(formatPolicyEval(v), /best of 3 .* gold win rate/);
});

test('sppo demo: every step takes --help, and a bad option is a usage error that names it (exit 2)', () => {
  for (const step of [[], ['run'], ['starter-inputs'], ['judge-data'], ['search'], ['policy-eval'], ['style-game']]) {
    const h = sppoCli(['demo', ...step, '--help']);
    assert.equal(h.status, 0, `${step.join(' ')}: ${h.stderr}`);
    assert.match(h.stdout, /^usage: sppo demo/);
    const bad = sppoCli(['demo', ...step, '--no-such-option']);
    assert.equal(bad.status, 2, `${step.join(' ')}: ${bad.stderr}`);
    assert.match(bad.stderr, /Unknown option '--no-such-option'/);
  }
  for (const [args, msg] of [
    [['--seed=-1'], /--seed must be an integer >= 0, got '-1'/],
    [['starter-inputs', '--dir', 'x', '--examples', '0'], /--examples must be an integer >= 1, got '0'/],
    [['judge-data', '--model', 'x'], /--dir is required/],
    [['policy-eval'], /--model is required/],
    [['search', '--finalists', '13'], /--finalists must be an integer in \[0, 12\], got '13'/],
  ] as const) {
    const r = sppoCli(['demo', ...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, msg);
  }
});

test('sppo demo policy-eval: --temperature, --top-p and --vs as a user runs them; bad values name the flag', { skip: existsSync(join(starterDir, 'model.safetensors')) ? false : 'demo/starter is missing' }, () => {
  const dir = tempDir('policy-eval-cli');
  const json = join(dir, 'e.json');
  const ok = sppoCli(['demo', 'policy-eval', '--model', starterDir, '--prompts', '8', '--k', '2', '--temperature', '0.7', '--top-p', '0.9', '--vs', starterDir, '--json', json]);
  assert.equal(ok.status, 0, ok.stderr);
  const e = JSON.parse(readFileSync(json, 'utf8')) as { prompts: number; k: number; passAtK: number; bestOfK: { correct: number; winRate: number } };
  assert.equal(e.prompts, 8);
  assert.equal(e.k, 2);
  assert.equal(e.bestOfK.correct, e.passAtK);
  assert.match(ok.stdout, /best of 2 .* gold win rate/);
  for (const [args, msg] of [
    [['--top-p', '0'], /--top-p must be a number in \(0, 1\], got '0'/],
    [['--temperature', 'hot'], /--temperature must be a number/],
    [['--vs', join(dir, 'missing')], /--vs .*missing: not a model folder \(no config.json\)/],
  ] as const) {
    const r = sppoCli(['demo', 'policy-eval', '--model', starterDir, '--prompts', '1', ...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, msg);
  }
  removeDir(dir);
});

test('best of K: a correct sample where there is one, judged by the gold judge against the opponent', () => {
  const add = { kind: 'add' as const, prompt: 'Add 3+5.', answer: '8' };
  const tasks = [add, add, add];
  const r = bestOfK(tasks, [['It is 9.', '8', 'Answer: 8'], ['9', 'It is 7.'], ['Answer: 8']], ['It is 9.', '8', 'It is 8.']);
  // 1: '8' (the first correct) against a wrong answer: 0.95. 2: no correct sample, '9' against a correct one: 0.05.
  // 3: both correct, formatted against sentence: 0.3 on style + 0.1 * (9 - 8) / 20 on length = 0.305.
  const p = [0.95, 0.05, 0.305];
  const mean = (0.95 + 0.05 + 0.305) / 3;
  assert.ok(Math.abs(r.winRate - mean) <= 1e-12, `${r.winRate}`);
  assert.ok(Math.abs(r.correct - 2 / 3) <= 1e-12);
  const se = Math.sqrt(p.reduce((a, x) => a + (x - mean) ** 2, 0) / 2 / 3);
  assert.ok(Math.abs(r.winRateSe - se) <= 1e-12, `${r.winRateSe} vs ${se}`);
  assert.throws(() => bestOfK(tasks, [['8']], ['8', '8', '8']), /3 prompts, 1 sample lists/);
  assert.throws(() => bestOfK([], [], []), /no prompts/);
});

test('sampleDetails: the style and correctness figures of every prompt\'s samples pooled (a mixture: its policies\' samples together)', () => {
  const add = { kind: 'add' as const, prompt: 'Add 3+5.', answer: '8' };
  const held = [add, add];
  const it1 = [['8', '8', 'It is 8.', 'It is 9.'], ['Answer: 8', '8', '8', '9']];
  const it2 = [['junk!', 'junk!', 'junk!', 'junk!'], ['Answer: 8', 'Answer: 8', 'Answer: 8', 'Answer: 8']];
  const one = sampleDetails('sppo', 1, held, [it1], 7);
  assert.equal(one.pairs, 7);
  assert.equal(one.correct, 6 / 8);
  assert.deepEqual(one.styles, { terse: 5 / 8, sentence: 2 / 8, formatted: 1 / 8, other: 0 });
  const mix = sampleDetails('sppo', 2, held, [it1, it2]);
  // the uniform mixture of the two: each style's share is the mean of the two policies' shares
  assert.deepEqual(mix.styles, { terse: (5 / 8 + 0) / 2, sentence: (2 / 8 + 0) / 2, formatted: (1 / 8 + 4 / 8) / 2, other: (0 + 4 / 8) / 2 });
  assert.equal(mix.correct, (6 / 8 + 4 / 8) / 2);
  assert.ok(typeof mix.style_exploitability === 'number' && mix.style_exploitability > 0);
});

test('average iterate: one iteration drawn uniformly per prompt, judged by the gold judge against the starter', () => {
  const n = 200;
  const prompts = Array<string>(n).fill('Add 3+5.');
  const starter = new Map(prompts.map((_, i) => [i, 'It is 9.']));
  const it1 = new Map(prompts.map((_, i) => [i, '8'])); // correct: beats the starter's wrong answer with 0.95
  const it2 = new Map(prompts.map((_, i) => [i, 'junk!'])); // both wrong: 'other' vs sentence 0.2, length (5 - 8) / 20 * 0.1
  const one = averageIterate('sppo', 1, [it1], starter, prompts);
  assert.ok(Math.abs(one.win_rate - 0.95) <= 1e-12);
  assert.equal(one.avg_length, 1);
  const two = averageIterate('sppo', 2, [it1, it2], starter, prompts);
  // the share s of prompts that drew iteration 1, from the mean length (1 character for '8', 5 for 'junk!')
  const s = (5 - two.avg_length) / 4;
  assert.ok(s > 0.3 && s < 0.7, `both iterations drawn, about equally (share of iteration 1: ${s})`);
  assert.ok(Math.abs(two.win_rate - (0.95 * s + 0.185 * (1 - s))) <= 1e-12);
  assert.deepEqual(averageIterate('sppo', 2, [it1, it2], starter, prompts), two, 'seeded: the same draws again');
});
