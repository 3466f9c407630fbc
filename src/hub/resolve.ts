// A model given by folder or by Hub name, made a local folder: what every command and run config calls where it
// takes a model (`--model`, judges' `dir`, `pairrm:`, `sppo serve`, `merge`, `eval`). A path that exists is
// used as it is; `org/name[@revision]` is looked up in the Hugging Face cache (src/hub/cache.ts) and, when the
// snapshot is absent or incomplete and HF_HUB_OFFLINE is not set, downloaded into it (src/hub/download.ts).
import { existsSync } from 'node:fs';
import { cachedSnapshot, describeCached, HubError, hubCacheDir, hubOffline, hubRefText, missingModelFiles, parseHubName, type HubRef } from './cache.js';
import { downloadSnapshot, type DownloadOptions } from './download.js';

export interface ResolveOptions extends DownloadOptions {
  /** Cache only (default: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE). */
  offline?: boolean;
}

/** Whether `s` names a Hub repository rather than a local path (see parseHubName). */
export function isHubName(s: string): boolean {
  return parseHubName(s) !== null;
}

/**
 * The local folder of a model: `nameOrDir` itself when it is a path, else the cached snapshot of the Hub
 * repository it names (downloaded first when online and needed). Errors name the repository, the revision and
 * the missing files.
 */
export async function resolveModelDir(nameOrDir: string, opts: ResolveOptions = {}): Promise<string> {
  const ref = parseHubName(nameOrDir, 'model');
  if (!ref) return nameOrDir;
  return resolveRef(ref, opts);
}

async function resolveRef(ref: HubRef, opts: ResolveOptions): Promise<string> {
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  const cached = cachedSnapshot(ref, cacheDir);
  if (cached && cached.missing.length === 0) return cached.dir;
  const offline = opts.offline ?? hubOffline();
  const name = hubRefText(ref);
  if (offline) {
    if (cached) throw new HubError(`model ${name}: the cached snapshot ${cached.dir} (revision ${ref.revision}, commit ${cached.commit}) lacks ${cached.missing.join(', ')}, and HF_HUB_OFFLINE is set`, ref.repo, ref.revision, cached.missing);
    throw new HubError(`model ${name}: revision '${ref.revision}' is not in the Hugging Face cache (${describeCached(ref, cacheDir)}), and HF_HUB_OFFLINE is set: download it first (unset HF_HUB_OFFLINE, or \`hf download ${ref.repo}\`)`, ref.repo, ref.revision, ['snapshot']);
  }
  let got;
  try {
    got = await downloadSnapshot(ref, { ...opts, cacheDir });
  } catch (e) {
    if (e instanceof HubError && !cached) e.message += ` (not in the Hugging Face cache either: ${describeCached(ref, cacheDir)})`;
    throw e;
  }
  const missing = missingModelFiles(got.dir);
  if (missing.length) throw new HubError(`model ${name}: the repository at revision ${ref.revision} (commit ${got.commit}) has no ${missing.join(', ')}: not a model sppo can load`, ref.repo, ref.revision, missing);
  return got.dir;
}

/** resolveModelDir, for a path that must exist: a missing local path is an error naming `what`. */
export async function requireModelDir(what: string, nameOrDir: string, opts: ResolveOptions = {}): Promise<string> {
  const ref = parseHubName(nameOrDir, 'model');
  if (!ref) {
    if (!existsSync(nameOrDir)) throw new HubError(`${what}: ${nameOrDir} does not exist (neither a folder nor a Hub name org/name[@revision])`, nameOrDir, '');
    return nameOrDir;
  }
  try {
    return await resolveRef(ref, opts);
  } catch (e) {
    if (e instanceof HubError) {
      e.message = `${what}: ${e.message}`;
    }
    throw e;
  }
}
