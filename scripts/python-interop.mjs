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
// The Python packages live in .venv/hf-tools (git-ignored; huggingface_hub and tensorboard from pip's configured
// index: this machine kind's local wheelhouse). --if-available: where they cannot be installed, print one line and
// exit 0 (CI). Needs the built dist/ (npm run build).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** The venv's python, made and filled once (a stamp records what was installed). */
function venv() {
  const dir = join(root, '.venv', 'hf-tools');
  const py = join(dir, 'bin', 'python3');
  const stamp = join(dir, '.sppo-installed');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === PACKAGES.join(' ')) return py;
  log(`making ${dir} (${PACKAGES.join(', ')})`);
  rmSync(dir, { recursive: true, force: true });
  const host = process.env.PYTHON_FOR_VENV ?? 'python3';
  let r = spawnSync(host, ['-m', 'venv', dir], { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) skipOrFail(`'${host} -m venv' failed: ${r.error?.message ?? lastLine(r.stderr)}`);
  const env = { ...process.env, PIP_RETRIES: process.env.PIP_RETRIES ?? '0', PIP_DISABLE_PIP_VERSION_CHECK: '1' };
  r = spawnSync(py, ['-m', 'pip', 'install', '-q', ...PACKAGES], { env, stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    skipOrFail(r.error ? `could not run ${py}: ${r.error.message}` : `pip could not install ${PACKAGES.join(' ')}: ${lastLine(r.stderr)}`);
  }
  writeFileSync(stamp, PACKAGES.join(' '));
  return py;
}
const lastLine = (s) => String(s ?? '').trim().split('\n').filter((l) => !l.startsWith('WARNING')).pop() ?? '';

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
  const hubServer = await startFakeHub({ 'tiny-org/qwen2': { type: 'model', files, commit } });
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
  } finally {
    await hubServer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function tensorboard(py) {
  const { checkTensorBoardRun } = await import(join(root, 'scripts/tensorboard-check.mjs'));
  const r = await checkTensorBoardRun(py, exec);
  for (const [ok, what] of r) check(ok, what);
}

if (!existsSync(join(root, 'dist/src/hub/resolve.js'))) skipOrFail('dist/ is not built (npm run build)');
const py = venv();
if (what === 'hub' || what === 'all') await hub(py);
if (what === 'tensorboard' || what === 'all') await tensorboard(py);
log(failures ? `${failures} check(s) failed` : 'all checks passed');
process.exit(failures ? 1 : 0);
