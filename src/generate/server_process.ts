// Inference servers started for a while (`generation.backend.serverCommand` of `sppo run`): a command
// template such as "node bin/sppo.js serve {checkpoint} --port {port}" or "vllm serve {checkpoint} --port
// {port}" is started `count` times, each on a free port of 127.0.0.1 picked here, and is ready when GET
// {url}/models answers 200. A server that exits before it is ready, or is not ready within the start
// timeout, is an error naming the command and the last lines of its stderr. stop() sends SIGTERM to each
// (the whole process group, so that a shell's children go too), then SIGKILL after a grace period.
import { spawn, type ChildProcess } from 'node:child_process';
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
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      // gone already
    }
  }
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  signalTree(child, 'SIGTERM');
  const timer = setTimeout(() => signalTree(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  // A shell's children may outlive it: the group gets SIGKILL too.
  signalTree(child, 'SIGKILL');
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
      ready.push(
        (async () => {
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
        })(),
      );
    }
    const results = await Promise.allSettled(ready);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } catch (e) {
    await stop();
    throw e;
  }
  return { urls, commands, children, stop };
}
