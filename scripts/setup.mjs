// Set-up for a fresh machine, run by `npm test`, `npm run demo`, `npm run bench` and `npm run build`.
// Each step is skipped when its result is already up to date, so a second run does no work.
//   1. npm dependencies (npm ci when node_modules is missing or older than package-lock.json)
//   2. libtorch: $LIBTORCH, else LIBTORCH_USE_PYTORCH=1 (python3's torch), else the system's
//      (Debian/Ubuntu libtorch-dev, installed with apt-get when missing and we are root)
//   3. the native addon (native/*.cc -> build/native*/sppo.node, a folder per libtorch: native/addon_path.cjs),
//      with g++ and the Node-API headers;
//      c10d's Gloo process group (native/distributed.cc) where gloo's headers are found (Debian's
//      libgloo-dev, installed with apt-get when the system libtorch links libgloo and we are root)
//   4. the TypeScript (src, test, bench -> dist)
//   5. with `bench`: Debian's python3-torch for the benchmark's PyTorch peer
// Only Node's standard library is used here: this runs before npm dependencies exist.
//
// In the installed package (node_modules/sppo, from the packed tarball: dist/src already compiled, no
// tsconfig.json), steps 1 and 4 are skipped: `npx sppo setup` runs this to build the addon there.
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import os from 'node:os';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// Which build folder the chosen libtorch's addon goes to (shared with src/torch/native.ts, which loads it).
const { addonPath, pythonPath } = createRequire(import.meta.url)('../native/addon_path.cjs');
const quiet = process.env.SPPO_SETUP_QUIET === '1';
// A dependency of another project: its npm dependencies are that project's, its TypeScript is compiled.
const installed = !existsSync(join(root, 'tsconfig.json'));
const log = (msg) => {
  if (!quiet) console.error(`[setup] ${msg}`);
};
const fail = (msg) => {
  console.error(`\n[setup] ${msg}\n`);
  process.exit(1);
};
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

function newestIn(dir, ext) {
  let t = 0;
  if (!existsSync(dir)) return 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    if (s.isDirectory()) t = Math.max(t, newestIn(p, ext));
    else if (ext.some((e) => name.endsWith(e))) t = Math.max(t, s.mtimeMs);
  }
  return t;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', cwd: root, ...opts });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} failed (exit ${r.status})`);
}

// ---------------------------------------------------------------- 1. npm dependencies
function npmDeps() {
  if (process.env.SPPO_SKIP_NPM === '1') return; // node_modules brought along (e.g. to a machine without the registry)
  if (installed) return;
  const lock = join(root, 'package-lock.json');
  const stamp = join(root, 'node_modules', '.package-lock.json');
  if (existsSync(stamp) && mtime(stamp) >= mtime(lock) && mtime(stamp) >= mtime(join(root, 'package.json'))) return;
  log('installing npm dependencies');
  const npm = process.env.npm_execpath
    ? [process.execPath, [process.env.npm_execpath]]
    : ['npm', []];
  const args = existsSync(lock) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  run(npm[0], [...npm[1], ...args]);
}

// ---------------------------------------------------------------- 2. libtorch
function abiOf(libdir) {
  // A libtorch built with the C++11 ABI exports std::__cxx11 symbols from libc10.
  const lib = join(libdir, 'libc10.so');
  if (!existsSync(lib)) return 1;
  return readFileSync(lib).includes('__cxx11') ? 1 : 0;
}

function fromFolder(dir, source) {
  const lib = join(dir, 'lib');
  const inc = join(dir, 'include');
  if (!existsSync(join(inc, 'ATen', 'ATen.h'))) fail(`${source}=${dir}: no include/ATen/ATen.h there; expected a libtorch folder as unpacked from pytorch.org`);
  if (!existsSync(join(lib, 'libtorch.so'))) fail(`${source}=${dir}: no lib/libtorch.so there`);
  return { source, include: [inc, join(inc, 'torch', 'csrc', 'api', 'include')], lib: [lib], abi: abiOf(lib) };
}

