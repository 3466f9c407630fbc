// The Hugging Face cache, read exactly as huggingface_hub lays it out, so that a model or data set downloaded
// once by any of the Python tools (transformers, datasets, vLLM, huggingface-cli) is there for sppo, and the
// other way round:
//
//   $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME default $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface)
//     models--org--name/                    (datasets--org--name/ for a data set)
//       refs/main                           the commit a branch or tag points to (one line: 40 hex digits)
//       snapshots/<commit>/config.json      -> ../../blobs/<etag>   (relative symlinks, one tree per commit)
//       blobs/<etag>                        the bytes: etag = the git blob sha1, or the sha256 of an LFS file
//       .no_exist/<commit>/<file>           (huggingface_hub: a file known not to exist; sppo leaves it alone)
//
// A name is `org/name` or `org/name@revision` (a branch, a tag or a commit hash; default main).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type RepoType = 'model' | 'dataset';

/** A repository on the Hub at a revision. */
export interface HubRef {
  repo: string;
  revision: string;
  type: RepoType;
}

/** A Hub name that cannot be resolved: names the repository, the revision and what is missing. */
export class HubError extends Error {
  constructor(
    message: string,
    readonly repo: string,
    readonly revision: string,
    readonly missing: string[] = [],
  ) {
    super(message);
    this.name = 'HubError';
  }
}

const COMMIT = /^[0-9a-f]{40}$/;
// huggingface_hub's validate_repo_id: [namespace/]name of word characters, '-' and '.', no '--' or '..'.
const REPO_ID = /^(?:[\w.-]+\/)?[\w.-]{1,96}$/;

/** Whether `s` is a commit hash (40 hex digits). */
export function isCommitHash(s: string): boolean {
  return COMMIT.test(s);
}

/**
 * Parses `org/name[@revision]` as a Hub reference, or returns null when `s` is a local path: one that exists,
 * or that starts like a path (/, ., ~) or is not a valid repository id.
 */
export function parseHubName(s: string, type: RepoType = 'model'): HubRef | null {
  if (existsSync(s) || /^[./~]/.test(s) || s.includes('\\')) return null;
  const at = s.indexOf('@');
  const repo = at < 0 ? s : s.slice(0, at);
  const revision = at < 0 ? 'main' : s.slice(at + 1);
  if (!REPO_ID.test(repo) || repo.includes('--') || repo.includes('..') || repo.endsWith('.git')) return null;
  if (revision === '' || revision.includes('..') || revision.startsWith('/')) return null;
  return { repo, revision, type };
}

/** The text of a reference, as users write it: org/name or org/name@revision. */
export function hubRefText(r: HubRef): string {
  return r.revision === 'main' ? r.repo : `${r.repo}@${r.revision}`;
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'on', 'yes', 'true'].includes(v.trim().toLowerCase());
}

/** $HF_HOME, default $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (huggingface_hub's constants). */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface');
}

/** The hub cache: $HF_HUB_CACHE (or its older name $HUGGINGFACE_HUB_CACHE), default $HF_HOME/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(hfHome(env), 'hub');
}

/** HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set: the cache only, no network. */
export function hubOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return truthy(env.HF_HUB_OFFLINE) || truthy(env.TRANSFORMERS_OFFLINE);
}

/** The Hub's address: $HF_ENDPOINT, default https://huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
}

/** The token: $HF_TOKEN (or $HUGGING_FACE_HUB_TOKEN), else the file `hf auth login` writes ($HF_TOKEN_PATH, default $HF_HOME/token). */
export function hubToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const t = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (t !== undefined) return t.trim() || undefined;
  const file = env.HF_TOKEN_PATH ?? join(hfHome(env), 'token');
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** models--org--name (datasets--org--name): the repository's folder in the cache. */
export function repoFolderName(repo: string, type: RepoType): string {
  return [`${type}s`, ...repo.split('/')].join('--');
}

/** The repository's folder in the cache. */
export function repoCacheDir(r: Pick<HubRef, 'repo' | 'type'>, cacheDir = hubCacheDir()): string {
  return join(cacheDir, repoFolderName(r.repo, r.type));
}

/** The commit a revision stands for in the cache: itself when a commit hash, else refs/<revision>; null when unknown. */
export function cachedCommit(r: HubRef, cacheDir = hubCacheDir()): string | null {
  if (isCommitHash(r.revision)) return r.revision;
  const ref = join(repoCacheDir(r, cacheDir), 'refs', r.revision);
  if (!existsSync(ref)) return null;
  const commit = readFileSync(ref, 'utf8').trim();
  return isCommitHash(commit) ? commit : null;
}

/** Whether `file` is present in the snapshot (its symlink resolves to a blob). */
export function snapshotHas(snapshot: string, file: string): boolean {
  try {
    return statSync(join(snapshot, file)).isFile();
  } catch {
    return false;
  }
}

/**
 * The files of a model folder that must be present: config.json (adapter_config.json for a PEFT adapter) and the
 * weights, model.safetensors or every shard its index names (adapter_model.safetensors for an adapter).
 * Returns those missing from `dir`.
 */
export function missingModelFiles(dir: string): string[] {
  const has = (f: string) => snapshotHas(dir, f);
  if (has('adapter_config.json')) return has('adapter_model.safetensors') ? [] : ['adapter_model.safetensors'];
  const missing: string[] = [];
  if (!has('config.json')) missing.push('config.json');
  if (has('model.safetensors.index.json')) {
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map?: Record<string, string> };
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) if (!has(shard)) missing.push(shard);
  } else if (!has('model.safetensors')) {
    missing.push('model.safetensors');
  }
  return missing;
}

export interface CachedSnapshot {
  commit: string;
  /** snapshots/<commit>: the model folder. */
  dir: string;
  /** Files the folder still needs (missingModelFiles), empty when complete. */
  missing: string[];
}

/** The snapshot a reference stands for in the cache, or null when the revision or its snapshot is not there. */
export function cachedSnapshot(r: HubRef, cacheDir = hubCacheDir(), needs: (dir: string) => string[] = missingModelFiles): CachedSnapshot | null {
  const commit = cachedCommit(r, cacheDir);
  if (!commit) return null;
  const dir = join(repoCacheDir(r, cacheDir), 'snapshots', commit);
  if (!existsSync(dir)) return null;
  return { commit, dir, missing: needs(dir) };
}

/** What the cache holds of a repository, for error messages: its refs and snapshots. */
export function describeCached(r: HubRef, cacheDir = hubCacheDir()): string {
  const root = repoCacheDir(r, cacheDir);
  if (!existsSync(root)) return `${root} does not exist`;
  const list = (d: string) => (existsSync(d) ? readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join((e.parentPath ?? (e as unknown as { path: string }).path), e.name).slice(d.length + 1)) : []);
  const refs = list(join(root, 'refs'));
  const snaps = existsSync(join(root, 'snapshots')) ? readdirSync(join(root, 'snapshots')) : [];
  return `${root} has refs [${refs.join(', ')}] and snapshots [${snaps.map((s) => s.slice(0, 12)).join(', ')}]`;
}
