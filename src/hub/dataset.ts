// A data set split's Parquet files by the data set's Hub name, from the Hugging Face cache (datasets--org--name,
// the layout huggingface_hub and `datasets` share), downloaded into it when online: the files `load_dataset`
// reads for a split, as the Hub lays them out: data/<split>-00000-of-00001.parquet (push_to_hub),
// <config>/<split>-*.parquet, <split>.parquet, or the Hub's Parquet conversion (revision refs/convert/parquet:
// <config>/<split>/0000.parquet).
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cachedSnapshot, describeCached, HubError, hubCacheDir, hubOffline, hubRefText, parseHubName } from './cache.js';
import { downloadSnapshot, type DownloadOptions } from './download.js';

export interface DatasetSplit {
  /** org/name[@revision] */
  dataset: string;
  /** Default 'train'. */
  split?: string;
  /** The data set's configuration (subset): only files under <config>/. */
  config?: string;
}

/** Whether a repository path is a Parquet file of `split` (and of `config` when given). */
export function isSplitFile(path: string, split: string, config?: string): boolean {
  if (!path.endsWith('.parquet')) return false;
  const parts = path.split('/');
  if (config !== undefined && parts[0] !== config) return false;
  const base = parts[parts.length - 1]!;
  const dirs = parts.slice(0, -1);
  return dirs.includes(split) || new RegExp(`^${split.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([-_.][^/]*)?\\.parquet$`).test(base);
}

function listFilesIn(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() || e.isSymbolicLink())
    .map((e) => relative(dir, join((e.parentPath ?? (e as unknown as { path: string }).path), e.name)).split('\\').join('/'));
}

/** The split's Parquet files (sorted, local paths) of a data set named on the Hub. */
export async function resolveDatasetSplit(d: DatasetSplit, opts: DownloadOptions & { offline?: boolean } = {}): Promise<string[]> {
  const ref = parseHubName(d.dataset, 'dataset');
  if (!ref) throw new HubError(`dataset '${d.dataset}': not a Hub name (org/name[@revision])`, d.dataset, '');
  const split = d.split ?? 'train';
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  const what = `dataset ${hubRefText(ref)}${d.config ? ` (config ${d.config})` : ''}, split '${split}'`;
  const pick = (dir: string) => listFilesIn(dir).filter((p) => isSplitFile(p, split, d.config)).sort();
  const cached = cachedSnapshot(ref, cacheDir, () => []);
  if (cached && existsSync(cached.dir)) {
    const files = pick(cached.dir);
    if (files.length) return files.map((f) => join(cached.dir, f));
  }
  // HF_DATASETS_OFFLINE too, as `datasets` reads it.
  if (opts.offline ?? (hubOffline() || hubOffline({ HF_HUB_OFFLINE: process.env.HF_DATASETS_OFFLINE }))) {
    const have = cached ? listFilesIn(cached.dir).filter((p) => p.endsWith('.parquet')) : [];
    throw new HubError(
      cached
        ? `${what}: the cached snapshot ${cached.dir} (commit ${cached.commit}) has no Parquet file of that split (it has: ${have.join(', ') || 'none'}), and HF_HUB_OFFLINE is set`
        : `${what}: revision '${ref.revision}' is not in the Hugging Face cache (${describeCached(ref, cacheDir)}), and HF_HUB_OFFLINE is set`,
      ref.repo, ref.revision, [`${split} Parquet files`],
    );
  }
  const got = await downloadSnapshot(ref, { ...opts, cacheDir, select: (entries) => entries.filter((e) => e.type === 'file' && isSplitFile(e.path, split, d.config)) });
  if (got.files.length === 0) {
    throw new HubError(`${what}: the repository at commit ${got.commit} has no Parquet file of that split (try revision refs/convert/parquet, the Hub's Parquet conversion: ${ref.repo}@refs/convert/parquet)`, ref.repo, ref.revision, [`${split} Parquet files`]);
  }
  return got.files.sort().map((f) => join(got.dir, f));
}