// Debian's libtorch links the generic libblas.so.3, which is the reference BLAS unless an optimised one is
// installed: OpenBLAS makes its matrix products about 13x faster (measured: 5 -> 65 GFLOP/s for fp32 matmul on 2
// cores). Of Debian's OpenBLAS builds the one with OpenMP is used (libopenblas0-openmp, installed when we are root):
// it runs on ATen's OpenMP threads, where the pthreads build (the system's default choice when both are installed)
// keeps a pool of its own beside them and more threads got slower (docs/threads.md). The addon links that build's
// libraries by path, first, with its folder first in the run path, so libtorch's libblas.so.3 and liblapack.so.3
// resolve to them whatever /etc/alternatives says; returns those link flags (none where it is missing).
function optimisedBlas(triplet) {
  const dir = (v) => `/usr/lib/${triplet}/${v}`;
  const openmp = dir('openblas-openmp');
  const other = existsSync(`${dir('openblas-pthread')}/libblas.so.3`) || existsSync(`${dir('blis-pthread')}/libblas.so.3`);
  if (!existsSync(`${openmp}/libblas.so.3`)) {
    if (process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
      log("installing OpenBLAS built with OpenMP (libopenblas0-openmp) for the system libtorch");
      aptInstall('libopenblas0-openmp');
    } else if (other) {
      log('libtorch uses a pthreads OpenBLAS: sppo runs it single-threaded beside ATen\'s threads; installing libopenblas0-openmp (as root) gives multi-threaded matrix products on ATen\'s threads');
    } else {
      log('libtorch uses the reference BLAS (slow); installing libopenblas0-openmp would make it about 13x faster');
    }
  }
  if (!existsSync(`${openmp}/libblas.so.3`) || process.env.SPPO_SYSTEM_BLAS === '1') return [];
  const libs = ['libopenblas.so.0', 'libblas.so.3', 'liblapack.so.3'].map((f) => `${openmp}/${f}`).filter((f) => existsSync(f));
  return [`-Wl,-rpath,${openmp}`, ...libs];
}

/** apt-get install, refreshing the package lists once if the first try fails; returns whether it worked. */
function aptInstall(pkg) {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const opts = { stdio: quiet ? 'ignore' : 'inherit', env };
  if (spawnSync('apt-get', ['install', '-y', '-q', pkg], opts).status === 0) return true;
  spawnSync('apt-get', ['update', '-q'], { stdio: 'ignore', env });
  return spawnSync('apt-get', ['install', '-y', '-q', pkg], opts).status === 0;
}

function systemLibtorch() {
  const triplets = [`${os.arch() === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`];
  for (const t of triplets) {
    const lib = `/usr/lib/${t}`;
    if (existsSync('/usr/include/ATen/ATen.h') && existsSync(join(lib, 'libtorch.so'))) {
      const blas = optimisedBlas(t);
      return { source: 'system', include: ['/usr/include', '/usr/include/torch/csrc/api/include'], lib: [lib], abi: abiOf(lib), blas };
    }
  }
  return null;
}

