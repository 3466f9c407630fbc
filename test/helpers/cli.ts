// The `sppo` command run as a user runs it: a separate process of bin/sppo.js (the built dist/), for the
// tests that check the CLI itself (its arguments, exit status and messages). Exit status 2: a usage error.
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { projectRoot } from './fixtures.js';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function sppoCli(args: string[]): CliResult {
  const r = spawnSync(process.execPath, [join(projectRoot, 'bin', 'sppo.js'), ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
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
