// The run directory of `sppo run`: every artifact is written atomically (a temporary file or folder in
// the same directory, renamed into place when complete), so an artifact that exists is finished. A
// stage is finished exactly when its artifact exists; rerunning resumes at the first stage whose
// artifact is missing. Within the long stages (generation, judging) work is saved in chunks under
// `iter-N/partial/<stage>/NNNNN.jsonl` (each atomic too); the stage's final artifact is assembled from
// them and the chunks are removed.
//
// Temporary names: `<name>.tmp-<pid>`. Leftovers of a killed process are removed when a run starts.
// A `run.lock` file (holding the pid) keeps two processes from working on one run directory.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

export class RunDirError extends Error {
  override name = 'RunDirError';
}

const TMP = /\.tmp-\d+$/;

function tmpName(path: string): string {
  return `${path}.tmp-${process.pid}`;
}

/** Writes `data` to `path` atomically (temp file + rename). */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tmpName(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/** One JSON value per line, written atomically (streamed to the temp file, then renamed). */
export function writeJsonlAtomic(path: string, rows: Iterable<unknown>): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tmpName(path);
  const fd = openSync(tmp, 'w');
  try {
    for (const r of rows) writeSync(fd, JSON.stringify(r) + '\n');
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}

export function readJson<T = unknown>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new RunDirError(`${path}: cannot read (${(e as Error).message})`);
  }
}

export function readJsonl<T = unknown>(path: string): T[] {
  const out: T[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        out.push(JSON.parse(line) as T);
      } catch (e) {
        throw new RunDirError(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`);
      }
    });
  return out;
}

/**
 * Builds a folder atomically: `fill` writes into a temporary sibling folder, which is then renamed to
 * `dir`. `dir` must not exist yet.
 */
export async function writeDirAtomic(dir: string, fill: (tmp: string) => void | Promise<void>): Promise<void> {
  const tmp = tmpName(dir);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await fill(tmp);
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
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
