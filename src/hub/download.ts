// Downloading a repository's files into the Hugging Face cache (src/hub/cache.ts), in huggingface_hub's layout:
// the revision's commit and file list come from the Hub's API through Hugging Face's JavaScript client
// (@huggingface/hub: modelInfo / datasetInfo, listFiles); each file's bytes from its resolve URL
// ({endpoint}/{repo}/resolve/{commit}/{file}, as huggingface_hub fetches them), written to blobs/<etag>.incomplete
// and resumed from there with a Range request, checked (the size, and the sha256 of an LFS file or the git sha1
// of any other, which are the blob's name), then renamed to blobs/<etag> and linked from snapshots/<commit>/.
// (@huggingface/hub's own downloadFileToCacheDir neither resumes nor checks the bytes.)
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, lstatSync, unlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import cliProgress from 'cli-progress';
import { datasetInfo, listFiles, modelInfo, type ListFileEntry } from '@huggingface/hub';
import { HubError, hubCacheDir, hubEndpoint, hubRefText, hubToken, repoCacheDir, type HubRef } from './cache.js';

export interface DownloadOptions {
  cacheDir?: string;
  endpoint?: string;
  token?: string;
  /** Which files of the revision to fetch (default: those a model needs, modelFiles). */
  select?: (files: ListFileEntry[]) => ListFileEntry[];
  /** Progress lines (default: stderr; a byte bar when stderr is a terminal). */
  log?: (line: string) => void;
}

export interface Downloaded {
  commit: string;
  dir: string;
  files: string[];
  /** Bytes fetched over the network (0 when every blob was already there). */
  bytes: number;
}

const WEIGHTS_ELSEWHERE = /\.(bin|pt|pth|ckpt|h5|msgpack|onnx|gguf|ot|tflite|mlmodel|npz)$/;

/**
 * The files a model needs from a repository's listing: the top-level configuration and tokenizer files (JSON,
 * Jinja, text, SentencePiece models) and the safetensors weights: the shards model.safetensors.index.json names
 * when there is one (fetched first by the caller: `index`), else model.safetensors; other safetensors files
 * (adapter_model, judge heads) too; never other weight formats, consolidated.safetensors or subfolders.
 */
export function modelFiles(files: ListFileEntry[], index?: { weight_map?: Record<string, string> }): ListFileEntry[] {
  const shards = index ? new Set(Object.values(index.weight_map ?? {})) : null;
  return files.filter((f) => {
    if (f.type !== 'file' || f.path.includes('/') || WEIGHTS_ELSEWHERE.test(f.path)) return false;
    if (f.path.endsWith('.safetensors')) {
      if (f.path.startsWith('consolidated')) return false;
      if (/^model(-\d+-of-\d+)?\.safetensors$/.test(f.path)) return shards ? shards.has(f.path) : f.path === 'model.safetensors';
      return true;
    }
    return /\.(json|jinja|txt|model)$/.test(f.path);
  });
}

function describeApiError(e: unknown, r: HubRef, token: string | undefined, endpoint: string): HubError {
  const status = (e as { statusCode?: number }).statusCode;
  const what = `${r.type} ${hubRefText(r)} at ${endpoint}`;
  const msg = (e as Error).message;
  if (status === 401 || (status === 404 && /repository not found/i.test(msg) && !token)) {
    return new HubError(`${what}: not found, or gated or private and no token was given: set HF_TOKEN (or run \`hf auth login\`) with a token that has access (${msg})`, r.repo, r.revision);
  }
  if (status === 403) return new HubError(`${what}: the token has no access (a gated repository: accept its conditions on the Hub page first) (${msg})`, r.repo, r.revision);
  if (status === 404) return new HubError(`${what}: no such repository or revision '${r.revision}' (${msg})`, r.repo, r.revision);
  return new HubError(`${what}: ${msg}`, r.repo, r.revision);
}

