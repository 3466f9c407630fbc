// A model folder laid out as huggingface_hub lays out its cache (models--org--name/{refs,snapshots,blobs}, blobs
// named by the git sha1 of a file or the sha256 of an LFS one, snapshot entries as relative symlinks), and a
// loopback Hub serving a folder at its API and resolve URLs with the headers huggingface_hub reads
// (X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size; LFS files redirected to a CDN path, ranges served).
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, relative } from 'node:path';

/** Files the Hub keeps in LFS (its default .gitattributes: weights, data). */
export const isLfs = (path: string): boolean => /\.(safetensors|bin|parquet|pt|h5|msgpack|onnx)$/.test(path);

export interface HubFile {
  path: string;
  bytes: Buffer;
  /** git blob sha1 (oid) of the file; for LFS, of its pointer. */
  oid: string;
  sha256: string;
  lfs: boolean;
}

const gitOid = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

/** The files of a folder (recursively; `only` picks some), with their hashes. */
export function hubFiles(dir: string, only?: (path: string) => boolean): HubFile[] {
  const out: HubFile[] = [];
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const path = relative(dir, join((e.parentPath ?? (e as unknown as { path: string }).path), e.name)).split('\\').join('/');
    if (only && !only(path)) continue;
    const bytes = readFileSync(join(dir, path));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const lfs = isLfs(path);
    const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${bytes.length}\n`);
    out.push({ path, bytes, oid: gitOid(lfs ? pointer : bytes), sha256, lfs });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** A commit hash standing for a set of files (any 40 hex digits do; this one changes with the files). */
export function commitOf(files: HubFile[]): string {
  const h = createHash('sha1');
  for (const f of files) h.update(`${f.path}\0${f.oid}\n`);
  return h.digest('hex');
}

/** Lays `files` out in `cacheDir` as huggingface_hub does; refs maps names (main, a tag) to this commit. */
export function layoutCache(cacheDir: string, repo: string, files: HubFile[], o: { type?: 'model' | 'dataset'; refs?: string[]; commit?: string } = {}): { root: string; commit: string; snapshot: string } {
  const commit = o.commit ?? commitOf(files);
  const root = join(cacheDir, `${o.type ?? 'model'}s--${repo.split('/').join('--')}`);
  const snapshot = join(root, 'snapshots', commit);
  for (const f of files) {
    const blob = join(root, 'blobs', f.lfs ? f.sha256 : f.oid);
    mkdirSync(dirname(blob), { recursive: true });
    writeFileSync(blob, f.bytes);
    const link = join(snapshot, f.path);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(relative(dirname(link), blob), link);
  }
  for (const ref of o.refs ?? ['main']) {
    mkdirSync(dirname(join(root, 'refs', ref)), { recursive: true });
    writeFileSync(join(root, 'refs', ref), commit);
  }
  return { root, commit, snapshot };
}

export interface FakeRepo {
  type: 'model' | 'dataset';
  files: HubFile[];
  commit: string;
  /** Branch and tag names besides the commit itself (default ['main']). */
  refs?: string[];
  /** A token the repository needs (gated/private): without it, 401 as the Hub answers. */
  token?: string;
}

export interface FakeHub {
  url: string;
  server: Server;
  /** Every request: method, path and Range header. */
  requests: { method: string; path: string; range?: string }[];
  /** The next GET of these paths is cut after this many bytes (a dropped connection). */
  cutOnce: Map<string, number>;
  close(): Promise<void>;
}

/** A loopback Hub serving `repos` (name -> repository) at the API and resolve URLs clients use. */
export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const requests: FakeHub['requests'] = [];
  const cutOnce = new Map<string, number>();
  const find = (type: string, rest: string): { repo: FakeRepo; name: string; tail: string } | null => {
    for (const [name, repo] of Object.entries(repos)) if (repo.type === type && rest.startsWith(`${name}/`)) return { repo, name, tail: rest.slice(name.length + 1) };
    return null;
  };
  const revOk = (r: FakeRepo, rev: string) => rev === r.commit || (r.refs ?? ['main']).includes(rev) || rev === 'HEAD';
  const json = (res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(code, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const sendBytes = (req: IncomingMessage, res: ServerResponse, bytes: Buffer, headers: Record<string, string>, path: string) => {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = bytes.length - 1;
    if (m) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(end, Number(m[2]));
    }
    const body = bytes.subarray(start, end + 1);
    res.writeHead(m ? 206 : 200, { ...headers, 'content-length': String(body.length), 'accept-ranges': 'bytes', ...(m ? { 'content-range': `bytes ${start}-${end}/${bytes.length}` } : {}) });
    if (req.method === 'HEAD') return void res.end();
    const cut = cutOnce.get(path);
    if (cut !== undefined) {
      cutOnce.delete(path);
      res.write(body.subarray(0, cut), () => res.destroy());
      return;
    }
    res.end(body);
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(url.pathname);
    requests.push({ method: req.method ?? 'GET', path, ...(req.headers.range ? { range: req.headers.range } : {}) });
    const auth = (r: FakeRepo) => !r.token || req.headers.authorization === `Bearer ${r.token}`;
    const denied = () => json(res, 401, { error: 'Access to this repository is restricted: you must be authenticated.' }, { 'x-error-code': 'GatedRepo' });
    let m = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (m) {
      const f = Object.values(repos).flatMap((r) => r.files).find((x) => x.lfs && x.sha256 === m![1]);
      if (!f) return json(res, 404, { error: 'no such blob' });
      return sendBytes(req, res, f.bytes, { 'content-type': 'application/octet-stream', etag: `"${f.sha256}"` }, path);
    }
    m = /^\/api\/(models|datasets)\/(.+)$/.exec(path);
    if (m) {
      const type = m[1] === 'models' ? 'model' : 'dataset';
      const hit = find(type, m[2]!);
      if (!hit) return json(res, 401, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
      if (!auth(hit.repo)) return denied();
      const t = /^(revision|tree)\/([^/]+)$/.exec(hit.tail);
      if (!t || !revOk(hit.repo, t[2]!)) return json(res, 404, { error: `Invalid rev id: ${t?.[2]}` }, { 'x-error-code': 'RevisionNotFound' });
      if (t[1] === 'revision') return json(res, 200, { _id: hit.name, id: hit.name, sha: hit.repo.commit, private: !!hit.repo.token, gated: hit.repo.token ? 'auto' : false, siblings: hit.repo.files.map((f) => ({ rfilename: f.path })) });
      const recursive = url.searchParams.get('recursive') === 'true';
      const entries = hit.repo.files
        .filter((f) => recursive || !f.path.includes('/'))
        .map((f) => ({ type: 'file', path: f.path, size: f.bytes.length, oid: f.oid, ...(f.lfs ? { lfs: { oid: f.sha256, size: f.bytes.length, pointerSize: 130 } } : {}) }));
      return json(res, 200, entries);
    }
    const type = path.startsWith('/datasets/') ? 'dataset' : 'model';
    const hit = find(type, path.slice(type === 'dataset' ? '/datasets/'.length : 1));
    const r = hit && /^resolve\/([^/]+)\/(.+)$/.exec(hit.tail);
    if (!hit || !r) return json(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
    if (!auth(hit.repo)) return denied();
    if (!revOk(hit.repo, r[1]!)) return json(res, 404, { error: 'Invalid rev id' }, { 'x-error-code': 'RevisionNotFound' });
    const f = hit.repo.files.find((x) => x.path === r[2]);
    if (!f) return json(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': hit.repo.commit });
    const common = { 'x-repo-commit': hit.repo.commit };
    if (f.lfs) {
      // As the Hub does: the metadata on the redirect itself, the bytes from another host (a CDN; here the same
      // loopback server under the name localhost, which huggingface_hub treats as off-Hub and does not follow on HEAD).
      const port = (server.address() as AddressInfo).port;
      res.writeHead(302, { ...common, location: `http://localhost:${port}/cdn/${f.sha256}`, etag: `"${f.oid}"`, 'x-linked-etag': `"${f.sha256}"`, 'x-linked-size': String(f.bytes.length), 'content-length': '0' });
      return void res.end();
    }
    sendBytes(req, res, f.bytes, { ...common, etag: `"${f.oid}"`, 'content-type': 'application/octet-stream' }, path);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server, requests, cutOnce, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
