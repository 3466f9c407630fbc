// The one way the scripts make a Python environment (scripts/pytorch.mjs, conformance.mjs, python-interop.mjs,
// peft-interop.mjs, lm-eval.mjs): a venv under .venv/NAME (git-ignored), made with `python3 -m venv`
// ($PYTHON_FOR_VENV) and filled by pip from whatever index pip is configured for (this machine kind: a local
// wheelhouse), once: a stamp records what was installed, and a venv whose stamp differs is made again.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The last line of a command's stderr that is not a pip WARNING. */
export const lastLine = (s) => String(s ?? '').trim().split('\n').filter((l) => !l.startsWith('WARNING')).pop() ?? '';

/**
 * The python of .venv/NAME with `installs` in it (each a `pip install` argument list, run in order). Where it cannot
 * be made, `fail(why)` is called (it may exit) and undefined returned; the half-made venv is removed.
 */
export function pythonVenv(name, installs, { log = () => {}, fail }) {
  const dir = join(root, '.venv', name);
  const py = join(dir, 'bin', 'python3');
  const stamp = join(dir, '.sppo-installed');
  const want = JSON.stringify(installs);
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return py;
  log(`making ${dir} (${installs.flat().filter((a) => !a.startsWith('-')).slice(0, 4).join(', ')}${installs.flat().length > 4 ? ', ...' : ''})`);
  rmSync(dir, { recursive: true, force: true });
  const host = process.env.PYTHON_FOR_VENV ?? 'python3';
  let r = spawnSync(host, ['-m', 'venv', dir], { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    fail(`'${host} -m venv' failed: ${r.error?.message ?? lastLine(r.stderr)}`);
    return undefined;
  }
  // No retries: where pip's default index cannot be reached (this machine kind), each retry only waits.
  const env = { ...process.env, PIP_RETRIES: process.env.PIP_RETRIES ?? '0', PIP_DISABLE_PIP_VERSION_CHECK: '1' };
  for (const args of installs) {
    r = spawnSync(py, ['-m', 'pip', 'install', '-q', ...args], { env, stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      const names = args.filter((a) => !a.startsWith('-'));
      fail(r.error ? `could not run ${py}: ${r.error.message}` : `pip could not install ${names.slice(0, 3).join(' ')}${names.length > 3 ? ' ...' : ''}: ${lastLine(r.stderr)}`);
      return undefined;
    }
  }
  writeFileSync(stamp, want);
  return py;
}