/** sha256 (LFS) or git blob sha1 (other files) of a file: what its blob is named after. */
async function digest(path: string, algo: 'sha256' | 'sha1'): Promise<string> {
  const h = createHash(algo);
  if (algo === 'sha1') h.update(`blob ${statSync(path).size}\0`);
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

function link(snapshotFile: string, blob: string): void {
  mkdirSync(dirname(snapshotFile), { recursive: true });
  try {
    lstatSync(snapshotFile);
    unlinkSync(snapshotFile);
  } catch {
    /* not there */
  }
  symlinkSync(relative(dirname(snapshotFile), blob), snapshotFile);
}

/** Fetches one file's bytes into blobs/<etag>, resuming a partial download. Returns the bytes fetched. */
async function fetchBlob(url: string, blob: string, entry: ListFileEntry, token: string | undefined, onBytes: (n: number) => void, r: HubRef): Promise<number> {
  const size = entry.lfs?.size ?? entry.size;
  const part = `${blob}.incomplete`;
  let have = existsSync(part) ? statSync(part).size : 0;
  if (have > size) {
    rmSync(part);
    have = 0;
  }
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (have > 0 && have < size) headers.range = `bytes=${have}-`;
  let fetched = 0;
  if (have < size || size === 0) {
    let res: Response;
    try {
      res = await fetch(url, { headers, redirect: 'follow' });
    } catch (e) {
      throw new HubError(`${hubRefText(r)}: ${entry.path}: ${url}: ${(e as Error).message}`, r.repo, r.revision, [entry.path]);
    }
    if (res.status === 401 || res.status === 403) throw new HubError(`${hubRefText(r)}: ${entry.path}: HTTP ${res.status} (gated or private: set HF_TOKEN with a token that has access)`, r.repo, r.revision, [entry.path]);
    if (!res.ok || !res.body) throw new HubError(`${hubRefText(r)}: ${entry.path}: HTTP ${res.status} from ${url}`, r.repo, r.revision, [entry.path]);
    const append = res.status === 206;
    if (!append) have = 0; // the server ignored the range: start over
    onBytes(have);
    // Each chunk is written as it arrives, so that a dropped connection leaves every byte received for the resume.
    const fh = await open(part, append ? 'a' : 'w');
    try {
      for await (const c of res.body as AsyncIterable<Uint8Array>) {
        await fh.write(c);
        fetched += c.length;
        onBytes(c.length);
      }
    } catch (e) {
      const kept = have + fetched;
      throw new HubError(`${hubRefText(r)}: ${entry.path}: the download stopped at ${kept} of ${size} bytes (${(e as Error).message}); run again to resume from there`, r.repo, r.revision, [entry.path]);
    } finally {
      await fh.close();
    }
  }
  const got = statSync(part).size;
  if (got !== size) throw new HubError(`${hubRefText(r)}: ${entry.path}: downloaded ${got} bytes, expected ${size} (run again to resume)`, r.repo, r.revision, [entry.path]);
  const expected = entry.lfs?.oid ?? entry.oid;
  const actual = await digest(part, entry.lfs ? 'sha256' : 'sha1');
  if (expected && actual !== expected) {
    rmSync(part);
    throw new HubError(`${hubRefText(r)}: ${entry.path}: ${entry.lfs ? 'sha256' : 'git sha1'} ${actual} does not match the Hub's ${expected} (the partial download was removed)`, r.repo, r.revision, [entry.path]);
  }
  renameSync(part, blob);
  return fetched;
}

/**
 * Downloads a revision's files into the cache (default: those a model needs) and returns its snapshot folder.
 * Blobs already in the cache are linked, not fetched again; refs/<revision> records the commit.
 */
export async function downloadSnapshot(r: HubRef, opts: DownloadOptions = {}): Promise<Downloaded> {
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  const endpoint = opts.endpoint ?? hubEndpoint();
  const token = opts.token ?? hubToken();
  const log = opts.log ?? ((l: string) => console.error(l));
  const creds = { hubUrl: endpoint, ...(token ? { accessToken: token as `hf_${string}` } : {}) };
  let commit: string;
  let entries: ListFileEntry[] = [];
  try {
    const info = r.type === 'model' ? await modelInfo({ ...creds, name: r.repo, revision: r.revision, additionalFields: ['sha'] }) : await datasetInfo({ ...creds, name: r.repo, revision: r.revision, additionalFields: ['sha'] });
    commit = (info as { sha?: string }).sha ?? '';
    if (!/^[0-9a-f]{40}$/.test(commit)) throw new HubError(`${hubRefText(r)}: the Hub at ${endpoint} gave no commit for revision '${r.revision}'`, r.repo, r.revision);
    for await (const e of listFiles({ ...creds, repo: { type: r.type, name: r.repo }, revision: commit, recursive: r.type === 'dataset' })) entries.push(e);
  } catch (e) {
    if (e instanceof HubError) throw e;
    throw describeApiError(e, r, token, endpoint);
  }
  const root = repoCacheDir(r, cacheDir);
  const snapshot = join(root, 'snapshots', commit);
  if (r.revision !== commit) {
    mkdirSync(dirname(join(root, 'refs', r.revision)), { recursive: true });
    writeFileSync(join(root, 'refs', r.revision), commit);
  }
  const prefix = r.type === 'model' ? '' : `${r.type}s/`;
  const urlOf = (path: string) => `${endpoint}/${prefix}${r.repo}/resolve/${commit}/${path.split('/').map(encodeURIComponent).join('/')}`;

  let bytes = 0;
  const get = async (list: ListFileEntry[]): Promise<void> => {
    const todo = list.filter((e) => !existsSync(join(root, 'blobs', e.lfs?.oid ?? e.oid ?? e.path)));
    const total = todo.reduce((a, e) => a + (e.lfs?.size ?? e.size), 0);
    const bar = process.stderr.isTTY && total > 0 ? new cliProgress.SingleBar({ format: `download ${r.repo} [{bar}] {percentage}% | {value}/{total} bytes | {file}`, stream: process.stderr, hideCursor: false }, cliProgress.Presets.shades_classic) : null;
    bar?.start(total, 0, { file: '' });
    let done = 0;
    try {
      for (const e of list) {
        const etag = e.lfs?.oid ?? e.oid;
        if (!etag) throw new HubError(`${hubRefText(r)}: the Hub's listing gives no oid for ${e.path}`, r.repo, r.revision, [e.path]);
        const blob = join(root, 'blobs', etag);
        mkdirSync(dirname(blob), { recursive: true });
        if (!existsSync(blob)) {
          if (!bar) log(`download ${r.repo}@${commit.slice(0, 12)}: ${e.path} (${e.lfs?.size ?? e.size} bytes)`);
          bytes += await fetchBlob(urlOf(e.path), blob, e, token, (n) => bar?.update((done += n), { file: e.path }), r);
        }
        link(join(snapshot, e.path), blob);
      }
    } finally {
      bar?.stop();
    }
  };

  let chosen: ListFileEntry[];
  if (opts.select) chosen = opts.select(entries);
  else {
    const indexEntry = entries.find((e) => e.path === 'model.safetensors.index.json');
    if (indexEntry) await get([indexEntry]);
    const index = indexEntry ? (JSON.parse(readFileSync(join(snapshot, indexEntry.path), 'utf8')) as { weight_map?: Record<string, string> }) : undefined;
    chosen = modelFiles(entries, index);
  }
  await get(chosen);
  return { commit, dir: snapshot, files: chosen.map((e) => e.path), bytes };
}
