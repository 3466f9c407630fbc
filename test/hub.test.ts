// Models by their Hub names (src/hub): read from a cache laid out as huggingface_hub lays it out (from the hf-tiny
// fixture, at test time), and downloaded into it from a loopback Hub (test/helpers/hub_fixture.ts) with the
// API and resolve URLs and headers the Hub has: only the files a model needs, resumed, checked, tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { join } from 'node:path';
import { hubCacheDir, hfHome, hubEndpoint, hubOffline, hubToken, parseHubName, HubError } from '../src/hub/cache.js';
import { resolveHubNames } from '../src/sppo/hub_names.js';
import { resolveModelDir } from '../src/hub/resolve.js';
import { downloadSnapshot } from '../src/hub/download.js';
import { resolveDatasetSplit } from '../src/hub/dataset.js';
import { readPrompts } from '../src/sppo/dataset_prompts.js';
import { parseConfig } from '../src/sppo/config.js';
import { commitOf, hubFiles, layoutCache, startFakeHub } from './helpers/hub_fixture.js';
import { sppoCli } from './helpers/cli.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const model = join(fixtureRoot, 'qwen2');
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no qwen2 fixture at ${model}`;
const modelOnly = (p: string) => !p.startsWith('expected');

test('Hub names and the cache folder follow huggingface_hub: HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HF_HUB_OFFLINE', () => {
  assert.deepEqual(parseHubName('Qwen/Qwen2.5-0.5B-Instruct@v1.0'), { repo: 'Qwen/Qwen2.5-0.5B-Instruct', revision: 'v1.0', type: 'model' });
  assert.deepEqual(parseHubName('gpt2'), { repo: 'gpt2', revision: 'main', type: 'model' });
  assert.equal(parseHubName('org/name@refs/pr/1')?.revision, 'refs/pr/1');
  for (const path of ['./runs/x', '/abs/model', '~/m', 'a/b/c', 'bad--name/x', 'x/..', 'org/name@']) assert.equal(parseHubName(path), null, path);
  assert.equal(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' }), '/c');
  assert.equal(hubCacheDir({ HF_HOME: '/h' }), '/h/hub');
  assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/huggingface/hub');
  assert.equal(hfHome({ HOME: '/ignored', XDG_CACHE_HOME: '/x' }), '/x/huggingface');
  assert.equal(hubOffline({ HF_HUB_OFFLINE: '1' }), true);
  assert.equal(hubOffline({ HF_HUB_OFFLINE: '0' }), false);
  assert.equal(hubOffline({ TRANSFORMERS_OFFLINE: 'yes' }), true);
});

test('a model name resolves to its snapshot in the cache, by branch, tag or commit; errors name the repo, revision and file', { skip }, async () => {
  const cache = tempDir('hub-cache');
  try {
    const files = hubFiles(model, modelOnly);
    const { snapshot, commit, root } = layoutCache(cache, 'tiny-org/qwen2', files, { refs: ['main', 'v1'] });
    const o = { cacheDir: cache, offline: true };
    assert.equal(await resolveModelDir('tiny-org/qwen2', o), snapshot);
    assert.equal(await resolveModelDir('tiny-org/qwen2@v1', o), snapshot);
    assert.equal(await resolveModelDir(`tiny-org/qwen2@${commit}`, o), snapshot);
    assert.equal(await resolveModelDir(model, o), model, 'a folder is used as it is');
    await assert.rejects(resolveModelDir('tiny-org/qwen2@v2', o), (e: HubError) => e instanceof HubError && e.repo === 'tiny-org/qwen2' && e.revision === 'v2' && /revision 'v2' is not in the Hugging Face cache.*refs \[main, v1\].*HF_HUB_OFFLINE/.test(e.message));
    await assert.rejects(resolveModelDir('tiny-org/none', o), /tiny-org\/none.*models--tiny-org--none does not exist/);
    const weights = files.find((f) => f.path === 'model.safetensors')!;
    rmSync(join(root, 'blobs', weights.sha256));
    await assert.rejects(resolveModelDir('tiny-org/qwen2@v1', o), (e: HubError) => e.revision === 'v1' && e.missing.includes('model.safetensors') && /lacks model\.safetensors/.test(e.message));
  } finally {
    removeDir(cache);
  }
});

test('sppo generate --model org/name reads the cached snapshot (HF_HUB_CACHE, HF_HUB_OFFLINE): the same output as the folder', { skip }, async () => {
  const dir = tempDir('hub-gen');
  try {
    const cache = join(dir, 'hub');
    layoutCache(cache, 'tiny-org/qwen2', hubFiles(model, modelOnly), { refs: ['main', 'v1'] });
    const prompts = join(dir, 'p.jsonl');
    writeFileSync(prompts, '{"prompt": "Hello there"}\n{"prompt": "Sort 3 1 2"}\n');
    const args = ['--prompts', prompts, '-n', '2', '--max-new-tokens', '5', '--seed', '3', '--device', 'cpu'];
    const env = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
    const a = sppoCli(['generate', '--model', model, ...args, '--out', join(dir, 'a.jsonl')], { env });
    assert.equal(a.status, 0, a.stderr);
    const b = sppoCli(['generate', '--model', 'tiny-org/qwen2@v1', ...args, '--out', join(dir, 'b.jsonl')], { env });
    assert.equal(b.status, 0, b.stderr);
    assert.equal(readFileSync(join(dir, 'b.jsonl'), 'utf8'), readFileSync(join(dir, 'a.jsonl'), 'utf8'));
    const c = sppoCli(['generate', '--model', 'tiny-org/qwen2@v9', ...args, '--out', join(dir, 'c.jsonl')], { env });
    assert.equal(c.status, 1);
    assert.match(c.stderr, /--model: model tiny-org\/qwen2@v9: revision 'v9' is not in the Hugging Face cache/);
  } finally {
    removeDir(dir);
  }
});

test('downloading from a (loopback) Hub: only the files a model needs, into the cache layout, resumed, checked, gated', { skip }, async () => {
  const dir = tempDir('hub-dl');
  const decoy = join(dir, 'repo');
  const files = [...hubFiles(model, modelOnly)];
  // Files a model does not need: other weight formats and subfolders.
  const extra = { path: 'pytorch_model.bin', bytes: Buffer.from('not needed'), oid: '0'.repeat(40), sha256: '1'.repeat(64), lfs: true };
  const onnx = { path: 'onnx/model.onnx', bytes: Buffer.from('not needed'), oid: '2'.repeat(40), sha256: '3'.repeat(64), lfs: true };
  const commit = commitOf(files);
  const hub = await startFakeHub({
    'tiny-org/qwen2': { type: 'model', files: [...files, extra, onnx], commit, refs: ['main'] },
    'tiny-org/gated': { type: 'model', files, commit, token: 'hf_secret' },
    'tiny-org/bad': { type: 'model', files: files.map((f) => (f.path === 'config.json' ? { ...f, bytes: Buffer.from('{"tampered": true}') } : f)), commit },
  });
  try {
    const cache = join(dir, 'hub');
    const o = { cacheDir: cache, endpoint: hub.url, token: '', log: () => {} };
    // A dropped connection midway through the weights: the error says so, the next call resumes with a Range.
    hub.cutOnce.set(`/cdn/${files.find((f) => f.path === 'model.safetensors')!.sha256}`, 100_000);
    await assert.rejects(downloadSnapshot({ repo: 'tiny-org/qwen2', revision: 'main', type: 'model' }, o), /model\.safetensors: the download stopped at \d+ of \d+ bytes.*run again to resume/);
    const got = await downloadSnapshot({ repo: 'tiny-org/qwen2', revision: 'main', type: 'model' }, o);
    assert.ok(hub.requests.some((r) => r.path.startsWith('/cdn/') && /^bytes=\d+-$/.test(r.range ?? '') && Number(/\d+/.exec(r.range!)![0]) > 0), 'resumed with a Range request');
    assert.equal(got.commit, commit);
    assert.deepEqual(got.files.sort(), files.map((f) => f.path).sort());
    const root = join(cache, 'models--tiny-org--qwen2');
    assert.equal(readFileSync(join(root, 'refs', 'main'), 'utf8'), commit);
    for (const f of files) {
      const link = join(root, 'snapshots', commit, f.path);
      assert.ok(lstatSync(link).isSymbolicLink());
      assert.equal(readlinkSync(link), `../../blobs/${f.lfs ? f.sha256 : f.oid}`);
      assert.deepEqual(readFileSync(link), f.bytes);
    }
    assert.ok(!hub.requests.some((r) => r.path.includes('pytorch_model.bin') || r.path.includes('onnx')), 'other weight formats and subfolders are not fetched');
    assert.deepEqual(readdirSync(join(root, 'blobs')).filter((b) => b.endsWith('.incomplete')), []);
    // Everything is there: resolving again fetches nothing.
    const before = hub.requests.length;
    assert.equal(await resolveModelDir('tiny-org/qwen2', { ...o, offline: false }), join(root, 'snapshots', commit));
    assert.equal(hub.requests.length, before);
    const again = await downloadSnapshot({ repo: 'tiny-org/qwen2', revision: 'main', type: 'model' }, o);
    assert.equal(again.bytes, 0);
    // Integrity: bytes that do not hash to the listed oid are refused.
    await assert.rejects(downloadSnapshot({ repo: 'tiny-org/bad', revision: 'main', type: 'model' }, o), /tiny-org\/bad: config\.json: git sha1 [0-9a-f]{40} does not match the Hub's/);
    // Gated: without a token the error says to set HF_TOKEN; with it, the download works.
    await assert.rejects(resolveModelDir('tiny-org/gated', { ...o, offline: false }), /tiny-org\/gated.*gated or private and no token was given: set HF_TOKEN/);
    const g = await resolveModelDir('tiny-org/gated', { ...o, token: 'hf_secret', offline: false });
    assert.equal(g, join(cache, 'models--tiny-org--gated', 'snapshots', commit));
    await assert.rejects(resolveModelDir('tiny-org/qwen2@nope', { ...o, offline: false }), /tiny-org\/qwen2@nope.*no such repository or revision 'nope'/);
  } finally {
    await hub.close();
    removeDir(dir);
  }
});

const DATA = join(fixtureRoot, '..', '..', 'data');
const trainJsonl = join(DATA, 'ultrafeedback_binarized_sample_train1000.jsonl');
const evalJsonl = join(DATA, 'ultrafeedback_binarized_sample_eval200.jsonl');
const dataSkip = existsSync(trainJsonl) && existsSync(evalJsonl) ? false : `no UltraFeedback samples at ${DATA}`;

/** A Parquet file of the JSONL's rows: `question` (its prompt) and `chosen`, as a data set's split file is. */
function parquetOf(jsonl: string, n: number): Buffer {
  const rows = readFileSync(jsonl, 'utf8').trim().split('\n').slice(0, n).map((l) => JSON.parse(l) as { prompt: string; chosen: unknown });
  const ab = parquetWriteBuffer({ columnData: [
    { name: 'question', data: rows.map((r) => r.prompt), type: 'STRING' },
    { name: 'chosen', data: rows.map((r) => JSON.stringify(r.chosen)), type: 'STRING' },
  ] });
  return Buffer.from(ab);
}

test('prompts by data set name: a split\'s Parquet files from the cache (offline) or downloaded, the field naming the column', { skip: dataSkip }, async () => {
  const dir = tempDir('hub-data');
  const src = join(dir, 'src');
  try {
    mkdirSync(join(src, 'data'), { recursive: true });
    writeFileSync(join(src, 'data', 'train_prefs-00000-of-00001.parquet'), parquetOf(trainJsonl, 300));
    writeFileSync(join(src, 'data', 'test_prefs-00000-of-00001.parquet'), parquetOf(evalJsonl, 50));
    writeFileSync(join(src, 'README.md'), '# a data set card\n');
    const files = hubFiles(src);
    const want = readFileSync(trainJsonl, 'utf8').trim().split('\n').slice(0, 300).map((l) => (JSON.parse(l) as { prompt: string }).prompt);
    const spec = { dataset: 'HuggingFaceH4/ultrafeedback_binarized', split: 'train_prefs', field: 'question' };
    // From a cache laid out as huggingface_hub (and so `datasets`) lays it out.
    const cache = join(dir, 'hub');
    const { snapshot } = layoutCache(cache, spec.dataset, files, { type: 'dataset' });
    const env = { HF_HUB_CACHE: process.env.HF_HUB_CACHE, HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE };
    process.env.HF_HUB_CACHE = cache;
    process.env.HF_HUB_OFFLINE = '1';
    try {
      assert.deepEqual(await resolveDatasetSplit(spec), [join(snapshot, 'data', 'train_prefs-00000-of-00001.parquet')]);
      const recs = await readPrompts(spec);
      assert.deepEqual(recs.map((r) => r.prompt), want);
      assert.deepEqual(recs.map((r) => r.index), want.map((_, i) => i));
      await assert.rejects(readPrompts({ ...spec, split: 'validation' }), /dataset HuggingFaceH4\/ultrafeedback_binarized, split 'validation': the cached snapshot .* has no Parquet file of that split \(it has: data\/test_prefs-00000-of-00001\.parquet, data\/train_prefs-00000-of-00001\.parquet\)/);
      await assert.rejects(readPrompts({ ...spec, field: 'answer' }), /has no column 'answer' \(columns: question, chosen\)/);
      // In a run config: a mapping, checked field by field, kept as it is.
      const cfg = parseConfig({ model: '/m', prompts: spec, runDir: '/r', judge: { kind: 'module', path: '/j.mjs' }, eval: { prompts: { dataset: spec.dataset, split: 'test_prefs', field: 'question' } } });
      assert.deepEqual(cfg.prompts, spec);
      assert.equal((await readPrompts(cfg.eval.prompts!)).length, 50);
      assert.throws(() => parseConfig({ model: '/m', prompts: { dataset: spec.dataset, colum: 'x' }, runDir: '/r', judge: { kind: 'module', path: '/j.mjs' } }), /prompts/);
    } finally {
      for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
    // Downloaded from a (loopback) Hub: only the split's files.
    const hub = await startFakeHub({ [spec.dataset]: { type: 'dataset', files, commit: commitOf(files) } });
    try {
      const cache2 = join(dir, 'hub2');
      const got = await resolveDatasetSplit(spec, { cacheDir: cache2, endpoint: hub.url, token: '', offline: false, log: () => {} });
      assert.equal(got.length, 1);
      assert.ok(got[0]!.startsWith(join(cache2, 'datasets--HuggingFaceH4--ultrafeedback_binarized', 'snapshots')));
      const fetched = hub.requests.filter((r) => r.path.includes('/resolve/') || r.path.startsWith('/cdn/')).map((r) => r.path);
      assert.ok(fetched.some((p) => p.endsWith('train_prefs-00000-of-00001.parquet')));
      assert.ok(!fetched.some((p) => p.includes('test_prefs') || p.includes('README')), fetched.join(', '));
    } finally {
      await hub.close();
    }
  } finally {
    removeDir(dir);
  }
});

test('HF_TOKEN (or the token file hf auth login writes) and HF_ENDPOINT are read as huggingface_hub reads them', () => {
  const dir = tempDir('hub-token');
  try {
    assert.equal(hubToken({ HF_TOKEN: ' hf_a ', HF_HOME: dir }), 'hf_a');
    assert.equal(hubToken({ HUGGING_FACE_HUB_TOKEN: 'hf_b', HF_HOME: dir }), 'hf_b');
    assert.equal(hubToken({ HF_HOME: dir }), undefined);
    writeFileSync(join(dir, 'token'), 'hf_file\n');
    assert.equal(hubToken({ HF_HOME: dir }), 'hf_file');
    assert.equal(hubToken({ HF_HOME: '/nowhere', HF_TOKEN_PATH: join(dir, 'token') }), 'hf_file');
    assert.equal(hubEndpoint({}), 'https://huggingface.co');
    assert.equal(hubEndpoint({ HF_ENDPOINT: 'http://mirror:8080/' }), 'http://mirror:8080');
  } finally {
    removeDir(dir);
  }
});

test('a run config by Hub names: model and judge resolved to their snapshots before the run; a missing judge fails first', { skip }, async () => {
  const cache = tempDir('hub-run');
  const env = { HF_HUB_CACHE: process.env.HF_HUB_CACHE, HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE };
  try {
    const { snapshot } = layoutCache(cache, 'tiny-org/qwen2', hubFiles(model, modelOnly));
    process.env.HF_HUB_CACHE = cache;
    process.env.HF_HUB_OFFLINE = '1';
    const base = { model: 'tiny-org/qwen2', prompts: '/p.jsonl', runDir: '/r' };
    const cfg = await resolveHubNames(parseConfig({ ...base, judge: { kind: 'reward-model', dir: 'tiny-org/qwen2' }, evalJudge: { kind: 'pairrm', dir: 'tiny-org/qwen2' } }));
    assert.equal(cfg.model, snapshot);
    assert.equal((cfg.judge as { dir: string }).dir, snapshot);
    assert.equal((cfg.evalJudge as { dir: string }).dir, snapshot);
    await assert.rejects(resolveHubNames(parseConfig({ ...base, judge: { kind: 'pairrm', dir: 'llm-blender/PairRM-hf' } })), /model llm-blender\/PairRM-hf: revision 'main' is not in the Hugging Face cache/);
    // A judge given as an object (library use) leaves the config's judge alone.
    const own = await resolveHubNames(parseConfig({ ...base, judge: { kind: 'pairrm', dir: 'llm-blender/PairRM-hf' } }), { judges: false });
    assert.equal((own.judge as { dir: string }).dir, 'llm-blender/PairRM-hf');
  } finally {
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    removeDir(cache);
  }
});

test('sppo run by names only: model: org/name and prompts: {dataset, split, field} from the cache, offline', { skip: skip || dataSkip, timeout: 180_000 }, () => {
  const dir = tempDir('hub-run-e2e');
  try {
    const cache = join(dir, 'hub');
    const llama = join(fixtureRoot, 'llama');
    layoutCache(cache, 'tiny-org/llama', hubFiles(llama, modelOnly));
    const src = join(dir, 'ds');
    mkdirSync(join(src, 'data'), { recursive: true });
    writeFileSync(join(src, 'data', 'train_prefs-00000-of-00001.parquet'), parquetOf(trainJsonl, 20));
    layoutCache(cache, 'HuggingFaceH4/ultrafeedback_binarized', hubFiles(src), { type: 'dataset' });
    writeFileSync(join(dir, 'judge.mjs'), 'export default function ({ a, b }) { return a.length > b.length ? 0.7 : a.length < b.length ? 0.3 : 0.5; }\n');
    writeFileSync(join(dir, 'sppo.yaml'), [
      'model: tiny-org/llama', 'prompts: { dataset: HuggingFaceH4/ultrafeedback_binarized, split: train_prefs, field: question }', 'runDir: run',
      'judge: { kind: module, path: judge.mjs }', 'iterations: 1', 'device: cpu', 'promptsPerIteration: 4',
      'generation: { k: 2, maxNewTokens: 4, batchSize: 4 }', 'training: { batchSize: 2, maxLength: 400, maxPromptLength: 300 }', 'eval: { count: 2 }',
    ].join('\n') + '\n');
    const r = sppoCli(['run', 'sppo.yaml'], { cwd: dir, env: { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1', SPPO_TEST_KILL_AT: '' } });
    assert.equal(r.status, 0, r.stderr);
    const gens = readFileSync(join(dir, 'run/iter-1/generations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt_text: string });
    const prompts = readFileSync(trainJsonl, 'utf8').trim().split('\n').slice(0, 20).map((l) => (JSON.parse(l) as { prompt: string }).prompt);
    assert.equal(gens.length, 4);
    for (const g of gens) assert.ok(prompts.some((p) => g.prompt_text.includes(p)), 'each prompt is one of the data set\'s');
    assert.ok(existsSync(join(dir, 'run/iter-1/checkpoint/model.safetensors')));
  } finally {
    removeDir(dir);
  }
});
