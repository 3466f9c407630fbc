// Inference servers started for a while (`generation.backend.serverCommand` of `sppo run`): a command
// template such as "node bin/sppo.js serve {checkpoint} --port {port}" or "vllm serve {checkpoint} --port
// {port}" is started `count` times, each on a free port of 127.0.0.1 picked here, and is ready when GET
// {url}/models answers 200. A server that exits before it is ready, or is not ready within the start
// timeout, is an error naming the command and the last lines of its stderr. stop() sends SIGTERM to each
// (the whole process group, so that a shell's children go too), then SIGKILL after a grace period.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface ServerProcessOptions {
  /** Servers to start. Default 1. */
  count?: number;
  /** Seconds to wait for each to answer GET /v1/models. Default 300. */
  startTimeoutS?: number;
  /** Seconds between SIGTERM and SIGKILL. Default 10. */
  graceS?: number;
  /** Working folder of the commands. */
  cwd?: string;
  /** Sent as the bearer token of the readiness probe. */
  apiKey?: string;
  /** Where each server's stderr lines go (default: kept, shown only on failure). */
  onStderr?: (line: string) => void;
}

export interface RunningServers {
  /** The OpenAI API base URLs, http://127.0.0.1:PORT/v1. */
  urls: string[];
  /** The commands as run (the template filled in). */
  commands: string[];
  /** The processes (for tests). */
  children: ChildProcess[];
  stop(): Promise<void>;
}

export class ServerStartError extends Error {
  override name = 'ServerStartError';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A port free on 127.0.0.1 now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** The template with {checkpoint}, {port} and {index} filled in ({checkpoint} quoted for the shell). */
export function fillCommand(template: string, vars: { checkpoint: string; port: number; index: number }): string {
  const quote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return template.replace(/\{checkpoint\}/g, quote(vars.checkpoint)).replace(/\{port\}/g, String(vars.port)).replace(/\{index\}/g, String(vars.index));
}

function signalTree(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    // The group: a shell's children may outlive the shell.
    process.kill(-child.pid, sig);
  } catch {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  }
}

// The servers run in process groups of their own (so that a shell's children are stopped with it), which
// a Ctrl-C of the terminal does not reach: while any runs, SIGINT and SIGTERM of this process, and its exit,
// SIGKILL them first (a signal is then raised again with its default action).
const live = new Set<ChildProcess>();
const onExit = (): void => {
  for (const c of live) signalTree(c, 'SIGKILL');
};
const onSignal = (sig: NodeJS.Signals): void => {
  onExit();
  unwatch();
  process.kill(process.pid, sig);
};
function watch(child: ChildProcess): void {
  if (live.size === 0) {
    process.on('exit', onExit);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  live.add(child);
}
function unwatch(child?: ChildProcess): void {
  if (child) live.delete(child);
  else live.clear();
  if (live.size === 0) {
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Whether any process of the group is left; zombies (which a PID 1 may never reap) do not count. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return true; // no /proc: kill(0) has to do
  }
  for (const p of pids) {
    try {
      // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after its last ')'.
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid && f[0] !== 'Z') return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return unwatch(child);
  // SIGTERM to the group, then SIGKILL once the grace period is over if anything of it is left (the shell
  // may have exited at once while its children finish).
  signalTree(child, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && (child.exitCode === null && child.signalCode === null ? true : groupAlive(pid))) await sleep(50);
  signalTree(child, 'SIGKILL');
  if (child.exitCode === null && child.signalCode === null) await new Promise<void>((r) => child.once('exit', () => r()));
  unwatch(child);
}

/** Starts the servers of `template` on `checkpoint` and waits until each answers; stop() them when done. */
export async function startServers(template: string, checkpoint: string, opts: ServerProcessOptions = {}): Promise<RunningServers> {
  const count = opts.count ?? 1;
  const timeoutMs = (opts.startTimeoutS ?? 300) * 1000;
  const graceMs = (opts.graceS ?? 10) * 1000;
  const children: ChildProcess[] = [];
  const commands: string[] = [];
  const urls: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(children.map((c) => stopChild(c, graceMs)));
  };
  try {
    const ready: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const command = fillCommand(template, { checkpoint, port, index: i });
      const url = `http://127.0.0.1:${port}/v1`;
      const child = spawn(command, { shell: true, cwd: opts.cwd, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      children.push(child);
      watch(child);
      commands.push(command);
      urls.push(url);
      const tail: string[] = [];
      let partial = '';
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (d: string) => {
        const parts = (partial + d).split('\n');
        partial = parts.pop()!;
        for (const l of parts) {
          tail.push(l);
          if (tail.length > 20) tail.shift();
          opts.onStderr?.(l);
        }
      });
      const lastLines = (): string => {
        const lines = [...tail, ...(partial ? [partial] : [])].slice(-10);
        return lines.length ? `; last lines of its stderr:\n    ${lines.join('\n    ')}` : '; it wrote nothing on stderr';
      };
      let exit: string | null = null;
      child.on('exit', (code, sig) => {
        exit = sig ? `was killed by ${sig}` : `exited with code ${code}`;
      });
      child.on('error', (e) => {
        exit = `could not start (${e.message})`;
      });
      const isReady = (async () => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          if (exit) throw new ServerStartError(`inference server command \`${command}\` ${exit} before answering GET ${url}/models${lastLines()}`);
          if (Date.now() > deadline) throw new ServerStartError(`inference server command \`${command}\` did not answer GET ${url}/models within ${timeoutMs / 1000} s${lastLines()}`);
          try {
            const res = await fetch(`${url}/models`, { headers: opts.apiKey ? { Authorization: `Bearer ${opts.apiKey}` } : {}, signal: AbortSignal.timeout(5000) });
            await res.body?.cancel();
            if (res.status === 200) return;
          } catch {
            // not listening yet
          }
          await sleep(100);
        }
      })();
      // (Handled below by Promise.all; this keeps an early failure from counting as unhandled meanwhile.)
      isReady.catch(() => {});
      ready.push(isReady);
    }
    // The first failure stops them all (the others then fail too, handled by Promise.all).
    await Promise.all(ready);
  } catch (e) {
    await stop();
    throw e;
  }
  return { urls, commands, children, stop };
}
