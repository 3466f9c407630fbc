// A judge written by the user as a JavaScript module (`--judge ./my-judge.mjs`). It exports one of
//   export default function (query, options) { return P(a > b) }          // a number or a Promise of one
//   export function prefer(query, options) { ... }                        // same, named
//   export async function preferBatch(queries, options) { return [...] }  // batched: one number per query
// where query = { prompt, a, b }, and optionally
//   export const positionBiased = false;   // default true: each pair is also asked in the swapped order
//   export const name = 'my judge';
//   export function dispose() { ... }
// Every answer must be a number in [0, 1]; anything else is an error naming the module file and the query.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { existsSync } from 'node:fs';
import { isProbability, JudgeError, type PreferenceOracle, type PreferenceQuery } from './oracle.js';

type Single = (q: PreferenceQuery, options?: unknown) => number | Promise<number>;
type Batch = (qs: PreferenceQuery[], options?: unknown) => number[] | Promise<number[]>;

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function loadModuleJudge(path: string, options?: unknown): Promise<PreferenceOracle> {
  const file = resolve(path);
  if (!existsSync(file)) throw new JudgeError(`judge module ${file} does not exist`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    throw new JudgeError(`judge module ${file}: cannot load it: ${errText(e)}`);
  }
  const batch = typeof mod.preferBatch === 'function' ? (mod.preferBatch as Batch) : undefined;
  const single = typeof mod.prefer === 'function' ? (mod.prefer as Single) : typeof mod.default === 'function' ? (mod.default as Single) : undefined;
  if (!batch && !single) {
    throw new JudgeError(`judge module ${file}: exports no judge function (export default (query) => P(a > b), or prefer(query), or preferBatch(queries))`);
  }
  if (mod.positionBiased !== undefined && typeof mod.positionBiased !== 'boolean') {
    throw new JudgeError(`judge module ${file}: 'positionBiased' must be a boolean, got ${typeof mod.positionBiased}`);
  }
  const positionBiased = mod.positionBiased === undefined ? true : (mod.positionBiased as boolean);
  const name = typeof mod.name === 'string' ? mod.name : file;
  const check = (v: unknown, i: number): number => {
    if (!isProbability(v)) {
      throw new JudgeError(`judge module ${file}: query ${i}: returned ${typeof v === 'number' ? v : JSON.stringify(v) ?? String(v)}, expected a number in [0, 1]`);
    }
    return v;
  };
  return {
    name,
    positionBiased,
    async prefer(queries: PreferenceQuery[]): Promise<number[]> {
      if (batch) {
        let out: unknown;
        try {
          out = await batch(queries.map((q) => ({ ...q })), options);
        } catch (e) {
          throw new JudgeError(`judge module ${file}: preferBatch threw: ${errText(e)}`);
        }
        if (!Array.isArray(out)) throw new JudgeError(`judge module ${file}: preferBatch returned ${typeof out}, expected an array of ${queries.length} numbers`);
        if (out.length !== queries.length) throw new JudgeError(`judge module ${file}: preferBatch returned ${out.length} values for ${queries.length} queries`);
        return out.map(check);
      }
      const out: number[] = [];
      for (let i = 0; i < queries.length; i++) {
        let v: unknown;
        try {
          v = await single!({ ...queries[i]! }, options);
        } catch (e) {
          throw new JudgeError(`judge module ${file}: the judge threw on query ${i}: ${errText(e)}`);
        }
        out.push(check(v, i));
      }
      return out;
    },
    dispose(): void {
      if (typeof mod.dispose === 'function') (mod.dispose as () => void)();
    },
  };
}
