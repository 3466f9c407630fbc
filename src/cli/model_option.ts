// A model option of any command (`--model`, `sppo serve DIR`, `sppo merge BASE`): a local folder, or a Hub name
// `org/name[@revision]` resolved in the Hugging Face cache and downloaded into it when online (src/hub).
import { existsSync } from 'node:fs';
import { parseHubName } from '../hub/cache.js';
import { resolveModelDir } from '../hub/resolve.js';
import { UsageError } from './usage.js';

/** The local folder for `value`: a missing local path is a usage error naming `what`; a Hub name is resolved. */
export async function modelFolder(what: string, value: string): Promise<string> {
  if (parseHubName(value) === null) {
    if (!existsSync(value)) throw new UsageError(`${what}: ${value} does not exist (neither a folder nor a Hub name org/name[@revision])`);
    return value;
  }
  try {
    return await resolveModelDir(value);
  } catch (e) {
    if (e instanceof Error) e.message = `${what}: ${e.message}`;
    throw e;
  }
}
