// lm-evaluation-harness 0.4.13 (a real client's own code) against `sppo serve` on the tiny Llama fixture, on a
// small local task (JSONL files, no download) with a multiple-choice part (loglikelihood: echo, max_tokens 1,
// logprobs 1 over token-id prompts; tokenised through sppo serve's /tokenizer_info, /tokenize and /detokenize,
// lm-eval's "remote" tokenizer) and a generate_until part:
//   local-completions        the multiple-choice and the generation task
//   local-chat-completions   the generation task (lm-eval's chat model has no loglikelihood), chat template applied
// Then checks, in process with the same fixture: every log-likelihood lm-eval got equals the sum of sppo's own
// tokenLogprobs over the continuation's tokens (split as lm-eval splits context and continuation) to float32
// rounding, lm-eval's accuracy equals the one computed from sppo's log-likelihoods, and every generation equals
// the same request made in process (greedy generate() on the same token ids, cut at the same stop strings).
// Prints lm-eval's scores beside sppo's; exits 1 on any difference.
//
//   node scripts/lm-eval.mjs [--if-available]      (after the build; npm run check:lm-eval)
// lm-eval lives in .venv/lm-eval-0.4.13 (git-ignored), made with `python3 -m venv` and pip from whatever index pip
// is configured for (this machine kind: a local wheelhouse): lm_eval==0.4.13 without its dependencies (some are not
// in the wheelhouse and only serve tasks not used here), then those its import and these tasks need.
// LM_EVAL_PYTHON=/path/to/python uses an existing environment instead. --if-available: where lm-eval cannot be
// installed, print one line saying so and exit 0 (CI).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lastLine, pythonVenv } from './venv.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = (m) => console.error(`[lm-eval] ${m}`);
const ifAvailable = process.argv.includes('--if-available');
const INSTALLS = [
  ['--no-deps', 'lm_eval==0.4.13'],
  ['sacrebleu', 'tenacity', 'aiohttp', 'requests', 'datasets', 'more_itertools', 'numexpr', 'dill', 'pyyaml', 'jinja2'],
];

function fail(why) {
  if (ifAvailable) {
    console.log(`[lm-eval] skipped: ${why} (this run needs python3 with venv, and pip able to install lm_eval==0.4.13 and its dependencies)`);
    process.exit(0);
  }
  log(why);
  process.exit(1);
}

/** $LM_EVAL_PYTHON, else the python of an environment with lm-eval, made once (scripts/venv.mjs). */
function python() {
  if (process.env.LM_EVAL_PYTHON) return process.env.LM_EVAL_PYTHON;
  return pythonVenv('lm-eval-0.4.13', INSTALLS, { log, fail });
}

const fixtures = resolve(process.env.SPPO_HF_FIXTURES ?? join(root, '../shared/fixtures/hf-tiny'));
const modelDir = join(fixtures, 'llama');
if (!existsSync(join(modelDir, 'model.safetensors'))) fail(`no llama fixture at ${modelDir}`);
if (!existsSync(join(root, 'dist', 'src', 'index.js'))) fail('not built (run `node scripts/setup.mjs` first)');
const py = python();
const check = spawnSync(py, ['-c', 'import lm_eval, lm_eval.evaluator; from lm_eval.models import openai_completions'], { encoding: 'utf8' });
if (check.status !== 0) fail(`lm_eval does not import: ${lastLine(check.stderr)}`);

// The task: a multiple-choice part and a generation part, from JSONL files.
const work = mkdtempSync(join(tmpdir(), 'sppo-lm-eval-'));
const mc = [
  { question: 'The cat sat on the', choices: ['mat', 'moon', 'river'], answer: 0 },
  { question: 'One, two, three,', choices: ['four', 'blue', 'seven'], answer: 0 },
  { question: 'The sky is', choices: ['blue', 'green', 'loud'], answer: 0 },
  { question: 'hello', choices: ['world', 'there', 'friend'], answer: 1 },
  { question: 'Water is', choices: ['wet', 'dry', 'a number'], answer: 0 },
];
const gen = [
  { question: 'The cat sat on the', answer: ' mat' },
  { question: 'hello there', answer: ' world' },
  { question: 'Count: one, two,', answer: ' three' },
  { question: 'A B C D', answer: ' E' },
];
writeFileSync(join(work, 'mc.jsonl'), mc.map((d) => JSON.stringify(d)).join('\n') + '\n');
writeFileSync(join(work, 'gen.jsonl'), gen.map((d) => JSON.stringify(d)).join('\n') + '\n');
const MAX_GEN = 8;
writeFileSync(join(work, 'sppo_mc.yaml'), `task: sppo_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: ${join(work, 'mc.jsonl')}
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{answer}}"
metric_list:
  - metric: acc
`);
writeFileSync(join(work, 'sppo_gen.yaml'), `task: sppo_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: ${join(work, 'gen.jsonl')}
test_split: test
output_type: generate_until
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: ${MAX_GEN}
  do_sample: false
metric_list:
  - metric: exact_match
`);
// lm-eval through its Python API (its CLI's table printer needs pytablewriter, not in the wheelhouse): the
// results and the logged samples as JSON.
const DRIVER = `
import json, sys, lm_eval
from lm_eval.tasks import TaskManager
model, base_url, tasks, chat, work = sys.argv[1], sys.argv[2], sys.argv[3].split(','), sys.argv[4] == '1', sys.argv[5]
r = lm_eval.simple_evaluate(model=model, model_args=f"model=tiny,base_url={base_url},num_concurrent=1,max_retries=1,tokenized_requests={not chat}" + ("" if chat else ",tokenizer_backend=remote"),
    tasks=tasks, task_manager=TaskManager(include_path=work), log_samples=True, apply_chat_template=chat, random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)
print(json.dumps({"results": r["results"], "samples": r["samples"]}, default=str))
`;

