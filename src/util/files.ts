// Files and folders written atomically (a temporary sibling renamed into place when complete, so a file or
// folder that exists is finished), and JSON / JSONL read back with errors that name the file and the line.
// Every artifact of a run, every trainer checkpoint, adapter folder and merged model is written through
// these (writeDirAtomic is the one folder swap). Two exceptions: safetensors files have their own writer
// (src/torch/safetensors.ts, below this layer, renaming the same way), and the folders the CLI is given
// with --out (sppo train / sft, the judge's backbone) are written in place, file by file, so that files
// already there are kept.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
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

/**
 * A text file's contents, as UTF-8. Errors name the file: one that cannot be read (missing, a folder, no
 * permission), and bytes that are not UTF-8 (with the line they are on), which a plain read would turn into
 * U+FFFD without a word. A leading byte-order mark, which some editors write, is dropped.
 */
export function readText(path: string, makeError: new (msg: string) => Error = FileFormatError): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EISDIR' ? 'a folder, not a file' : err.code === 'ENOENT' ? 'no such file' : err.message;
    throw new makeError(`${path}: cannot read (${why})`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new makeError(`${path}:${badUtf8Line(bytes)}: not valid UTF-8 (save the file as UTF-8)`);
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** The 1-based line of the first bytes that are not UTF-8. */
function badUtf8Line(bytes: Buffer): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  for (let line = 1; ; line++) {
    const nl = bytes.indexOf(0x0a, start);
    const end = nl < 0 ? bytes.length : nl;
    try {
      decoder.decode(bytes.subarray(start, end));
    } catch {
      return line;
    }
    if (nl < 0) return line;
    start = nl + 1;
  }
}

/** JSON.parse's message with its character offset ("at position N") given as a line and column of `text`. */
export function jsonErrorMessage(text: string, e: unknown): string {
  const msg = (e as Error).message;
  const m = /at position (\d+)/.exec(msg);
  if (!m) return msg;
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  return `${msg} (line ${line}, column ${column})`;
}

export function readJson<T = unknown>(path: string): T {
  const text = readText(path);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new FileFormatError(`${path}: cannot read (${jsonErrorMessage(text, e)})`);
  }
}

/** Whether the file starts with Parquet's magic bytes (PAR1). */
export function isParquet(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.toString('latin1') === 'PAR1';
  } finally {
    closeSync(fd);
  }
}

/**
 * Calls fn with each non-empty line of a JSONL file, parsed, and where it is (`file:line`, for errors).
 * A line that is not JSON throws `makeError` (default FileFormatError) naming the file and the line.
 */
export function forEachJsonl(path: string, fn: (value: unknown, where: string) => void, makeError: new (msg: string) => Error = FileFormatError): void {
  // Data files in the other forms datasets are kept in are named as such, not reported as bad UTF-8 or bad JSON.
  if (existsSync(path) && statSync(path).isFile() && isParquet(path)) {
    throw new makeError(`${path}: a Parquet file, where JSONL (one JSON object a line) is read here`);
  }
  const text = readText(path, makeError);
  const first = text.trimStart();
  if (first.startsWith('[') && !first.split('\n', 1)[0]!.trimEnd().endsWith(']')) {
    throw new makeError(`${path}: a JSON array spread over lines, where JSONL (one JSON object a line) is read here`);
  }
  text
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
