// Prompts by data set name: a run's `prompts: { dataset: HuggingFaceH4/ultrafeedback_binarized, split:
// train_prefs, field: prompt }` read from the split's Parquet files in the Hugging Face cache (src/hub/dataset.ts;
// downloaded when online), in file order, rows as in a prompts file (src/sppo/prompts.ts), `field` naming the
// column that holds the prompt (a string or a list of chat messages) when it is not prompt/messages/instruction.
import { readFileSync } from 'node:fs';
import { parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
import { resolveDatasetSplit, type DatasetSplit } from '../hub/dataset.js';
import { promptFromRow, PromptFileError, readPromptFile, type PromptRecord } from './prompts.js';

export interface DatasetPrompts extends DatasetSplit {
  /** The column holding the prompt (default: the first of prompt, messages, instruction). */
  field?: string;
}

/** A prompts source: a file (JSONL or Parquet) or a data set split. */
export type PromptsSource = string | DatasetPrompts;

/** How a source is named in messages. */
export function promptsName(p: PromptsSource): string {
  return typeof p === 'string' ? p : `dataset ${p.dataset} split ${p.split ?? 'train'}${p.field ? ` field ${p.field}` : ''}`;
}

const ID_FIELDS = ['id', 'prompt_id', 'source_index'];

/** The prompts of a data set split (every Parquet file of it, in order). */
export async function readDatasetPrompts(d: DatasetPrompts): Promise<PromptRecord[]> {
  const files = await resolveDatasetSplit(d);
  const out: PromptRecord[] = [];
  for (const path of files) {
    const buf = readFileSync(path);
    const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
    let top: string[];
    try {
      top = parquetSchema(parquetMetadata(file)).children.map((c) => c.element.name);
    } catch (e) {
      throw new PromptFileError(`${path} (${promptsName(d)}): not a readable Parquet file (${(e as Error).message})`);
    }
    if (d.field !== undefined && !top.includes(d.field)) throw new PromptFileError(`${promptsName(d)}: ${path} has no column '${d.field}' (columns: ${top.join(', ')})`);
    const wanted = d.field !== undefined ? [d.field] : ['prompt', 'messages', 'instruction'];
    const columns = [...wanted, ...ID_FIELDS].filter((c, i, a) => top.includes(c) && a.indexOf(c) === i);
    if (!columns.some((c) => wanted.includes(c))) throw new PromptFileError(`${promptsName(d)}: ${path} has no "prompt", "messages" or "instruction" column (columns: ${top.join(', ')}); name one with field`);
    const rows = await parquetReadObjects({ file, columns });
    rows.forEach((r, i) => {
      const row = d.field !== undefined ? { ...r, prompt: r[d.field] } : r;
      if (d.field !== undefined && d.field !== 'prompt' && Array.isArray(r[d.field]) === false && typeof r[d.field] !== 'string') {
        throw new PromptFileError(`${path}: row ${i}: column '${d.field}' is not a string or a list of messages`);
      }
      out.push({ index: out.length, ...promptFromRow(row, `${path}: row ${i}`) });
    });
  }
  if (out.length === 0) throw new PromptFileError(`${promptsName(d)}: no prompts`);
  return out;
}

/** Reads prompts from a file or a data set split. */
export async function readPrompts(p: PromptsSource): Promise<PromptRecord[]> {
  return typeof p === 'string' ? readPromptFile(p) : readDatasetPrompts(p);
}
