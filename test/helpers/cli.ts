// The `sppo` command run as a user runs it: a separate process of bin/sppo.js (the built dist/), for the
// tests that check the CLI itself (its arguments, exit status and messages). Exit status 2: a usage error.
import { spawn, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { projectRoot } from './fixtures.js';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function sppoCli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(process.execPath, [join(projectRoot, 'bin', 'sppo.js'), ...args], { cwd: opts.cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...opts.env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The CLI without blocking this process's event loop (for tests whose servers live in this process): resolves
 * at exit with its status, signal and output. `env` is added to this process's; `onSpawn` gets a SIGKILL switch.
 */
export function sppoAsync(args: string[], opts: { env?: Record<string, string>; onSpawn?: (kill: () => void) => void } = {}): Promise<CliResult & { signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(projectRoot, 'bin', 'sppo.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (status, signal) => resolve({ status, signal, stdout, stderr }));
    opts.onSpawn?.(() => child.kill('SIGKILL'));
  });
}

/** Runs the CLI and asserts it succeeded. */
export function sppoOk(args: string[]): CliResult {
  const r = sppoCli(args);
  assert.equal(r.status, 0, `sppo ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  return r;
}

/** Runs the CLI and asserts it failed with `status` (2: usage error, 1: another error) and a message matching `message`. */
export function sppoFails(args: string[], status: 1 | 2, message?: RegExp): CliResult {
  const r = sppoCli(args);
  assert.equal(r.status, status, `sppo ${args.join(' ')}: exit status ${r.status}, expected ${status}; stderr: ${r.stderr}`);
  if (message) assert.match(r.stderr, message);
  return r;
}
