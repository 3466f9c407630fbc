// Files and folders written atomically (a temporary sibling renamed into place when complete, so a file or
// folder that exists is finished), and JSON / JSONL read back with errors that name the file and the line.
// Every artifact of a run, every trainer checkpoint, adapter folder and merged model is written through
// these (writeDirAtomic is the one folder swap). Two exceptions: safetensors files have their own writer
// (src/torch/safetensors.ts, below this layer, renaming the same way), and the folders the CLI is given
// with --out (sppo train / sft, the judge's backbone) are written in place, file by file, so that files
// already there are kept.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** A file that is not what it should be: the message names the file (and the line). */
export class FileFormatError extends Error {
  override name = 'FileFormatError';
}

/** Leftover temporary names of a killed process: `<name>.tmp-<pid>`. */
export const TMP = /\.tmp-\d+$/;

export function tmpName(path: string): string {
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
    throw new FileFormatError(`${path}: cannot read (${(e as Error).message})`);
  }
}

/**
 * Calls fn with each non-empty line of a JSONL file, parsed, and where it is (`file:line`, for errors).
 * A line that is not JSON throws `makeError` (default FileFormatError) naming the file and the line.
 */
export function forEachJsonl(path: string, fn: (value: unknown, where: string) => void, makeError: new (msg: string) => Error = FileFormatError): void {
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const where = `${path}:${i + 1}`;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch (e) {
        throw new makeError(`${where}: not valid JSON (${(e as Error).message})`);
      }
      fn(v, where);
    });
}

export function readJsonl<T = unknown>(path: string): T[] {
  const out: T[] = [];
  forEachJsonl(path, (v) => out.push(v as T));
  return out;
}

/**
 * Writes a folder atomically, the one folder swap of sppo (checkpoints, adapters, merged models, a run's
 * artifacts): `fill` writes into a temporary sibling folder, which then takes `dir`'s place; a folder already
 * at `dir` is renamed aside first and removed after, so `dir` is always either the old folder or the new one,
 * complete. On an error the temporary folder is removed and `dir` is left as it was. Returns what `fill` returns.
 */
export function writeDirAtomic<T>(dir: string, fill: (tmp: string) => T): T {
  const out = resolve(dir);
  const tmp = tmpName(out);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  let value: T;
  try {
    value = fill(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const old = tmpName(`${out}.old`);
  if (existsSync(out)) renameSync(out, old);
  renameSync(tmp, out);
  rmSync(old, { recursive: true, force: true });
  return value;
}