const { freePort } = await import(join(root, 'dist/src/util/ports.js'));
const port = await freePort();
const server = spawn(process.execPath, [join(root, 'bin', 'sppo.js'), 'serve', modelDir, '--host', '127.0.0.1', '--port', String(port), '--device', 'cpu', '--served-model-name', 'tiny'], { stdio: ['ignore', 'ignore', 'pipe'] });
let serverErr = '';
server.stderr.on('data', (d) => (serverErr += d));
const stopServer = () => {
  if (server.exitCode === null) server.kill('SIGTERM');
};
process.on('exit', stopServer);
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`http://127.0.0.1:${port}/health`)).status === 200) break;
  } catch {
    // not up yet
  }
  if (server.exitCode !== null || i > 600) {
    log(`sppo serve did not start:\n${serverErr}`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}

function lmEval(model, path, tasks, chat) {
  const env = { ...process.env, HF_DATASETS_OFFLINE: '1', HF_HUB_OFFLINE: '1', TOKENIZERS_PARALLELISM: 'false' };
  return new Promise((resolveRun, reject) => {
    const p = spawn(py, ['-c', DRIVER, model, `http://127.0.0.1:${port}${path}`, tasks, chat ? '1' : '0', work], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`lm-eval ${model} exited ${code}:\n${err.split('\n').slice(-15).join('\n')}`));
      resolveRun(JSON.parse(out.trim().split('\n').pop()));
    });
  });
}

