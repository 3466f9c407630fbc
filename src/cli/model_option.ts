// A model or data option of any command (`--model`, `sppo serve DIR`, `sppo merge BASE`; `--pairs`, `--data`): a local
// folder or file, or a Hub name `org/name[@revision]` resolved in the Hugging Face cache and downloaded into it when online (src/hub).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ADAPTER_CONFIG, AdapterError } from '../models/peft.js';
import { adapterModelDir, isAdapterFolder } from '../models/peft_merge.js';
import { parseHubName } from '../hub/cache.js';
import { resolveModelDir } from '../hub/resolve.js';
import { resolveDatasetSplit } from '../hub/dataset.js';
import { UsageError } from './usage.js';

/** `value` as a local folder: a path that must exist, or a Hub repository's snapshot in the cache (downloaded when online). */
async function localFolder(what: string, value: string): Promise<string> {
  if (parseHubName(value) === null || existsSync(value)) {
    if (!existsSync(value)) throw new UsageError(`${labelled(what)}${value} does not exist (neither a folder nor a Hub name org/name[@revision])`);
    return value;
  }
  try {
    return await resolveModelDir(value);
  } catch (e) {
    if (e instanceof Error) e.message = `${labelled(what)}${e.message}`;
    throw e;
  }
}

/** `what: ` before a message, or nothing for an unnamed value (an adapter's base, named by its own messages). */
function labelled(what: string): string {
  return what ? `${what}: ` : '';
}

/**
 * The local folder for `value`: a missing local path is a usage error naming `what`; a Hub name is resolved. A PEFT
 * adapter folder (or Hub repository) stands for its base with the adapter merged, as transformers' from_pretrained
 * loads it: the merge is kept in sppo's cache (adapterModelDir) and that folder returned.
 */
export async function modelFolder(what: string, value: string): Promise<string> {
  const dir = await localFolder(what, value);
  if (!isAdapterFolder(dir)) return dir;
  try {
    return await adapterModelDir(dir, { resolveBase: (name) => modelFolder('', name), log: (l) => console.error(`${labelled(what)}${l}`) });
  } catch (e) {
    if (e instanceof AdapterError) throw new UsageError(`${labelled(what)}${e.message}`);
    if (e instanceof Error && what) e.message = `${what}: ${e.message}`;
    throw e;
  }
}

/** An adapter option (`sppo merge ADAPTER`): a PEFT adapter folder, or a Hub repository holding one. */
export async function adapterFolder(what: string, value: string): Promise<string> {
  const dir = await localFolder(what, value);
  if (!existsSync(join(dir, ADAPTER_CONFIG))) throw new UsageError(`${what}: ${value} has no ${ADAPTER_CONFIG}: not a PEFT adapter`);
  return dir;
}

/**
 * A data option (`sppo train --pairs`, `sppo sft --data`): a local file (JSONL, a JSON array or Parquet), or a data set
 * on the Hub by name `org/name[@revision]` (as TRL's `--dataset_name` takes it), whose split's Parquet files come from
 * the Hugging Face cache, downloaded into it when online (src/hub/dataset.ts). A path that exists is a file.
 */
export async function dataFiles(what: string, value: string, split = 'train', config?: string): Promise<string[]> {
  if (existsSync(value)) return [value];
  if (parseHubName(value, 'dataset') === null) throw new UsageError(`${what}: ${value} does not exist (neither a file nor a Hub data set name org/name[@revision])`);
  try {
    return await resolveDatasetSplit({ dataset: value, split, ...(config ? { config } : {}) });
  } catch (e) {
    if (e instanceof Error) e.message = `${what}: ${e.message}`;
    throw e;
  }
}
