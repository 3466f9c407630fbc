// `sppo push DIR REPO` against a loopback Hub that takes uploads as the Hub's write API does (test/helpers/
// hub_fixture.ts: repository creation, preupload, the LFS batch API, NDJSON commits, each checked): a model folder
// arrives byte for byte, weights through LFS, sppo's partial files and locks left out, with a model card; downloaded
// again into an empty cache (downloadSnapshot, as `--model org/name` fetches) it is the same model; a second push
// does not upload stored LFS objects again; a missing or wrong token, and a private repository, behave as on the Hub.
// The card: an adapter's base model and PEFT's library name; a run checkpoint's starting model, settings and
// per-iteration figures. (The same server against huggingface_hub itself: scripts/python-interop.mjs hub.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeHub, hubFiles, NEW_REPO_GITATTRIBUTES } from './helpers/hub_fixture.js';
import { sppoAsync } from './helpers/cli.js';
import { hfTiny, projectRoot } from './helpers/fixtures.js';
import { removeDir, tempDir } from './text_helpers.js';
import { downloadSnapshot } from '../src/hub/download.js';
import { modelCard } from '../src/hub/upload.js';
import { existsSync } from 'node:fs';
import { runSppo } from '../src/sppo/loop.js';
import type { SppoConfigInput } from '../src/sppo/config.js';
import { LIKES_TOKEN_JUDGE } from './helpers/judges.js';

const skip = existsSync(join(hfTiny, 'qwen2', 'model.safetensors')) ? false : `no hf-tiny fixture at ${hfTiny}`;
const TOKEN = 'hf_write_token';

test('sppo push: a model folder arrives byte for byte in one commit (weights through LFS, partial files left out, a model card), loads back from the Hub, and pushes again without re-uploading its weights', { skip }, async () => {
  const dir = tempDir('push');
  const hub = await startFakeHub({}, { writeToken: TOKEN });
  try {
    const model = join(dir, 'model');
    cpSync(join(hfTiny, 'qwen2'), model, { recursive: true });
    for (const f of ['expected.json', 'expected.safetensors']) removeDir(join(model, f));
    writeFileSync(join(model, 'model.safetensors.tmp-4242'), 'partial'); // a killed writer's leftover
    writeFileSync(join(model, 'run.lock'), '4242\n');
    const env = { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN };
    const r = await sppoAsync(['push', model, 'tiny-org/pushed'], { env });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /created http:\/\/127\.0\.0\.1:\d+\/tiny-org\/pushed/);
    assert.match(r.stderr, /7 files -> http:\/\/127\.0\.0\.1:\d+\/tiny-org\/pushed \(commit [0-9a-f]{40}/);
    const repo = hub.repos['tiny-org/pushed']!;
    const local = hubFiles(model, (p) => !/tmp-|run\.lock/.test(p));
    assert.deepEqual(repo.files.map((f) => f.path).sort(), ['.gitattributes', 'README.md', ...local.map((f) => f.path)].sort());
    for (const f of local) assert.ok(repo.files.find((x) => x.path === f.path)!.bytes.equals(f.bytes), f.path);
    assert.equal(repo.files.find((f) => f.path === '.gitattributes')!.bytes.toString(), NEW_REPO_GITATTRIBUTES, 'the new repository\'s .gitattributes kept');
    assert.equal(hub.commits.length, 1);
    assert.equal(hub.commits[0]!.summary, 'Upload model with sppo');
    assert.ok(hub.commits[0]!.operations.includes('lfsFile model.safetensors'), 'the weights through LFS');
    assert.ok(hub.commits[0]!.operations.includes('file config.json'));
    const card = repo.files.find((f) => f.path === 'README.md')!.bytes.toString();
    assert.match(card, /^---\nlibrary_name: transformers\ntags:\n- sppo\npipeline_tag: text-generation\n---\n/);
    // Back from the Hub into an empty cache, as `--model tiny-org/pushed` fetches it: the same files.
    const got = await downloadSnapshot({ type: 'model', repo: 'tiny-org/pushed', revision: 'main' }, { cacheDir: join(dir, 'cache'), endpoint: hub.url, token: TOKEN, log: () => {} });
    for (const f of local.filter((f) => !f.path.startsWith('expected'))) assert.ok(readFileSync(join(got.dir, f.path)).equals(f.bytes), `${f.path} downloaded`);
    // A second push: a new commit, the stored weights not uploaded again, the card left as the repository has it
    // when the folder has its own (here it has none: written again, the same).
    const puts = hub.requests.filter((q) => q.method === 'PUT').length;
    const again = await sppoAsync(['push', model, 'tiny-org/pushed', '--message', 'Iteration 2'], { env });
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /created/);
    assert.equal(hub.requests.filter((q) => q.method === 'PUT').length, puts, 'no LFS upload for weights the Hub has');
    assert.equal(hub.commits.length, 2);
    assert.equal(hub.commits[1]!.summary, 'Iteration 2');
  } finally {
    await hub.close();
    removeDir(dir);
  }
});

