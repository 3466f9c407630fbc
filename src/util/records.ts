// The records of a data file in the forms datasets are kept in: JSONL (one JSON object a line; `file:line`), a JSON
// array of objects (`file: record N`), or Parquet (`.parquet`, or a file that starts with Parquet's magic bytes;
// `file: row N`, 0-based as datasets counts rows), which is how the Hugging Face Hub stores datasets (TRL's
// preference and SFT sets among them). Each record comes with where it is, for errors.
import { existsSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { FileFormatError, forEachJsonl, isParquet, jsonErrorMessage, readText } from './files.js';

export interface DataRecord {
  value: unknown;
  where: string;
}

/** Parquet values as JSON would give them: int64 as numbers, nested lists and structs as arrays and objects. */
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object' && !(v instanceof Date) && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

/** The records of a JSONL, JSON-array or Parquet file (see the module comment). */
export async function readRecords(path: string, makeError: new (msg: string) => Error = FileFormatError): Promise<DataRecord[]> {
  if (!existsSync(path)) throw new makeError(`${path} does not exist`);
  if (extname(path).toLowerCase() === '.parquet' || isParquet(path)) {
    const buf = readFileSync(path);
    const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file });
    } catch (e) {
      throw new makeError(`${path}: not a readable Parquet file (${(e as Error).message})`);
    }
    return rows.map((r, i) => ({ value: plain(r), where: `${path}: row ${i}` }));
  }
  return readJsonRecords(path, makeError);
}

/** The records of a JSON-array or JSONL file (the text forms of readRecords; AlpacaEval's outputs are a JSON array). */
export function readJsonRecords(path: string, makeError: new (msg: string) => Error = FileFormatError): DataRecord[] {
  const text = readText(path, makeError);
  if (text.trimStart().startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(text);
    } catch (e) {
      throw new makeError(`${path}: not valid JSON (${jsonErrorMessage(text, e)})`);
    }
    if (!Array.isArray(arr)) throw new makeError(`${path}: expected a JSON array of records or JSONL`);
    return arr.map((value, i) => ({ value, where: `${path}: record ${i + 1}` }));
  }
  const out: DataRecord[] = [];
  forEachJsonl(path, (value, where) => out.push({ value, where }), makeError);
  return out;
}
