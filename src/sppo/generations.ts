// Sampled responses as `sppo generate` writes them (one line per prompt, or several lines of one prompt),
// read back grouped by prompt for judging (`sppo judge`).
import { existsSync } from 'node:fs';
import { FileFormatError, forEachJsonl } from '../util/files.js';

export interface GenerationGroup {
  promptId: string | number;
  prompt: string;
  responses: string[];
  promptText?: string;
  refLogprobs?: (number | null)[];
}

/** Reads generations, grouping lines of the same prompt; a malformed line is an error naming file:line. */
export function readGenerations(path: string): GenerationGroup[] {
  if (!existsSync(path)) throw new FileFormatError(`${path} does not exist`);
  const groups = new Map<string, GenerationGroup>();
  forEachJsonl(path, (v, where) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: expected a JSON object with "prompt" and "responses"`);
    const o = v as Record<string, unknown>;
    const prompt = typeof o.prompt === 'string' ? o.prompt : typeof o.prompt_text === 'string' ? o.prompt_text : undefined;
    if (prompt === undefined) throw new Error(`${where}: expected "prompt" (or "prompt_text") to be a string`);
    if (!Array.isArray(o.responses) || o.responses.length === 0) throw new Error(`${where}: expected "responses" to be a non-empty list`);
    const texts: string[] = [];
    const lps: (number | null)[] = [];
    o.responses.forEach((r, j) => {
      if (typeof r === 'string') {
        texts.push(r);
        lps.push(null);
      } else if (r && typeof r === 'object' && typeof (r as { text?: unknown }).text === 'string') {
        texts.push((r as { text: string }).text);
        const lp = (r as { logprobs?: unknown }).logprobs;
        lps.push(Array.isArray(lp) && lp.every((x) => typeof x === 'number') ? (lp as number[]).reduce((a, x) => a + x, 0) : null);
      } else {
        throw new Error(`${where}: responses[${j}] must be a string or an object with "text"`);
      }
    });
    const idRaw = o.prompt_id ?? o.id;
    if (idRaw !== undefined && typeof idRaw !== 'string' && typeof idRaw !== 'number') throw new Error(`${where}: "prompt_id" / "id" must be a string or a number`);
    const key = idRaw !== undefined ? `id:${JSON.stringify(idRaw)}` : `text:${prompt}`;
    let g = groups.get(key);
    if (!g) {
      g = { promptId: idRaw ?? groups.size, prompt, responses: [] };
      if (typeof o.prompt_text === 'string') g.promptText = o.prompt_text;
      groups.set(key, g);
    } else if (g.prompt !== prompt) {
      throw new Error(`${where}: prompt id ${JSON.stringify(idRaw)} was seen before with another prompt`);
    }
    g.responses.push(...texts);
    if (lps.some((x) => x !== null) || g.refLogprobs) {
      g.refLogprobs = [...(g.refLogprobs ?? new Array<number | null>(g.responses.length - texts.length).fill(null)), ...lps];
    }
  });
  if (groups.size === 0) throw new Error(`${path}: no generations`);
  return [...groups.values()];
}
