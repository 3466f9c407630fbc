// The HTTP judge inside `sppo run`: judge: {kind: openai, template: pairwise} as the training judge and
// evalJudge: {kind: openai, template: alpaca_eval} as the evaluation judge, against a scripted judge server
// that prefers the longer response (P(A) = sigmoid((len A - len B) / 8), given as log-probs). The preference
// matrices are the script's probabilities combined over both orders; verdicts are cached in the run
// directory, and eval.json reports the evaluation judge's counts and usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSppo } from '../src/sppo/loop.js';
import { parseConfig, type SppoConfigInput } from '../src/sppo/config.js';
import { symmetrize } from '../src/judge/oracle.js';
import { scriptedJudge, type ChatBody, type Reply } from './judge_server.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';
import { EPS64 } from './helpers/tolerances.js';

const model = join(fixtureRoot, 'llama');
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no llama fixture at ${model}`;
const sig = (x: number): number => 1 / (1 + Math.exp(-x));
/** The script's P(first shown beats second shown). */
const pLonger = (a: string, b: string): number => sig(([...a].length - [...b].length) / 8);

function script(body: ChatBody): Reply {
  const u = body.messages[1]!.content;
  let a: string;
  let b: string;
  let first: string;
  let second: string;
  const pw = /\[Response A\]\n([\s\S]*)\n\n\[Response B\]\n([\s\S]*)\n\nWhich response is better\?/.exec(u);
  if (pw) {
    [a, b] = [pw[1]!, pw[2]!];
    [first, second] = ['A', 'B'];
  } else {
    const ae = /"model_identifier": "m",\n {8}"output": """([\s\S]*)"""\n {4}},\n {4}{\n {8}"model_identifier": "M",\n {8}"output": """([\s\S]*)"""\n {4}}/.exec(u)!;
    [a, b] = [ae[1]!, ae[2]!];
    [first, second] = ['m', 'M'];
  }
  const p = pLonger(a, b);
  return { content: first, top: [[first, Math.log(p)], [second, Math.log(1 - p)]] };
}

test('config: judge {kind: openai} is checked field by field; relative cache and prompt paths are resolved', () => {
  const base = { model: 'm', prompts: 'p.jsonl', runDir: 'r' };
  assert.throws(() => parseConfig({ ...base, judge: { kind: 'openai', url: 'localhost:8000' } }), /judge\.url/);
  assert.throws(() => parseConfig({ ...base, judge: { kind: 'openai', url: 'http://h/v1', template: 'mmlu' } }), /judge\.template/);
  assert.throws(() => parseConfig({ ...base, judge: { kind: 'openai', url: 'http://h/v1', bogus: 1 } }), /bogus/);
  const c = parseConfig({ ...base, judge: { kind: 'openai', url: 'http://h/v1', cache: 'c.jsonl', judgePrompts: 'jp.jsonl' } }, { baseDir: '/x' });
  assert.deepEqual(c.judge, { kind: 'openai', url: 'http://h/v1', template: 'pairwise', cache: '/x/c.jsonl', judgePrompts: '/x/jp.jsonl' });
});

test('sppo run with an LLM judge over HTTP for training and evaluation: matrices from its log-probs, cache in the run dir, stats in eval.json', { skip, timeout: 180_000 }, async () => {
  const dir = tempDir('judge-loop');
  const s = await scriptedJudge(script);
  try {
    writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 10 }, (_, i) => JSON.stringify({ id: `p${i}`, prompt: `p${i} ${'cat '.repeat(i % 3)}` })).join('\n') + '\n');
    const config: SppoConfigInput = {
      model,
      prompts: join(dir, 'prompts.jsonl'),
      runDir: join(dir, 'run'),
      judge: { kind: 'openai', url: s.url, model: 'train-judge', template: 'pairwise' },
      evalJudge: { kind: 'openai', url: s.url, model: 'eval-judge', template: 'alpaca_eval' },
      iterations: 1,
      seed: 3,
      device: 'cpu',
      promptsPerIteration: 4,
      generation: { k: 3, temperature: 1, topP: 1, maxNewTokens: 8, batchSize: 4 },
      training: { loss: 'sppo', beta: 0.1, lr: 0.001, optimizer: 'adamw', batchSize: 4, maxLength: 64, maxPromptLength: 48, warmupRatio: 0 },
      eval: { count: 3 },
    } as SppoConfigInput;
    const logs: string[] = [];
    await runSppo(config, { log: (l) => logs.push(l), progress: false });
    const read = <T>(f: string): T[] => readFileSync(join(dir, 'run', 'iter-1', f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as T);
    const prefs = read<{ index: number; matrix: number[][] }>('preferences.jsonl');
    const gens = new Map(read<{ index: number; responses: { text: string }[] }>('generations.jsonl').map((g) => [g.index, g.responses.map((r) => r.text)]));
    assert.equal(prefs.length, 4);
    for (const p of prefs) {
      const responses = gens.get(p.index)!;
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          if (i === j) continue;
          const [a, b] = [responses[i]!, responses[j]!];
          const want = a === b ? 0.5 : symmetrize(pLonger(a, b), pLonger(b, a));
          assert.ok(Math.abs(p.matrix[i]![j]! - want) <= 64 * EPS64, `${p.matrix[i]![j]} vs ${want}`);
        }
      }
    }
    const trainRequests = s.requests.filter((r) => r.model === 'train-judge');
    assert.ok(trainRequests.length > 0 && trainRequests.every((r) => r.max_tokens === 1 && r.top_logprobs === 20));
    const evalJson = JSON.parse(readFileSync(join(dir, 'run', 'iter-1', 'eval.json'), 'utf8'));
    assert.equal(evalJson.judgeStats.template, 'alpaca_eval');
    assert.equal(evalJson.judgeStats.model, 'eval-judge');
    assert.equal(evalJson.judgeStats.verdicts.total, 2 * evalJson.n, 'both orders');
    assert.equal(evalJson.judgeStats.verdicts.unparseable, 0);
    assert.ok(logs.some((l) => /evaluation judge: 0 unparseable verdicts/.test(l)), logs.join('\n'));
    assert.ok(logs.some((l) => /iteration 1: judge so far: 0 unparseable verdicts of \d+ \(taken as 1\/2\)/.test(l)), logs.join('\n'));
    const cache = join(dir, 'run', 'judge-cache.jsonl');
    const lines = readFileSync(cache, 'utf8').trim().split('\n');
    assert.equal(lines.length, s.requests.length, 'every answer cached in the run directory');
  } finally {
    await s.close();
    removeDir(dir);
  }
});
