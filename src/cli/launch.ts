// `sppo run CONFIG --nproc N`: starts N local ranks of the same command, as torchrun --nproc-per-node N
// --nnodes 1 does: each child gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR (127.0.0.1
// unless set) and MASTER_PORT (a free port unless set), and OMP_NUM_THREADS (the cores shared out, unless
// set). When a rank fails (an exit code, a signal), the launcher names it and stops the others (SIGTERM, then
// SIGKILL after 10 s), and exits with 1; Ctrl-C reaches every rank.
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { freePort } from '../util/ports.js';

/** Runs `node <script> <args>` as `nproc` ranks; resolves with the exit code for the launcher (0: every rank succeeded). */
export async function launchRanks(nproc: number, script: string, args: string[], log: (s: string) => void = (s) => console.error(s)): Promise<number> {
  const port = process.env.MASTER_PORT ? Number(process.env.MASTER_PORT) : await freePort();
  const addr = process.env.MASTER_ADDR ?? '127.0.0.1';
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const threads = String(Math.max(1, Math.floor(cores / nproc)));
  const children: ChildProcess[] = [];
  let failed: string | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const stopOthers = (sig: NodeJS.Signals): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(sig);
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    failed ??= `interrupted (${sig})`;
    stopOthers(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const exits = Array.from({ length: nproc }, (_, rank) => {
      const child = spawn(process.execPath, [script, ...args], {
        env: {
          ...process.env,
          RANK: String(rank), WORLD_SIZE: String(nproc), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(nproc),
          MASTER_ADDR: addr, MASTER_PORT: String(port), OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? threads,
        },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      children.push(child);
      return new Promise<void>((res) => {
        child.on('error', (e) => {
          failed ??= `rank ${rank} could not start: ${e.message}`;
          stopOthers('SIGTERM');
          res();
        });
        child.on('exit', (code, signal) => {
          if ((code !== 0 || signal) && !failed) {
            failed = `rank ${rank} (pid ${child.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`;
            log(`sppo run: ${failed}; stopping the other ranks`);
            stopOthers('SIGTERM');
            killTimer = setTimeout(() => stopOthers('SIGKILL'), 10_000);
            killTimer.unref();
          }
          res();
        });
      });
    });
    await Promise.all(exits);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (killTimer) clearTimeout(killTimer);
  }
  if (failed) {
    log(`sppo run: stopped: ${failed} (rerunning the same command resumes the run)`);
    return 1;
  }
  return 0;
}
