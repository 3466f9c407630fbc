// Prompts of an SPPO run: reading JSONL and Parquet files, splitting them over the iterations, and the
// texts given to the model (chat template) and to the judge.
//
// A row is a prompt when it has one of (first match wins):
//   `prompt`: a string (plain text), or a list of chat messages (TRL's conversational layout);
//   `messages`: a list of {role, content} (UltraFeedback's layout; trailing assistant turns, i.e. the
//               answer that the data set ships, are dropped, so the prompt ends with the user's turn);
//   `instruction`: a string (AlpacaEval's layout).
// An `id`, `prompt_id` or `source_index` field becomes the prompt's id (kept in the artifacts).
import { readFileSync, existsSync } from 'node:fs';
import { extname } from 'node:path';
import { forEachJsonl } from '../util/files.js';
import { parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
import type { ChatMessage, ChatTemplate } from '../text/chat_template.js';
import { renderPrompt, type RenderedPrompt } from '../text/chat_template.js';
import { createRng, permutation } from '../util/rng.js';

export interface PromptRecord {
  /** Position in its file (0-based; the file's line order, blank lines not counted). */
  index: number;
  id?: string | number;
  prompt: string | ChatMessage[];
}

/** A prompt file that cannot be read; the message names the file (and the line or row). */
export class PromptFileError extends Error {
  override name = 'PromptFileError';
}

const ID_FIELDS = ['id', 'prompt_id', 'source_index'] as const;

/**
 * A data file's list of messages ({role, content} with string content, other keys dropped), or `makeError` naming
 * where and which message is not one: the one check of messages in prompt, pair and SFT files.
 */
export function messageList(v: unknown[], where: string, field: string, makeError: new (msg: string) => Error = Error): ChatMessage[] {
  return v.map((m, j) => {
    const o = m as Record<string, unknown>;
    if (!o || typeof o !== 'object' || typeof o.role !== 'string' || typeof o.content !== 'string') {
      throw new makeError(`${where}: ${field}[${j}] must be an object with string "role" and "content"`);
    }
    return { role: o.role, content: o.content };
  });
}

function checkMessages(v: unknown[], where: string, field: string): ChatMessage[] {
  const msgs = messageList(v, where, field, PromptFileError);
  while (msgs.length > 0 && msgs[msgs.length - 1]!.role === 'assistant') msgs.pop();
  if (msgs.length === 0) throw new PromptFileError(`${where}: "${field}" has no message before the assistant's answer`);
  return msgs;
}

/** The prompt of one row (see the module comment); throws naming `where`. */
export function promptFromRow(row: unknown, where: string): { prompt: string | ChatMessage[]; id?: string | number } {
  if (!row || typeof row !== 'object' || Array.isArray(row)) throw new PromptFileError(`${where}: expected an object with "prompt", "messages" or "instruction"`);
  const o = row as Record<string, unknown>;
  let prompt: string | ChatMessage[];
  if (typeof o.prompt === 'string') prompt = o.prompt;
  else if (Array.isArray(o.prompt)) prompt = checkMessages(o.prompt, where, 'prompt');
  else if (Array.isArray(o.messages)) prompt = checkMessages(o.messages, where, 'messages');
  else if (typeof o.instruction === 'string') prompt = o.instruction;
  else throw new PromptFileError(`${where}: expected "prompt" (a string or a list of messages), "messages" (a list) or "instruction" (a string)`);
  if (typeof prompt === 'string' && prompt.trim() === '') throw new PromptFileError(`${where}: the prompt is empty`);
  for (const k of ID_FIELDS) {
    const v = o[k];
    if (typeof v === 'string' || typeof v === 'number') return { prompt, id: v };
    if (typeof v === 'bigint') return { prompt, id: Number(v) };
  }
  return { prompt };
}

function readJsonl(path: string): PromptRecord[] {
  const out: PromptRecord[] = [];
  forEachJsonl(path, (v, where) => out.push({ index: out.length, ...promptFromRow(v, where) }), PromptFileError);
  return out;
}

async function readParquet(path: string): Promise<PromptRecord[]> {
  const buf = readFileSync(path);
  const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  let columns: string[];
  try {
    const meta = parquetMetadata(file);
    const top = parquetSchema(meta).children.map((c) => c.element.name);
    columns = ['prompt', 'messages', 'instruction', ...ID_FIELDS].filter((c) => top.includes(c));
    if (!columns.some((c) => ['prompt', 'messages', 'instruction'].includes(c))) {
      throw new PromptFileError(`${path}: no "prompt", "messages" or "instruction" column (columns: ${top.join(', ')})`);
    }
  } catch (e) {
    if (e instanceof PromptFileError) throw e;
    throw new PromptFileError(`${path}: not a readable Parquet file (${(e as Error).message})`);
  }
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file, columns });
  } catch (e) {
    throw new PromptFileError(`${path}: cannot read the Parquet rows (${(e as Error).message})`);
  }
  return rows.map((r, i) => ({ index: i, ...promptFromRow(r, `${path}: row ${i}`) }));
}

