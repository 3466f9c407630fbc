// A model folder laid out as huggingface_hub lays out its cache (models--org--name/{refs,snapshots,blobs}, blobs
// named by the git sha1 of a file or the sha256 of an LFS one, snapshot entries as relative symlinks), and a
// loopback Hub serving a folder at its API and resolve URLs with the headers huggingface_hub reads
// (X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size; LFS files redirected to a CDN path, ranges served), and
// taking uploads as the Hub's write API does (startFakeHub's `writeToken`): repository creation, preupload, the LFS
// batch API with basic transfers, and NDJSON commits, each checked (sizes, sha256 of LFS objects, the token).
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
    out.push(hubFile(path, readFileSync(join(dir, path))));
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
  /** The repositories, with what uploads added (by name). */
  repos: Record<string, FakeRepo>;
  server: Server;
  /** Every request: method, path and Range header. */
  requests: { method: string; path: string; range?: string }[];
  /** The commits uploads made: repository, title, operations ("file PATH", "lfsFile PATH"). */
  commits: { repo: string; summary: string; operations: string[] }[];
  /** The next GET of these paths is cut after this many bytes (a dropped connection). */
  cutOnce: Map<string, number>;
  close(): Promise<void>;
}

/** The .gitattributes the Hub puts in a new repository (its LFS patterns; the first of them). */
export const NEW_REPO_GITATTRIBUTES = '*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n';

/** A HubFile from bytes at a path. */
export function hubFile(path: string, bytes: Buffer): HubFile {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const lfs = isLfs(path);
  const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${bytes.length}\n`);
  return { path, bytes, oid: gitOid(lfs ? pointer : bytes), sha256, lfs };
}

/**
 * A loopback Hub serving `repos` (name -> repository) at the API and resolve URLs clients use; with `writeToken`,
 * it takes uploads authorised by that token (POST /api/repos/create, /api/models/{repo}/preupload/main, the LFS batch
 * API at /{repo}.git/info/lfs/objects/batch with PUT uploads, POST /api/models/{repo}/commit/main), model
 * repositories on their main branch.
 */
export async function startFakeHub(repos: Record<string, FakeRepo>, opts: { writeToken?: string } = {}): Promise<FakeHub> {
  const lfsStore = new Map<string, Buffer>();
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
  const body = (req: IncomingMessage): Promise<Buffer> => new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
  /** The write API; true when it answered the request. */
  const write = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    if (!opts.writeToken || (req.method !== 'POST' && req.method !== 'PUT')) return false;
    const authorised = req.headers.authorization === `Bearer ${opts.writeToken}`;
    let m = /^\/lfs-upload\/([0-9a-f]{64})$/.exec(path);
    if (m && req.method === 'PUT') {
      const bytes = await body(req);
      if (createHash('sha256').update(bytes).digest('hex') !== m[1]) return json(res, 400, { error: 'sha256 mismatch' }), true;
      lfsStore.set(m[1]!, bytes);
      res.writeHead(200, { etag: `"${m[1]}"` });
      return res.end(), true;
    }
    if (!authorised) return json(res, 401, { error: 'Invalid credentials in Authorization header' }), true;
    if (path === '/api/repos/create') {
      const b = JSON.parse((await body(req)).toString('utf8')) as { name: string; organization?: string; type?: string; visibility?: string };
      const name = `${b.organization}/${b.name}`;
      if (repos[name]) return json(res, 409, { error: 'You already created this model repo', url: `${url()}/${name}` }), true;
      const files = [hubFile('.gitattributes', Buffer.from(NEW_REPO_GITATTRIBUTES))];
      repos[name] = { type: 'model', files, commit: commitOf(files), ...(b.visibility === 'private' ? { token: opts.writeToken } : {}) };
      return json(res, 200, { url: `${url()}/${name}`, name, id: name }), true;
    }
    m = /^\/api\/models\/(.+)\/preupload\/main$/.exec(path);
    if (m) {
      if (!repos[m[1]!]) return json(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' }), true;
      const b = JSON.parse((await body(req)).toString('utf8')) as { files: { path: string; size: number; sample: string }[] };
      return json(res, 200, { files: b.files.map((f) => ({ path: f.path, uploadMode: isLfs(f.path) || f.size > 10 * 1024 * 1024 ? 'lfs' : 'regular', shouldIgnore: false })) }), true;
    }
    m = /^\/(.+)\.git\/info\/lfs\/objects\/batch$/.exec(path);
    if (m) {
      if (!repos[m[1]!]) return json(res, 404, { message: 'Repository not found' }), true;
      const b = JSON.parse((await body(req)).toString('utf8')) as { operation: string; transfers?: string[]; objects: { oid: string; size: number }[] };
      if (b.operation !== 'upload' || !(b.transfers ?? ['basic']).includes('basic')) return json(res, 422, { message: 'only basic uploads' }), true;
      return json(res, 200, {
        transfer: 'basic',
        objects: b.objects.map((o) => ({ oid: o.oid, size: o.size, authenticated: true, ...(lfsStore.has(o.oid) ? {} : { actions: { upload: { href: `${url()}/lfs-upload/${o.oid}` } } }) })),
      }, { 'content-type': 'application/vnd.git-lfs+json' }), true;
    }
    m = /^\/api\/models\/(.+)\/commit\/main$/.exec(path);
    if (m) {
      const repo = repos[m[1]!];
      if (!repo) return json(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' }), true;
      const lines = (await body(req)).toString('utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { key: string; value: Record<string, unknown> });
      if (lines[0]?.key !== 'header' || typeof lines[0].value.summary !== 'string') return json(res, 400, { error: 'the first line must be the commit header, with a summary' }), true;
      const next = new Map(repo.files.map((f) => [f.path, f]));
      for (const { key, value } of lines.slice(1)) {
        const p = String(value.path);
        if (key === 'file') next.set(p, hubFile(p, Buffer.from(String(value.content), value.encoding === 'base64' ? 'base64' : 'utf8')));
        else if (key === 'lfsFile') {
          const bytes = lfsStore.get(String(value.oid));
          if (!bytes || bytes.length !== value.size) return json(res, 400, { error: `LFS object ${value.oid} of ${p} was not uploaded` }), true;
          next.set(p, hubFile(p, bytes));
        } else if (key === 'deletedFile') next.delete(p);
        else return json(res, 400, { error: `unknown operation ${key}` }), true;
      }
      // A file that is LFS on the Hub must have come as an LFS object, and the reverse.
      for (const { key, value } of lines.slice(1)) {
        if ((key === 'lfsFile') !== isLfs(String(value.path)) && key !== 'deletedFile') return json(res, 400, { error: `${value.path}: ${key === 'lfsFile' ? 'not an LFS path' : 'an LFS path sent as a regular file'}` }), true;
      }
      repo.files = [...next.values()].sort((a, b) => a.path.localeCompare(b.path));
      repo.commit = commitOf(repo.files);
      commits.push({ repo: m[1]!, summary: lines[0].value.summary as string, operations: lines.slice(1).map((l) => `${l.key} ${l.value.path}`) });
      return json(res, 200, { success: true, commitOid: repo.commit, commitUrl: `${url()}/${m[1]}/commit/${repo.commit}` }), true;
    }
    return false;
  };
  const commits: FakeHub['commits'] = [];
  const url = (): string => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(url.pathname);
    requests.push({ method: req.method ?? 'GET', path, ...(req.headers.range ? { range: req.headers.range } : {}) });
    if (await write(req, res, path)) return;
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
  return { url: `http://127.0.0.1:${port}`, repos, commits, server, requests, cutOnce, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