function findLibtorch() {
  if (process.env.LIBTORCH) return fromFolder(resolve(process.env.LIBTORCH), 'LIBTORCH');
  if (process.env.LIBTORCH_USE_PYTORCH === '1') {
    const py = pythonPath(process.env);
    const code = [
      'import json, torch, torch.utils.cpp_extension as c',
      'print(json.dumps({"include": c.include_paths(), "lib": c.library_paths(), "abi": int(torch._C._GLIBCXX_USE_CXX11_ABI), "version": torch.__version__}))',
    ].join('\n');
    let out;
    try {
      out = execFileSync(py, ['-c', code], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      fail(`LIBTORCH_USE_PYTORCH=1 but '${py} -c "import torch"' failed: ${String(e.stderr ?? e.message).trim().split('\n').pop()}`);
    }
    const info = JSON.parse(out);
    return { source: `python3 torch ${info.version}`, include: info.include, lib: info.lib, abi: info.abi };
  }
  let sys = systemLibtorch();
  if (sys) return sys;
  const isRoot = process.getuid?.() === 0;
  if (isRoot && existsSync('/usr/bin/apt-get')) {
    log('no libtorch found: installing Debian/Ubuntu libtorch-dev with apt-get');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update', '-q'], { env });
    run('apt-get', ['install', '-y', '-q', 'libtorch-dev'], { env });
    sys = systemLibtorch();
    if (sys) return sys;
  }
  fail(
    [
      'No libtorch found. sppo needs libtorch (the C++ library of PyTorch). Any one of these works:',
      '  - Debian/Ubuntu: sudo apt-get install libtorch-dev   (then run this again)',
      '  - a libtorch folder unpacked from pytorch.org:  LIBTORCH=/path/to/libtorch npm test',
      '  - the libtorch inside an installed PyTorch:     LIBTORCH_USE_PYTORCH=1 npm test',
    ].join('\n'),
  );
}

// ---------------------------------------------------------------- 3. the native addon
function nodeApiInclude() {
  if (process.env.NODE_API_INCLUDE) return process.env.NODE_API_INCLUDE;
  const candidates = [
    join(dirname(process.execPath), '..', 'include', 'node'),
    join(os.homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ];
  for (const c of candidates) if (existsSync(join(c, 'node_api.h'))) return c;
  fail(`Node-API headers (node_api.h) not found in ${candidates.join(' or ')}; set NODE_API_INCLUDE to their folder`);
}

// native/distributed.cc compiles c10d's Gloo process group in where gloo's headers are found (and NCCL's where
// libtorch has CUDA and nccl.h is found) (ProcessGroupGloo.hpp
// includes them). Debian's libtorch links libgloo.so.0 but its -dev package does not bring the headers:
// libgloo-dev does, installed here when we are root. Without them the addon is built without c10d.
function glooFlags(torch) {
  if (process.env.SPPO_NO_C10D === '1') return []; // build without c10d (to check that path)
  const dirs = [...torch.include, '/usr/include', '/usr/local/include'];
  const found = () => dirs.some((d) => existsSync(join(d, 'gloo', 'context.h')));
  if (!found() && torch.source === 'system' && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
    const cpu = torch.lib.map((d) => join(d, 'libtorch_cpu.so')).find((p) => existsSync(p));
    if (cpu && readFileSync(cpu).includes('libgloo.so')) {
      log("installing gloo's headers (libgloo-dev) for c10d's Gloo process group");
      if (!aptInstall('libgloo-dev')) log('could not install libgloo-dev: the addon is built without c10d (sppo.distributed unavailable)');
    }
  }
  const flags = [];
  if (found()) flags.push('-DSPPO_GLOO=1');
  else log("gloo's headers not found: the addon is built without c10d's Gloo (install libgloo-dev for data parallel on CPUs)");
  // NCCL (CUDA builds): nccl.h from the CUDA toolkit, /usr/include, or PyTorch's nvidia-nccl wheel next to torch/.
  const ncclDirs = [...dirs, '/usr/local/cuda/include', ...torch.lib.map((d) => join(d, '..', '..', 'nvidia', 'nccl', 'include'))];
  const nccl = ncclDirs.find((d) => existsSync(join(d, 'nccl.h')));
  if (nccl && torch.lib.some((d) => existsSync(join(d, 'libtorch_cuda.so')))) flags.push(`-I${nccl}`);
  return flags;
}

// The libtorch's version from its headers (torch/version.h, or torch/headeronly/version.h from 2.9 on), [major, minor].
function torchVersion(torch) {
  for (const d of torch.include) {
    for (const f of [join(d, 'torch', 'headeronly', 'version.h'), join(d, 'torch', 'version.h')]) {
      if (!existsSync(f)) continue;
      const text = readFileSync(f, 'utf8');
      const major = /#define TORCH_VERSION_MAJOR (\d+)/.exec(text);
      const minor = /#define TORCH_VERSION_MINOR (\d+)/.exec(text);
      if (major && minor) return [Number(major[1]), Number(minor[1])];
    }
  }
  return null;
}

function buildNative(torch) {
  const srcDir = join(root, 'native');
  const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cc')).sort();
  const headers = readdirSync(srcDir).filter((f) => f.endsWith('.h')).sort();
  // Each libtorch has its own folder (native/addon_path.cjs), so switching between them rebuilds nothing.
  const { dir: outDir, file: out } = addonPath(root);
  // node_modules/node-addon-api here, or next to node_modules/sppo in a project that installed it.
  const addonApi = dirname(createRequire(join(root, 'package.json')).resolve('node-addon-api'));
  const cxx = process.env.CXX ?? 'g++';
  const cuda = torch.lib.some((d) => existsSync(join(d, 'libtorch_cuda.so')));
  // The CUDA headers that libtorch's CUDA headers include (cuda_runtime_api.h for the caching allocator's statistics
  // and CUDA graphs; cusparse.h, cublas_v2.h through ATen/cuda): the CUDA toolkit's (CUDA_HOME, /usr/local/cuda), then
  // those of PyTorch's nvidia wheels next to torch/ (CUDA 12: nvidia/<library>/include; CUDA 13: nvidia/cu13/include).
  const wheelIncludes = (d) => {
    const nv = join(d, '..', '..', 'nvidia');
    return existsSync(nv) ? readdirSync(nv).map((w) => join(nv, w, 'include')) : [];
  };
  const toolkit = [process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'include'), '/usr/local/cuda/include']
    .filter((d) => d && existsSync(join(d, 'cuda_runtime_api.h'))).slice(0, 1);
  const cudaInclude = !cuda ? [] : [...new Set([...toolkit, ...torch.lib.flatMap(wheelIncludes)].filter((d) => existsSync(d)))];
  // PyTorch 2.14's headers require C++20 (ATen.h says so); earlier ones are written for C++17.
  const version = torchVersion(torch);
  const std = version && (version[0] > 2 || (version[0] === 2 && version[1] >= 14)) ? 'c++20' : 'c++17';
  const common = [
    `-std=${std}`, '-O2', '-fPIC', '-fvisibility=hidden', '-w',
    `-D_GLIBCXX_USE_CXX11_ABI=${torch.abi}`,
    '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED',
    ...(cuda ? ['-DSPPO_CUDA=1'] : []),
    `-I${nodeApiInclude()}`, `-I${addonApi}`,
    ...torch.include.map((d) => `-I${d}`),
    ...cudaInclude.map((d) => `-I${d}`),
  ];
  const libs = ['-Wl,--no-as-needed', ...(torch.blas ?? []), ...torch.lib.flatMap((d) => [`-L${d}`, `-Wl,-rpath,${d}`]),
    '-ltorch', '-ltorch_cpu', '-lc10', ...(cuda ? ['-ltorch_cuda', '-lc10_cuda'] : [])];
  // Flags of one file, from what this machine has.
  const fileFlags = { 'distributed.cc': glooFlags(torch) };
  // The addon is rebuilt when a source, a header, the flags or the libtorch change.
  const hash = createHash('sha256');
  for (const f of [...sources, ...headers]) hash.update(f).update(readFileSync(join(srcDir, f)));
  hash.update(JSON.stringify({ cxx, common, libs, fileFlags }));
  const key = hash.digest('hex');
  const stampFile = join(outDir, 'stamp');
  if (existsSync(out) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === key) return;
  mkdirSync(outDir, { recursive: true });
  log(`building the native addon against libtorch (${torch.source}${cuda ? ', CUDA' : ''}); this takes a few minutes once`);
  // Objects are cached by their own content hash, so an edit recompiles only its file.
  const objects = [];
  const jobs = [];
  for (const f of sources) {
    const text = readFileSync(join(srcDir, f));
    // A source may ask for flags of its own on its first line: `// sppo-cflags: -O3 ...` (the kernels).
    const own = [...(/^\/\/ sppo-cflags:(.*)$/m.exec(text.toString('utf8').split('\n', 1)[0])?.[1].trim().split(/\s+/) ?? []), ...(fileFlags[f] ?? [])];
    const h = createHash('sha256').update(text);
    for (const hf of headers) h.update(readFileSync(join(srcDir, hf)));
    h.update(JSON.stringify([common, own]));
    const obj = join(outDir, `${f}.${h.digest('hex').slice(0, 16)}.o`);
    objects.push(obj);
    if (!existsSync(obj)) jobs.push({ f, obj, own });
  }
  const parallel = Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 8));
  let failed = null;
  const runJob = ({ f, obj, own }) =>
    new Promise((res) => {
      import('node:child_process').then(({ spawn }) => {
        const p = spawn(cxx, [...common, ...own, '-c', join(srcDir, f), '-o', `${obj}.tmp`], { stdio: 'inherit' });
        p.on('close', (code) => {
          if (code === 0) renameSync(`${obj}.tmp`, obj);
          else failed = `compiling native/${f} failed (exit ${code})`;
          res();
        });
      });
    });
  return (async () => {
    const queue = [...jobs];
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (queue.length && !failed) await runJob(queue.shift());
      }),
    );
    if (failed) fail(failed);
    run(cxx, ['-shared', '-o', `${out}.tmp`, ...objects, ...libs]);
    renameSync(`${out}.tmp`, out);
    writeFileSync(join(outDir, 'libtorch.json'), JSON.stringify({ ...torch, cuda }, null, 2));
    writeFileSync(stampFile, key);
  })();
}

