// The push stage of `sppo run` (config `push: { repo, private }`): iteration t's checkpoint uploaded to the Hub once
// written, with a model card holding the run's settings and the figures of the iterations so far
// (src/hub/upload.ts). Its artifact, iter-t/push.json (repository, commit, files), makes a resumed run skip it; only
// rank 0 uploads.
import { existsSync } from 'node:fs';
import { pushFolder } from '../../hub/upload.js';
import { readJson, writeJsonAtomic } from '../run_dir.js';
import { isLeader, timing, type StageContext } from './context.js';

export interface PushInput {
  t: number;
  checkpoint: string;
  /** The iterations so far (the card's table). */
  iterations: readonly object[];
}

export interface PushRecord {
  repo: string;
  url: string;
  commit: string | undefined;
  files: string[];
}

/** The repository of iteration t: `{t}` in the configured name replaced by t. */
export function pushRepo(pattern: string, t: number): string {
  return pattern.replaceAll('{t}', String(t));
}

export async function pushIteration(ctx: StageContext, input: PushInput): Promise<PushRecord | undefined> {
  const { cfg, rd } = ctx;
  const { t } = input;
  if (!cfg.push || !isLeader(ctx)) return undefined;
  const path = rd.path(t, 'push.json');
  if (existsSync(path)) return readJson<PushRecord>(path);
  const t0 = performance.now();
  const repo = pushRepo(cfg.push.repo, t);
  const r = await pushFolder(input.checkpoint, repo, { private: cfg.push.private, message: `Iteration ${t} of an sppo run`, cardIterations: input.iterations, log: ctx.log });
  const record: PushRecord = { repo, url: r.url, commit: r.commit, files: r.files };
  writeJsonAtomic(path, record);
  ctx.log(`sppo run: iteration ${t}: checkpoint pushed to ${r.url} (commit ${r.commit ?? 'unknown'})`);
  timing(ctx, t, 'push', t0);
  return record;
}
