// A model or data option of any command (`--model`, `sppo serve DIR`, `sppo merge BASE`; `--pairs`, `--data`): a local
// folder or file, or a Hub name `org/name[@revision]` resolved in the Hugging Face cache and downloaded into it when online (src/hub).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHubName } from '../hub/cache.js';
import { resolveModelDir } from '../hub/resolve.js';
import { resolveDatasetSplit } from '../hub/dataset.js';
import { UsageError } from './usage.js';

/** The local folder for `value`: a missing local path is a usage error naming `what`; a Hub name is resolved. */
export async function modelFolder(what: string, value: string): Promise<string> {
  if (parseHubName(value) === null || existsSync(value)) {
    if (!existsSync(value)) throw new UsageError(`${what}: ${value} does not exist (neither a folder nor a Hub name org/name[@revision])`);
    if (existsSync(join(value, 'adapter_config.json')) && !existsSync(join(value, 'config.json'))) {
      let base = 'BASE';
      try {
        base = (JSON.parse(readFileSync(join(value, 'adapter_config.json'), 'utf8')) as { base_model_name_or_path?: string }).base_model_name_or_path || base;
      } catch {
        // named as BASE
      }
      throw new UsageError(`${what}: ${value} is a PEFT adapter (adapter_config.json), not a model: merge it into its base first, e.g. sppo merge ${base} ${value} MERGED`);
    }
    return value;
  }
  try {
    return await resolveModelDir(value);
  } catch (e) {
    if (e instanceof Error) e.message = `${what}: ${e.message}`;
    throw e;
  }
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