let failures = 0;
const expect = (ok, what) => {
  if (!ok) {
    failures++;
    console.log(`  MISMATCH: ${what}`);
  }
};
try {
  const t0 = Date.now();
  const completions = await lmEval('local-completions', '/v1/completions', 'sppo_mc,sppo_gen', false);
  const chat = await lmEval('local-chat-completions', '/v1/chat/completions', 'sppo_gen', true);
  const seconds = ((Date.now() - t0) / 1000).toFixed(1);

  // sppo in process: the same fixture, tokenizer and chat template.
  const { loadModel } = await import(join(root, 'dist/src/models/index.js'));
  const { Tokenizer } = await import(join(root, 'dist/src/text/tokenizer.js'));
  const { ChatTemplate } = await import(join(root, 'dist/src/text/chat_template.js'));
  const { generate } = await import(join(root, 'dist/src/generate/index.js'));
  const { noGrad, tensor } = await import(join(root, 'dist/src/torch/index.js'));
  const model = loadModel(modelDir);
  const tok = Tokenizer.fromFolder(modelDir);
  const template = ChatTemplate.fromFolder(modelDir, { specialTokens: tok.specialTokens });
  const encode = (s) => tok.encode(s, { addSpecialTokens: false }); // lm-eval's remote tokenizer: /tokenize without special tokens
  /** lm-eval's split of a (context, continuation) pair: trailing spaces move to the continuation; the whole is encoded, then split. */
  const pair = (context, continuation) => {
    const n = context.length - context.trimEnd().length;
    if (n > 0) {
      continuation = context.slice(-n) + continuation;
      context = context.slice(0, -n);
    }
    const whole = encode(context + continuation);
    const ctx = encode(context);
    return [ctx, whole.slice(ctx.length)];
  };
  /** sppo's log-likelihood of the continuation: the sum of tokenLogprobs over its tokens, and the bound of float32 rounding. */
  const loglik = (ctx, cont) => {
    const ids = [...ctx, ...cont];
    const lp = noGrad(() => {
      const t = model.tokenLogprobs({ inputIds: tensor(BigInt64Array.from(ids, BigInt)).unsqueeze(0) });
      const a = Array.from(t.toTypedArray());
      t.dispose();
      return a;
    });
    const terms = lp.slice(ctx.length - 1);
    return { sum: terms.reduce((a, b) => a + b, 0), bound: terms.length * 2 ** -24 * terms.reduce((a, b) => a + Math.abs(b), 0) };
  };

  /** A sample's request arguments: [arg_0, arg_1] per request (lists from the API, {arg_0, arg_1} in lm-eval's saved files). */
  const args = (s) => (Array.isArray(s.arguments) ? s.arguments : Object.values(s.arguments).map((a) => [a.arg_0, a.arg_1]));
  // Multiple choice: each choice's log-likelihood, and the accuracy.
  let worst = 0;
  let correct = 0;
  const mcSamples = completions.samples.sppo_mc;
  for (const s of mcSamples) {
    const lls = args(s).map((a, i) => {
      const [ctx, cont] = pair(a[0], a[1]);
      const own = loglik(ctx, cont);
      const theirs = Number(s.filtered_resps[i][0]);
      worst = Math.max(worst, Math.abs(theirs - own.sum));
      expect(Math.abs(theirs - own.sum) <= own.bound, `doc ${s.doc_id} choice ${i}: lm-eval ${theirs}, sppo ${own.sum} (bound ${own.bound.toExponential(2)})`);
      return own.sum;
    });
    const best = lls.indexOf(Math.max(...lls));
    if (best === Number(s.target)) correct++;
  }
  const ownAcc = correct / mcSamples.length;
  const acc = completions.results.sppo_mc['acc,none'];
  expect(acc === ownAcc, `accuracy: lm-eval ${acc}, from sppo's log-likelihoods ${ownAcc}`);

  // Generations: the same requests in process (greedy, same token ids, same stop strings, same length).
  const eos = tok.specialTokens.eos_token;
  const cut = (text, stops) => stops.reduce((t, s) => (s && t.includes(s) ? t.slice(0, t.indexOf(s)) : t), text);
  const inProcess = (ids, stops) => cut(generate(model, [ids], { temperature: 0, maxNewTokens: MAX_GEN, stopStrings: stops, tokenizer: tok })[0].text, stops);
  const stops = ['\n', eos];
  let same = 0;
  for (const s of completions.samples.sppo_gen) {
    const own = inProcess(encode(args(s)[0][0]), stops);
    expect(s.resps[0][0] === own, `completions doc ${s.doc_id}: lm-eval ${JSON.stringify(s.resps[0][0])}, in process ${JSON.stringify(own)}`);
    if (s.resps[0][0] === own) same++;
  }
  let sameChat = 0;
  for (const s of chat.samples.sppo_gen) {
    const messages = JSON.parse(args(s)[0][0]);
    const ids = encode(template.render(messages, { addGenerationPrompt: true }));
    const own = inProcess(ids, stops);
    expect(s.resps[0][0] === own, `chat doc ${s.doc_id}: lm-eval ${JSON.stringify(s.resps[0][0])}, in process ${JSON.stringify(own)}`);
    if (s.resps[0][0] === own) sameChat++;
  }
  const em = completions.results.sppo_gen['exact_match,none'];
  const emChat = chat.results.sppo_gen['exact_match,none'];
  const ownEm = (samples, texts) => samples.filter((s, i) => texts[i] === s.target).length / samples.length;
  expect(em === ownEm(completions.samples.sppo_gen, completions.samples.sppo_gen.map((s) => inProcess(encode(args(s)[0][0]), stops))), 'exact_match (completions)');

  console.log(`lm-evaluation-harness 0.4.13 against sppo serve (tiny Llama fixture, CPU; lm-eval's runs took ${seconds} s):`);
  console.log(`  local-completions       sppo_mc  acc ${acc} (from sppo's own log-likelihoods: ${ownAcc}); ${mcSamples.length * 3} log-likelihoods, largest |lm-eval - sppo tokenLogprobs sum| = ${worst.toExponential(2)}`);
  console.log(`  local-completions       sppo_gen exact_match ${em}; ${same}/${completions.samples.sppo_gen.length} generations equal in-process generate()`);
  console.log(`  local-chat-completions  sppo_gen exact_match ${emChat}; ${sameChat}/${chat.samples.sppo_gen.length} generations equal in-process generate() (chat template applied)`);
} catch (e) {
  log(e.stack ?? e.message);
  failures++;
} finally {
  stopServer();
  rmSync(work, { recursive: true, force: true });
}
if (failures) {
  log(`${failures} mismatch(es)`);
  process.exit(1);
}
console.log('[lm-eval] ok');
process.exit(0);
