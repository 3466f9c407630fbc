// The PyTorch peer of `npm run bench`: a Python script run in its own process (Debian's python3-torch
// at /usr/bin/python3, which `npm run bench` installs when missing and root, or SPPO_BENCH_PYTHON).
// Without it the bench prints sppo's column alone and says, once, how to get the peer.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const PYTHON = process.env.SPPO_BENCH_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

let told = false;

/** Runs bench/<script> with args; returns its last line of output as JSON, or null (and says why) when it fails. */
export function runPeer<T>(script: string, args: string[], python = PYTHON): T | null {
  const path = fileURLToPath(new URL(`../../bench/${script}`, import.meta.url));
  const r = spawnSync(python, [path, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status === 0) {
    try {
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
    } catch {
      /* reported below */
    }
  }
  if (!told) {
    const why = (r.error?.message ?? r.stderr ?? '').trim().split('\n').pop() || `exit ${r.status}`;
    console.log(`(no PyTorch peer: ${python} ${script}: ${why}; install Debian's python3-torch as root (npm run bench does), or set SPPO_BENCH_PYTHON to a python with torch)`);
    told = true;
  }
  return null;
}
