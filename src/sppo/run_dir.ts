// The run directory of `sppo run`: every artifact is written atomically (a temporary file or folder in
// the same directory, renamed into place when complete), so an artifact that exists is finished. A
// stage is finished exactly when its artifact exists; rerunning resumes at the first stage whose
// artifact is missing. Within the long stages (generation, judging) work is saved in chunks under
// `iter-N/partial/<stage>/NNNNN.jsonl` (each atomic too); the stage's final artifact is assembled from
// them and the chunks are removed.
//
// Temporary names: `<name>.tmp-<pid>`. Leftovers of a killed process are removed when a run starts.
// A `run.lock` file (holding the pid) keeps two processes from working on one run directory.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TMP } from '../util/files.js';

// The atomic writers live in src/util/files.ts; re-exported for the loop's users.
export { FileFormatError, readJson, readJsonl, writeDirAtomic, writeFileAtomic, writeJsonAtomic, writeJsonlAtomic } from '../util/files.js';

export class RunDirError extends Error {
  override name = 'RunDirError';
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class RunDir {
  private locked = false;
  constructor(readonly root: string) {}

  iterDir(t: number): string {
    return join(this.root, `iter-${t}`);
  }

  /** Path of an artifact of iteration t (`iter-t/<name>`), or of the run (t undefined). */
  path(t: number | undefined, name: string): string {
    return t === undefined ? join(this.root, name) : join(this.iterDir(t), name);
  }

  has(t: number | undefined, name: string): boolean {
    return existsSync(this.path(t, name));
  }

  /** Creates the folder, takes the lock (an error when a live process holds it) and removes temporary leftovers. */
  open(): void {
    mkdirSync(this.root, { recursive: true });
    const lock = join(this.root, 'run.lock');
    if (existsSync(lock)) {
      const pid = Number(readFileSync(lock, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
        throw new RunDirError(`${this.root}: another sppo process (pid ${pid}) is working on this run directory (${lock})`);
      }
    }
    writeFileSync(lock, `${process.pid}\n`);
    this.locked = true;
    this.removeTemporaries(this.root);
  }

  close(): void {
    if (!this.locked) return;
    rmSync(join(this.root, 'run.lock'), { force: true });
    this.locked = false;
  }

  private removeTemporaries(dir: string): void {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (TMP.test(name)) rmSync(p, { recursive: true, force: true });
      else if (statSync(p).isDirectory()) this.removeTemporaries(p);
    }
  }

  /** Folder of the saved chunks of a stage. */
  partialDir(t: number, stage: string): string {
    return join(this.iterDir(t), 'partial', stage);
  }

  chunkPath(t: number, stage: string, chunk: number): string {
    return join(this.partialDir(t, stage), `${String(chunk).padStart(5, '0')}.jsonl`);
  }

  /** Removes a finished stage's chunks (and the partial folder when empty). */
  dropPartial(t: number, stage: string): void {
    rmSync(this.partialDir(t, stage), { recursive: true, force: true });
    const parent = join(this.iterDir(t), 'partial');
    if (existsSync(parent) && readdirSync(parent).length === 0) rmSync(parent, { recursive: true, force: true });
  }
}