/** Reads a prompt file: Parquet (`.parquet`), else JSONL. */
export async function readPromptFile(path: string): Promise<PromptRecord[]> {
  if (!existsSync(path)) throw new PromptFileError(`${path}: no such prompts file`);
  const recs = extname(path).toLowerCase() === '.parquet' ? await readParquet(path) : readJsonl(path);
  if (recs.length === 0) throw new PromptFileError(`${path}: no prompts`);
  return recs;
}

export interface SplitOptions {
  iterations: number;
  /** Prompts per iteration (default: the rest after the held-out ones, split evenly). */
  perIteration?: number;
  /** Held-out evaluation prompts taken first from the shuffled order. */
  evalCount: number;
  seed: number;
}

export interface PromptSplit {
  /** Indices of the held-out evaluation prompts. */
  eval: number[];
  /** Indices of each iteration's prompts (disjoint). */
  iterations: number[][];
}

/** Seeded Fisher-Yates shuffle of 0..n-1 (stream (seed, 0x5b117)). */
export function shuffledIndices(n: number, seed: number): number[] {
  return permutation(n, createRng(seed, 0x5b117));
}

/**
 * Deterministic split of n prompts: a seeded shuffle, the first `evalCount` held out for evaluation,
 * then `iterations` disjoint consecutive chunks of `perIteration` (each chunk sorted by index).
 */
export function splitPrompts(n: number, opts: SplitOptions): PromptSplit {
  const order = shuffledIndices(n, opts.seed);
  const rest = n - opts.evalCount;
  if (rest < opts.iterations) throw new PromptFileError(`${n} prompts: ${opts.evalCount} held out for evaluation leaves ${Math.max(0, rest)}, fewer than one per iteration (${opts.iterations} iterations)`);
  const per = opts.perIteration ?? Math.floor(rest / opts.iterations);
  if (per * opts.iterations > rest) {
    throw new PromptFileError(`promptsPerIteration = ${per} x ${opts.iterations} iterations needs ${per * opts.iterations} prompts, but only ${rest} remain after ${opts.evalCount} held out`);
  }
  const sorted = (a: number[]): number[] => a.sort((x, y) => x - y);
  return {
    eval: sorted(order.slice(0, opts.evalCount)),
    iterations: Array.from({ length: opts.iterations }, (_, t) => sorted(order.slice(opts.evalCount + t * per, opts.evalCount + (t + 1) * per))),
  };
}

/**
 * The prompt given to the model: the chat template's rendering when there is one (and not raw), with the template
 * variables `kwargs` (e.g. `{ enable_thinking: false }`), else plain text (a conversation's turns joined). Encode it
 * with `encodePrompt` (src/text/chat_template.ts), which adds the tokenizer's special tokens to plain text only.
 */
export function modelPrompt(prompt: string | ChatMessage[], template: ChatTemplate | undefined, raw = false, kwargs: Record<string, unknown> = {}): RenderedPrompt {
  if (typeof prompt !== 'string' && (!template || raw)) return { text: plainPromptText(prompt), templated: false };
  return renderPrompt(prompt, template, { ...kwargs, raw });
}

/** The text given to the model (see `modelPrompt`). */
export function modelPromptText(prompt: string | ChatMessage[], template: ChatTemplate | undefined, raw = false, kwargs: Record<string, unknown> = {}): string {
  return modelPrompt(prompt, template, raw, kwargs).text;
}

/** The text given to the judge: the prompt itself, or a conversation's turns (a single user turn: its content). */
export function plainPromptText(prompt: string | readonly ChatMessage[]): string {
  if (typeof prompt === 'string') return prompt;
  if (prompt.length === 1) return String(prompt[0]!.content);
  return prompt.map((m) => `${m.role}: ${String(m.content)}`).join('\n\n');
}

/** A line of a prompt file with its fields kept (`sppo generate` copies them to its output). */
export interface PromptLine {
  fields: Record<string, unknown>;
  prompt: string | ChatMessage[];
  /** `file:line`, for errors about this prompt. */
  where: string;
}

/**
 * Reads the prompts, keeping each line's fields for the output; a malformed line is an error naming the
 * file and the line. A line's prompt is read as `sppo run` reads it (promptFromRow).
 */
export function readPromptLines(path: string): PromptLine[] {
  if (!existsSync(path)) throw new PromptFileError(`${path} does not exist`);
  const out: PromptLine[] = [];
  forEachJsonl(path, (v, where) => out.push({ fields: v as Record<string, unknown>, prompt: promptFromRow(v, where).prompt, where }));
  if (out.length === 0) throw new Error(`${path}: no prompts`);
  return out;
}
