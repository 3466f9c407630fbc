// sppo beside the Python tools that share its files, checked with the real Python packages:
//   node scripts/python-interop.mjs hub          the Hugging Face cache, both ways, on a loopback Hub
//                                                (test/helpers/hub_fixture.ts: the tiny qwen2 fixture at the API and
//                                                resolve URLs, with X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size
//                                                and LFS files redirected to another host name, as the Hub serves them):
//                                                huggingface_hub's hf_hub_download fills a cache that `sppo generate
//                                                --model tiny-org/qwen2` then reads offline; `sppo generate` downloads
//                                                into an empty cache that huggingface_hub then reads offline
//                                                (HF_HUB_OFFLINE=1, and scan_cache_dir); both caches hold the same
//                                                refs, snapshot links and blobs, and both outputs equal the folder's.
//   node scripts/python-interop.mjs tensorboard  an `sppo run` with report: [tensorboard] read back by TensorBoard's
//                                                own EventAccumulator: every scalar, with its steps
//   node scripts/python-interop.mjs all
// hub --big MB also times one MB-megabyte LFS file fetched by each client from the loopback Hub.
// The Python packages live in .venv/hf-tools (git-ignored; huggingface_hub and tensorboard from pip's configured
// index: this machine kind's local wheelhouse). --if-available: where they cannot be installed, print one line and
// exit 0 (CI). Needs the built dist/ (npm run build).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lastLine, pythonVenv } from './venv.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = (m) => console.error(`[python-interop] ${m}`);
const args = process.argv.slice(2);
const ifAvailable = args.includes('--if-available');
const what = args.find((a) => !a.startsWith('--')) ?? 'all';
if (!['hub', 'tensorboard', 'all'].includes(what)) {
  console.error('usage: node scripts/python-interop.mjs hub|tensorboard|all [--if-available]');
  process.exit(2);
}
const PACKAGES = ['huggingface_hub', 'tensorboard'];

function skipOrFail(why) {
  if (ifAvailable) {
    console.log(`[python-interop] skipped: ${why} (this run needs python3 with venv, and pip able to install ${PACKAGES.join(', ')})`);
    process.exit(0);
  }
  log(why);
  process.exit(1);
}

/** The venv's python, made and filled once (scripts/venv.mjs). */
function venv() {
  return pythonVenv('hf-tools', [PACKAGES], { log, fail: skipOrFail });
}

/** Runs a command without blocking this process (whose loopback Hub must keep answering); rejects on failure. */
function exec(cmd, argv, env = {}) {
  return new Promise((res, rej) => {
    const c = spawn(cmd, argv, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('exit', (code) => (code === 0 ? res(out) : rej(new Error(`${cmd} ${argv.slice(0, 3).join(' ')} ... exited with ${code}:\n${err || out}`))));
  });
}

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

/** refs, snapshot links and blob names of a repository's cache folder. */
function layout(repoDir) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const rel = p.slice(repoDir.length + 1);
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink()) out.push(`${rel} -> ${readlinkSync(p)}`);
      else if (rel.startsWith('refs/')) out.push(`${rel} = ${readFileSync(p, 'utf8').trim()}`);
      else out.push(rel);
    }
  };
  walk(repoDir);
  return out.sort();
}

