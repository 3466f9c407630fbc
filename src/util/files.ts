// Files written atomically (a temporary sibling renamed into place when complete, so a file that exists
// is finished), and JSON / JSONL read back with errors that name the file and the line. Every artifact
// of sppo is written through these.
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

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