// ---------------------------------------------------------------- 4. TypeScript
function buildTs() {
  if (installed) return;
  const newest = Math.max(
    newestIn(join(root, 'src'), ['.ts']),
    newestIn(join(root, 'test'), ['.ts']),
    newestIn(join(root, 'bench'), ['.ts']),
    mtime(join(root, 'tsconfig.json')),
  );
  const stamp = join(root, 'dist', '.build-stamp');
  if (existsSync(stamp) && mtime(stamp) >= newest) return;
  log('compiling TypeScript');
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root]);
  writeFileSync(stamp, String(Date.now()));
}

// ---------------------------------------------------------------- 5. the benchmark's PyTorch peer
// `npm run bench` (setup.mjs bench) compares with plain PyTorch: Debian's python3-torch, installed when
// missing and we are root. Otherwise the bench prints sppo's column and says how to get the peer.
function benchPeer() {
  if (process.env.SPPO_BENCH_PYTHON) return; // the user's own python with torch
  const hasTorch = () => spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  if (hasTorch() || process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return;
  log("installing Debian's python3-torch, the benchmark's PyTorch peer");
  if (!aptInstall('python3-torch')) log('could not install python3-torch; the bench runs without its PyTorch column');
}

const what = process.argv[2] ?? 'all';
npmDeps();
if (what === 'all' || what === 'bench' || what === 'native') await buildNative(findLibtorch());
if (what === 'all' || what === 'bench' || what === 'ts') buildTs();
if (what === 'bench') benchPeer();