async function hub(py) {
  const { commitOf, hubFiles, startFakeHub } = await import(join(root, 'dist/test/helpers/hub_fixture.js'));
  const fixture = process.env.SPPO_HF_FIXTURES ? join(process.env.SPPO_HF_FIXTURES, 'qwen2') : resolve(root, '../shared/fixtures/hf-tiny/qwen2');
  if (!existsSync(join(fixture, 'model.safetensors'))) skipOrFail(`no qwen2 fixture at ${fixture}`);
  const files = hubFiles(fixture, (p) => !p.startsWith('expected'));
  const commit = commitOf(files);
  const hubServer = await startFakeHub({ 'tiny-org/qwen2': { type: 'model', files, commit } }, { writeToken: 'hf_write' });
  const dir = mkdtempSync(join(tmpdir(), 'sppo-hub-interop-'));
  try {
    const prompts = join(dir, 'p.jsonl');
    writeFileSync(prompts, '{"prompt": "Hello there"}\n{"prompt": "Sort 3 1 2"}\n');
    const gen = (model, out, env) => exec(process.execPath, [join(root, 'bin/sppo.js'), 'generate', '--model', model, '--prompts', prompts, '--out', out, '-n', '2', '--max-new-tokens', '6', '--seed', '1', '--device', 'cpu'], env);
    await gen(fixture, join(dir, 'folder.jsonl'), {});
    const want = readFileSync(join(dir, 'folder.jsonl'), 'utf8');
    const names = files.map((f) => f.path);
    const fetchPy = `
import sys
from huggingface_hub import hf_hub_download
for f in sys.argv[1:]:
    print(hf_hub_download("tiny-org/qwen2", f))
`;
    // 1. huggingface_hub downloads; sppo reads the cache offline.
    const cacheA = join(dir, 'from-python');
    const t0 = performance.now();
    const paths = (await exec(py, ['-c', fetchPy, ...names], { HF_ENDPOINT: hubServer.url, HF_HUB_CACHE: cacheA, HF_HUB_DISABLE_TELEMETRY: '1' })).trim().split('\n');
    log(`huggingface_hub downloaded ${paths.length} files in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    check(paths.every((p) => p.includes(`models--tiny-org--qwen2/snapshots/${commit}/`)), `huggingface_hub's hf_hub_download put ${paths.length} files under snapshots/${commit.slice(0, 12)}`);
    await gen('tiny-org/qwen2', join(dir, 'a.jsonl'), { HF_HUB_CACHE: cacheA, HF_HUB_OFFLINE: '1' });
    check(readFileSync(join(dir, 'a.jsonl'), 'utf8') === want, 'sppo generate --model tiny-org/qwen2 (HF_HUB_OFFLINE=1) on the cache huggingface_hub filled: the same output as the folder');
    // 2. sppo downloads; huggingface_hub reads the cache offline.
    const cacheB = join(dir, 'from-sppo');
    const before = hubServer.requests.length;
    await gen('tiny-org/qwen2', join(dir, 'b.jsonl'), { HF_HUB_CACHE: cacheB, HF_ENDPOINT: hubServer.url });
    check(readFileSync(join(dir, 'b.jsonl'), 'utf8') === want, `sppo generate --model tiny-org/qwen2 downloading from the loopback Hub (${hubServer.requests.length - before} requests): the same output as the folder`);
    const readPy = `
import hashlib, json, sys
from huggingface_hub import hf_hub_download, scan_cache_dir
out = {}
for f in sys.argv[2:]:
    p = hf_hub_download("tiny-org/qwen2", f)
    out[f] = hashlib.sha256(open(p, "rb").read()).hexdigest()
info = scan_cache_dir(sys.argv[1])
repo = [r for r in info.repos if r.repo_id == "tiny-org/qwen2"][0]
revs = list(repo.revisions)
print(json.dumps({"sha256": out, "warnings": [str(w) for w in info.warnings], "refs": sorted(r for rev in revs for r in rev.refs),
                  "commits": [r.commit_hash for r in revs], "nb_files": repo.nb_files, "size": repo.size_on_disk}))
`;
    const got = JSON.parse(await exec(py, ['-c', readPy, cacheB, ...names], { HF_HUB_CACHE: cacheB, HF_HUB_OFFLINE: '1' }));
    check(files.every((f) => got.sha256[f.path] === f.sha256), `huggingface_hub (HF_HUB_OFFLINE=1) read all ${names.length} files sppo downloaded, byte for byte`);
    check(got.warnings.length === 0 && got.refs.join() === 'main' && got.commits.join() === commit && got.nb_files === names.length, `scan_cache_dir: refs [${got.refs}], commit ${got.commits.map((c) => c.slice(0, 12))}, ${got.nb_files} files, ${got.size} bytes, ${got.warnings.length} warnings`);
    const la = layout(join(cacheA, 'models--tiny-org--qwen2'));
    const lb = layout(join(cacheB, 'models--tiny-org--qwen2'));
    check(JSON.stringify(la) === JSON.stringify(lb), `both caches hold the same ${la.length} entries (refs, relative snapshot links, blobs named by git sha1 / sha256)`);
    if (JSON.stringify(la) !== JSON.stringify(lb)) console.log(`  huggingface_hub: ${la.join('\n    ')}\n  sppo: ${lb.join('\n    ')}`);
    // 3. Uploads: `sppo push` a folder; huggingface_hub downloads it (snapshot_download) and reads its model card
    // (ModelCard.load). And huggingface_hub's own upload_folder against the same loopback Hub: the server takes what
    // the reference client sends, so its checks stand for the Hub's.
    const write = { HF_ENDPOINT: hubServer.url, HF_TOKEN: 'hf_write', HF_HUB_DISABLE_TELEMETRY: '1' };
    await exec(process.execPath, [join(root, 'bin/sppo.js'), 'push', fixture, 'tiny-org/pushed'], write);
    const pushedPy = `
import hashlib, json, os, sys
from huggingface_hub import ModelCard, snapshot_download
d = snapshot_download("tiny-org/pushed", cache_dir=sys.argv[1])
card = ModelCard.load("tiny-org/pushed")
print(json.dumps({"sha256": {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest() for f in os.listdir(d)},
                  "card": card.data.to_dict()}))
`;
    const pushed = JSON.parse(await exec(py, ['-c', pushedPy, join(dir, 'pushed-cache')], write));
    check(files.every((f) => pushed.sha256[f.path] === f.sha256) && 'README.md' in pushed.sha256,
      `sppo push: huggingface_hub's snapshot_download gets the ${names.length} files byte for byte, and the model card`);
    check(pushed.card.library_name === 'transformers' && (pushed.card.tags ?? []).includes('sppo') && pushed.card.pipeline_tag === 'text-generation',
      `huggingface_hub's ModelCard.load reads the card's metadata: ${JSON.stringify(pushed.card)}`);
    const uploadPy = `
import sys
from huggingface_hub import HfApi
api = HfApi()
api.create_repo("tiny-org/by-hf", exist_ok=True)
info = api.upload_folder(folder_path=sys.argv[1], repo_id="tiny-org/by-hf", ignore_patterns=["expected*"])
print(info.oid)
`;
    // (HF_HUB_DISABLE_XET: this loopback Hub speaks the LFS protocol, as @huggingface/hub does with a Hub that offers no Xet.)
    const oid = (await exec(py, ['-c', uploadPy, fixture], { ...write, HF_HUB_DISABLE_XET: '1' })).trim();
    const byHf = hubServer.repos['tiny-org/by-hf'];
    const same = byHf && files.every((f) => byHf.files.find((x) => x.path === f.path)?.bytes.equals(f.bytes));
    const ops = hubServer.commits.find((c) => c.repo === 'tiny-org/by-hf')?.operations ?? [];
    check(same && oid === byHf.commit && ops.includes('lfsFile model.safetensors'),
      `huggingface_hub's upload_folder to the same loopback Hub: accepted (commit ${oid.slice(0, 12)}), the same ${names.length} files, the weights through LFS as sppo sends them`);
    if (args.includes('--big')) await bigDownload(py, dir, startFakeHub, hubFiles);
  } finally {
    await hubServer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** --big MB: one LFS file of MB random megabytes from the loopback Hub, by huggingface_hub and by sppo (both checked). */
async function bigDownload(py, dir, startFakeHub, hubFiles) {
  const mb = Number(args[args.indexOf('--big') + 1]);
  const { randomBytes } = await import('node:crypto');
  const src = join(dir, 'big');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(src);
  writeFileSync(join(src, 'model.safetensors'), randomBytes(mb * 1024 * 1024));
  writeFileSync(join(src, 'config.json'), '{}');
  const files = hubFiles(src);
  const hubServer = await startFakeHub({ 'tiny-org/big': { type: 'model', files, commit: 'b'.repeat(40) } });
  try {
    let t0 = performance.now();
    await exec(py, ['-c', 'import sys\nfrom huggingface_hub import hf_hub_download\nhf_hub_download("tiny-org/big", "model.safetensors")'], { HF_ENDPOINT: hubServer.url, HF_HUB_CACHE: join(dir, 'big-py'), HF_HUB_DISABLE_PROGRESS_BARS: '1' });
    const pySecs = (performance.now() - t0) / 1000;
    const { downloadSnapshot } = await import(join(root, 'dist/src/hub/download.js'));
    t0 = performance.now();
    await downloadSnapshot({ repo: 'tiny-org/big', revision: 'main', type: 'model' }, { cacheDir: join(dir, 'big-sppo'), endpoint: hubServer.url, token: '', log: () => {}, select: (es) => es.filter((e) => e.path === 'model.safetensors') });
    const jsSecs = (performance.now() - t0) / 1000;
    const same = readFileSync(join(dir, 'big-py/models--tiny-org--big/snapshots', 'b'.repeat(40), 'model.safetensors')).equals(readFileSync(join(dir, 'big-sppo/models--tiny-org--big/snapshots', 'b'.repeat(40), 'model.safetensors')));
    check(same, `${mb} MB over loopback: huggingface_hub ${pySecs.toFixed(2)} s (${(mb / pySecs).toFixed(0)} MB/s, process start included), sppo ${jsSecs.toFixed(2)} s (${(mb / jsSecs).toFixed(0)} MB/s, sha256 checked); the same bytes`);
  } finally {
    await hubServer.close();
  }
}

const JUDGE = `export const name = 'likes-a';
export const positionBiased = false;
const count = (s) => s.split('a').length - 1;
export default function ({ a, b }) { return 1 / (1 + Math.exp(-(count(a) - count(b)))); }
`;

/** A free loopback port. */
async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function tensorboard(py) {
  const { eventFiles, readEventFile } = await import(join(root, 'dist/src/util/tensorboard.js'));
  const fixture = process.env.SPPO_HF_FIXTURES ? join(process.env.SPPO_HF_FIXTURES, 'llama') : resolve(root, '../shared/fixtures/hf-tiny/llama');
  if (!existsSync(join(fixture, 'model.safetensors'))) skipOrFail(`no llama fixture at ${fixture}`);
  const dir = mkdtempSync(join(tmpdir(), 'sppo-tb-interop-'));
  try {
    writeFileSync(join(dir, 'judge.mjs'), JUDGE);
    writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 28 }, (_, i) => JSON.stringify({ id: `q${i}`, prompt: `Say ${i} things about cats.` })).join('\n') + '\n');
    writeFileSync(join(dir, 'sppo.yaml'), [
      `model: ${JSON.stringify(fixture)}`, 'prompts: prompts.jsonl', 'runDir: run', 'judge: { kind: module, path: judge.mjs }', 'iterations: 3', 'seed: 1', 'device: cpu',
      'promptsPerIteration: 8', 'generation: { k: 3, temperature: 1, topP: 1, maxNewTokens: 8, batchSize: 8 }',
      'training: { beta: 0.1, lr: 0.001, optimizer: adamw, batchSize: 2, maxLength: 48, maxPromptLength: 32, warmupRatio: 0 }', 'eval: { count: 4 }', 'report: [tensorboard]',
    ].join('\n') + '\n');
    const t0 = performance.now();
    // Killed in iteration 2's training, then resumed: the event files of both processes are read together.
    await exec(process.execPath, [join(root, 'bin/sppo.js'), 'run', join(dir, 'sppo.yaml')], { SPPO_TEST_KILL_AT: '2:train:2' }).catch(() => {});
    await exec(process.execPath, [join(root, 'bin/sppo.js'), 'run', join(dir, 'sppo.yaml')], { SPPO_TEST_KILL_AT: '' });
    log(`sppo run (3 iterations, killed once and resumed) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const tb = join(dir, 'run', 'tensorboard');
    const ours = {};
    for (const e of eventFiles(tb).flatMap(readEventFile)) (ours[e.tag] ??= []).push([e.step, e.value]);
    const readPy = `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))
`;
    const theirs = JSON.parse(await exec(py, ['-c', readPy, tb]));
    const tags = Object.keys(ours).sort();
    const count = tags.reduce((a, t) => a + ours[t].length, 0);
    check(JSON.stringify(Object.keys(theirs).sort()) === JSON.stringify(tags), `TensorBoard's EventAccumulator lists the same ${tags.length} scalar tags as the event files hold`);
    const diff = tags.filter((t) => JSON.stringify(theirs[t]) !== JSON.stringify(ours[t]));
    check(diff.length === 0, `every scalar with its step and value (${count} points) read back by EventAccumulator${diff.length ? `; differ: ${diff.join(', ')}` : ''}`);
    const trainSteps = ['run/iter-1', 'run/iter-2', 'run/iter-3'].reduce((a, d) => a + readFileSync(join(dir, d, 'train-metrics.jsonl'), 'utf8').trim().split('\n').length, 0);
    const loss = theirs['train/loss'] ?? [];
    check(loss.map((x) => x[0]).join() === Array.from({ length: trainSteps }, (_, i) => i + 1).join(), `train/loss: steps 1..${trainSteps} once each over 3 iterations, across the kill and the resume`);
    check([1, 2, 3].every((t) => (theirs['eval/winRate'] ?? []).some((x) => x[0] === t)), 'eval/winRate at iterations 1, 2, 3');
    console.log(`  tags: ${tags.join(', ')}`);
    const shot = args.includes('--screenshot') ? resolve(args[args.indexOf('--screenshot') + 1]) : null;
    if (shot) await screenshot(py, tb, shot);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** TensorBoard's own page on the run (its server on loopback), photographed by headless Chromium. */
async function screenshot(py, logdir, file) {
  const port = await freePort();
  const server = spawn(py, ['-m', 'tensorboard.main', '--logdir', logdir, '--host', '127.0.0.1', '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const url = `http://127.0.0.1:${port}/`;
    for (let i = 0; i < 120; i++) {
      try {
        if ((await fetch(`${url}data/logdir`)).ok) break;
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${url}?pinnedCards=%5B%5D#timeseries`, { waitUntil: 'networkidle' });
      await page.waitForSelector('canvas, svg', { timeout: 30000 }).catch(() => {});
      // The training curves and the win rate first (the tag filter), settings closed.
      await page.fill('input[placeholder="Filter tags (regex)"]', 'train/(loss|margin|pair_accuracy|lr)|eval/(winRate|lcWinRate)').catch(() => {});
      await page.keyboard.press('Escape');
      await page.getByRole('button', { name: /close/i }).first().click({ timeout: 2000 }).catch(() => {});
      await page.waitForTimeout(4000);
      await page.screenshot({ path: file, fullPage: false });
      check(existsSync(file), `TensorBoard's page photographed: ${file}`);
    } finally {
      await browser.close();
    }
  } finally {
    server.kill('SIGTERM');
  }
}

if (!existsSync(join(root, 'dist/src/hub/resolve.js'))) skipOrFail('dist/ is not built (npm run build)');
const py = venv();
if (what === 'hub' || what === 'all') await hub(py);
if (what === 'tensorboard' || what === 'all') await tensorboard(py);
log(failures ? `${failures} check(s) failed` : 'all checks passed');
process.exit(failures ? 1 : 0);