test('sppo push: no token, a wrong token, a bad name and a private repository are clear errors, and nothing is committed', { skip }, async () => {
  const dir = tempDir('push-bad');
  const hub = await startFakeHub({}, { writeToken: TOKEN });
  try {
    const model = join(dir, 'm');
    mkdirSync(model);
    writeFileSync(join(model, 'config.json'), '{}');
    const none = await sppoAsync(['push', model, 'tiny-org/x'], { env: { HF_ENDPOINT: hub.url, HF_TOKEN: '', HF_HOME: join(dir, 'home') } });
    assert.equal(none.status, 1);
    assert.match(none.stderr, /pushing to tiny-org\/x at http:\/\/127\.0\.0\.1:\d+ needs a token with write access: set HF_TOKEN \(or run `hf auth login`\)/);
    const wrong = await sppoAsync(['push', model, 'tiny-org/x'], { env: { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_read_only' } });
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /tiny-org\/x at http:\/\/127\.0\.0\.1:\d+: cannot create the repository: .*Invalid credentials/);
    const name = await sppoAsync(['push', model, 'no-namespace'], { env: { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN } });
    assert.equal(name.status, 2);
    assert.match(name.stderr, /REPO: 'no-namespace' is not a repository name of the form namespace\/name/);
    assert.equal(hub.commits.length, 0);
    // --private: created private; anonymous reads are refused, the token's are not.
    const priv = await sppoAsync(['push', model, 'tiny-org/private', '--private', '--no-card'], { env: { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN } });
    assert.equal(priv.status, 0, priv.stderr);
    assert.match(priv.stderr, /\(private\)/);
    assert.deepEqual(hub.repos['tiny-org/private']!.files.map((f) => f.path).sort(), ['.gitattributes', 'config.json'], '--no-card: no README.md');
    const anon = await fetch(`${hub.url}/api/models/tiny-org/private/revision/main`);
    assert.equal(anon.status, 401);
  } finally {
    await hub.close();
    removeDir(dir);
  }
});

test('model cards: an adapter names its base model and PEFT; a run checkpoint its starting model, settings and per-iteration figures', () => {
  const dir = tempDir('card');
  try {
    const adapter = modelCard(join(projectRoot, 'test', 'fixtures', 'peft', 'llama', 'plain'), 'me/llama-lora');
    assert.match(adapter, /^---\nlibrary_name: peft\nbase_model: hf-tiny\/llama\ntags:\n- base_model:adapter:hf-tiny\/llama\n- sppo\n- lora\npipeline_tag: text-generation\n---\n\n# llama-lora\n/);
    assert.match(adapter, /A LoRA adapter \(PEFT's files\) of `hf-tiny\/llama`/);
    // A base given as a snapshot of the Hugging Face cache is named by its repository.
    const snap = join(dir, 'snap-adapter');
    mkdirSync(snap);
    writeFileSync(join(snap, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', base_model_name_or_path: '/root/.cache/huggingface/hub/models--Qwen--Qwen2.5-0.5B-Instruct/snapshots/7ae557604adf67be50417f59c2c2f167def9a775' }));
    assert.match(modelCard(snap, 'me/x'), /\nbase_model: Qwen\/Qwen2\.5-0\.5B-Instruct\n/);
    const run = join(dir, 'run');
    mkdirSync(join(run, 'iter-2', 'checkpoint'), { recursive: true });
    writeFileSync(join(run, 'iter-2', 'checkpoint', 'config.json'), JSON.stringify({ architectures: ['Qwen2ForCausalLM'] }));
    writeFileSync(join(run, 'run.json'), JSON.stringify({ format: 1, config: { model: 'Qwen/Qwen2.5-0.5B-Instruct', prompts: 'UCLA-AGI/data-mistral-7b-instruct-sppo-iter1', judge: { kind: 'pairrm', dir: 'llm-blender/PairRM-hf' }, iterations: 3, generation: { k: 5, temperature: 0.7, topP: 0.9 }, training: { loss: 'sppo', beta: 0.001, lr: 5e-7, epochs: 1 } } }));
    writeFileSync(join(run, 'summary.json'), JSON.stringify({ iterations: [
      { iteration: 1, checkpoint: 'iter-1/checkpoint', prompts: 200, pairs: 198, degeneratePairs: 2, eval: { n: 100, winRate: 0.55123, standardError: 0.031, lcWinRate: 0.54, avgLength: 180.5, avgReferenceLength: 170 } },
      { iteration: 2, checkpoint: 'iter-2/checkpoint', prompts: 200, pairs: 199, degeneratePairs: 1, eval: { n: 100, winRate: 0.6, standardError: 0.03, lcWinRate: 0.58, avgLength: 190, avgReferenceLength: 170 } },
    ], finalModel: 'iter-2/checkpoint' }));
    const card = modelCard(join(run, 'iter-2', 'checkpoint'), 'me/qwen-sppo-iter2');
    assert.match(card, /^---\nlibrary_name: transformers\nbase_model: Qwen\/Qwen2\.5-0\.5B-Instruct\ntags:\n- sppo\n- self-play-preference-optimization\npipeline_tag: text-generation\n---\n/);
    assert.match(card, /iteration 2 of a self-play preference optimization run .* starting from `Qwen\/Qwen2\.5-0\.5B-Instruct`/);
    assert.match(card, /\| beta \| 0\.001 \|/);
    assert.match(card, /\| samples per prompt \| 5 \|/);
    assert.match(card, /\| judge \| pairrm \|/);
    assert.match(card, /\| iteration \| prompts \| pairs \| win rate \| ± SE \| LC win rate \| mean length \|\n\| --- \| --- \| --- \| --- \| --- \| --- \| --- \|\n\| 1 \| 200 \| 198 \| 0\.5512 \| 0\.031 \| 0\.54 \| 180\.5 \|\n\| 2 \| 200 \| 199 \| 0\.6 \| 0\.03 \| 0\.58 \| 190 \|/);
  } finally {
    removeDir(dir);
  }
});

test('sppo run with push: each iteration\'s checkpoint goes to its own repository ({t}) with a card of the run so far; a resumed run does not push again', { skip: existsSync(join(hfTiny, 'llama', 'model.safetensors')) ? false : 'no llama fixture' }, async () => {
  const dir = tempDir('push-run');
  const hub = await startFakeHub({}, { writeToken: TOKEN });
  const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, HF_TOKEN: process.env.HF_TOKEN };
  process.env.HF_ENDPOINT = hub.url;
  process.env.HF_TOKEN = TOKEN;
  try {
    writeFileSync(join(dir, 'judge.mjs'), LIKES_TOKEN_JUDGE);
    writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `Say something about ${i}.` })).join('\n') + '\n');
    const cfg: SppoConfigInput = {
      model: join(hfTiny, 'llama'), prompts: 'prompts.jsonl', runDir: 'run', iterations: 2, promptsPerIteration: 4, seed: 1, device: 'cpu',
      judge: { kind: 'module', path: 'judge.mjs', options: { token: 'a' } },
      generation: { k: 2, temperature: 1, topP: 1, maxNewTokens: 6, batchSize: 8 },
      training: { loss: 'sppo', beta: 0.1, lr: 1e-3, epochs: 1, batchSize: 4, maxLength: 48, maxPromptLength: 32, warmupRatio: 0 },
      eval: { count: 0 },
      push: { repo: 'tiny-org/tiny-sppo-iter{t}' },
    } as SppoConfigInput;
    // Without a token the run stops before any work, saying so.
    delete process.env.HF_TOKEN;
    const home = process.env.HF_HOME;
    process.env.HF_HOME = join(dir, 'no-home');
    await assert.rejects(runSppo(cfg, { baseDir: dir, progress: false, log: () => {} }), /push: uploading to tiny-org\/tiny-sppo-iter\{t\} needs a token with write access: set HF_TOKEN/);
    assert.ok(!existsSync(join(dir, 'run', 'iter-1')), 'nothing was generated');
    if (home === undefined) delete process.env.HF_HOME; else process.env.HF_HOME = home;
    process.env.HF_TOKEN = TOKEN;
    const lines: string[] = [];
    await runSppo(cfg, { baseDir: dir, progress: false, log: (l) => lines.push(l) });
    for (const t of [1, 2]) {
      const repo = hub.repos[`tiny-org/tiny-sppo-iter${t}`];
      assert.ok(repo, `iteration ${t}'s repository`);
      const local = hubFiles(join(dir, 'run', `iter-${t}`, 'checkpoint'));
      for (const f of local) assert.ok(repo.files.find((x) => x.path === f.path)?.bytes.equals(f.bytes), `iteration ${t}: ${f.path}`);
      const card = repo.files.find((f) => f.path === 'README.md')!.bytes.toString();
      assert.match(card, new RegExp(`iteration ${t} of a self-play preference optimization run`));
      assert.match(card, /\| iteration \| prompts \| pairs \|/);
      assert.equal(card.split('\n').filter((l) => /^\| \d \| 4 \|/.test(l)).length, t, `iteration ${t}'s card: the iterations so far`);
      const rec = JSON.parse(readFileSync(join(dir, 'run', `iter-${t}`, 'push.json'), 'utf8')) as { repo: string; commit: string };
      assert.deepEqual([rec.repo, rec.commit], [`tiny-org/tiny-sppo-iter${t}`, repo.commit]);
    }
    assert.ok(lines.some((l) => /iteration 2: checkpoint pushed to http:\/\/127\.0\.0\.1:\d+\/tiny-org\/tiny-sppo-iter2/.test(l)));
    // Resumed: every stage finished, push.json there: nothing is uploaded again.
    const commits = hub.commits.length;
    await runSppo(cfg, { baseDir: dir, progress: false, log: () => {} });
    assert.equal(hub.commits.length, commits);
    assert.equal(commits, 2);
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    await hub.close();
    removeDir(dir);
  }
});

test('--push-to-hub: sppo merge uploads OUT when done; without a token it stops before any work', { skip: existsSync(join(hfTiny, 'llama', 'model.safetensors')) ? false : 'no llama fixture' }, async () => {
  const dir = tempDir('push-merge');
  const hub = await startFakeHub({}, { writeToken: TOKEN });
  try {
    const adapter = join(projectRoot, 'test', 'fixtures', 'peft', 'llama', 'dora');
    const none = await sppoAsync(['merge', join(hfTiny, 'llama'), adapter, join(dir, 'a'), '--push-to-hub', 'tiny-org/merged'], { env: { HF_ENDPOINT: hub.url, HF_TOKEN: '', HF_HOME: join(dir, 'home') } });
    assert.equal(none.status, 2);
    assert.match(none.stderr, /--push-to-hub needs a token with write access: set HF_TOKEN/);
    assert.ok(!existsSync(join(dir, 'a')), 'nothing merged');
    const lone = await sppoAsync(['merge', join(hfTiny, 'llama'), adapter, join(dir, 'a'), '--hub-private'], { env: { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN } });
    assert.equal(lone.status, 2);
    assert.match(lone.stderr, /--hub-private goes with --push-to-hub REPO/);
    const r = await sppoAsync(['merge', join(hfTiny, 'llama'), adapter, join(dir, 'b'), '--push-to-hub', 'tiny-org/merged', '--hub-private'], { env: { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /sppo merge: .*b pushed to http:\/\/127\.0\.0\.1:\d+\/tiny-org\/merged \(commit [0-9a-f]{40}\)/);
    const repo = hub.repos['tiny-org/merged']!;
    assert.ok(repo.token, 'created private');
    for (const f of hubFiles(join(dir, 'b'))) assert.ok(repo.files.find((x) => x.path === f.path)?.bytes.equals(f.bytes), f.path);
  } finally {
    await hub.close();
    removeDir(dir);
  }
});
