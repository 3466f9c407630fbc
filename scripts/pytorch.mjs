// The suite against PyTorch's own libtorch, beside Debian's (which `npm test` uses):
//   node scripts/pytorch.mjs test        (npm run test:pytorch)  PyTorch 2.13 CPU: the addon built against the
//                                         libtorch inside torch==2.13.0+cpu, the whole suite run with it
//   node scripts/pytorch.mjs check-cuda  (npm run check:cuda)    PyTorch 2.14.1 with CUDA 13: the addon built with
//                                         every CUDA-only path (CUDA graphs, NCCL, the allocator's statistics, the
//                                         fused CUDA AdamW), linked, loaded on this GPU-less machine, the CPU suite
//                                         run with it (test/cuda_build.test.ts checks the compiled paths)
// Each PyTorch lives in a virtual environment under .venv/ (git-ignored), made with `python3 -m venv` and pip from
// whatever index pip is configured for (this machine kind: a local wheelhouse); each addon in its own build folder
// (native/addon_path.cjs), so neither run rebuilds the other's or Debian's addon.
// Options: --if-available: where the wheels cannot be installed, print one line saying so and exit 0 (CI);
//          --only WORD...: run only the test files whose names contain a word (as `npm test -- WORD`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pythonVenv } from './venv.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = (m) => console.error(`[pytorch] ${m}`);

// The wheels each run installs. torch 2.14.1's declared CUDA dependencies include meta-packages (cuda-toolkit,
// cuda-bindings, triton) that only Python code needs; the addon needs the libraries, so torch goes in without its
// dependencies and the nvidia wheels its libtorch_cuda.so links (readelf -d: NEEDED) are named here.
const ENVS = {
  cpu: {
    name: 'torch-2.13-cpu',
    installs: [['torch==2.13.0+cpu']],
  },
  cuda: {
    name: 'torch-2.14-cu13',
    installs: [
      ['--no-deps', 'torch==2.14.1'],
      ['filelock', 'typing-extensions', 'sympy', 'networkx', 'jinja2', 'fsspec'],
      ['--no-deps', 'nvidia-cuda-runtime', 'nvidia-cublas', 'nvidia-cuda-cupti', 'nvidia-cuda-nvrtc', 'nvidia-cufft', 'nvidia-cufile',
        'nvidia-curand', 'nvidia-cusolver', 'nvidia-cusparse', 'nvidia-nvjitlink', 'nvidia-nvtx', 'nvidia-cudnn-cu13==9.24.0.43',
        'nvidia-cusparselt-cu13==0.8.1', 'nvidia-nccl-cu13==2.30.7', 'nvidia-nvshmem-cu13==3.4.5'],
    ],
  },
};

/** The venv's python, made and filled once (scripts/venv.mjs); fail() (which exits) where pip cannot install it. */
function venv(kind) {
  return pythonVenv(ENVS[kind].name, ENVS[kind].installs, { log, fail });
}

let ifAvailable = false;
function fail(why) {
  if (ifAvailable) {
    console.log(`[pytorch] skipped: ${why} (this run needs python3 with venv, and pip able to install these wheels)`);
    process.exit(0);
  }
  log(why);
  process.exit(1);
}

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  return r.status ?? 1;
}

const args = process.argv.slice(2);
ifAvailable = args.includes('--if-available');
const what = args[0];
const only = args.includes('--only') ? args.slice(args.indexOf('--only') + 1) : [];
if (what !== 'test' && what !== 'check-cuda') {
  console.error('usage: node scripts/pytorch.mjs test|check-cuda [--if-available] [--only WORD...]');
  process.exit(2);
}
const py = venv(what === 'test' ? 'cpu' : 'cuda');
const env = { LIBTORCH_USE_PYTORCH: '1', PYTHON: py };
// The CUDA runtime's headers for the CUDA build: the CUDA toolkit's when there is one (nvcc 13's /usr/local/cuda),
// else the nvidia wheel's (setup.mjs looks in both).
if (what === 'check-cuda' && !process.env.CUDA_HOME && existsSync('/usr/local/cuda/include/cuda_runtime_api.h')) env.CUDA_HOME = '/usr/local/cuda';
const t0 = Date.now();
if (run(process.execPath, [join(root, 'scripts', 'setup.mjs'), 'native'], env) !== 0) process.exit(1);
const built = ((Date.now() - t0) / 1000).toFixed(0);
// Loaded here once, before the suite: which libtorch, which compiled paths, whether a GPU is visible.
const probe = "import('./dist/src/torch/index.js').then((t) => console.log(`[pytorch] loaded: libtorch ${t.libtorchVersion()}, cuda available: ${t.cuda.isAvailable()}, compiled: ${JSON.stringify(t.buildFeatures())}`))";
if (run(process.execPath, ['-e', probe], env) !== 0) process.exit(1);
log(`addon ready in ${built} s; running the suite${only.length ? ` (${only.join(' ')})` : ''}`);
process.exit(run(process.execPath, [join(root, 'scripts', 'run-tests.mjs'), ...only], env));
