// `sppo push DIR REPO`: a folder sppo wrote (a run's checkpoint or adapter, a merged or trained model) uploaded to a
// Hub model repository in one commit, with a model card when the folder has none (src/hub/upload.ts).
import { existsSync, statSync } from 'node:fs';
import { pushFolder, REPO_NAME } from '../hub/upload.js';
import { hubToken } from '../hub/cache.js';
import { UsageError } from './usage.js';
import { parseCommand } from './args.js';

export const summary = 'upload a model, checkpoint or adapter folder to a Hub repository (one commit, with a model card)';

const HELP = `usage: sppo push DIR REPO [options]

Uploads the files of DIR (e.g. RUN/iter-3/checkpoint, a folder of sppo merge, sppo train or sppo sft, or a PEFT
adapter) to the main branch of the Hub model repository REPO (namespace/name) in one commit, as \`hf upload REPO DIR\` does; the
repository is created when it does not exist. Weights go through LFS. Without a README.md in DIR, a model card
is written: library_name, base_model (an adapter's base_model_name_or_path, a run's starting model), tags, and for a
run's checkpoint its settings (RUN/run.json) and per-iteration figures (RUN/summary.json). The token is HF_TOKEN (or
the file \`hf auth login\` writes); HF_ENDPOINT names another Hub (a mirror, a private Hub).

options:
  --private        create the repository private
  --message M      the commit title (default "Upload <DIR's name> with sppo")
  --no-card        write no model card
  -h, --help       this help
`;

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand('push', argv, { private: { type: 'boolean' }, message: { type: 'string' }, 'no-card': { type: 'boolean' } }, HELP, { positionals: true });
  if (!parsed) return;
  if (parsed.positionals.length !== 2) throw new UsageError(`expected DIR REPO, got ${parsed.positionals.length} arguments\n\n${HELP}`);
  const [dir, repo] = parsed.positionals as [string, string];
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`DIR: ${dir} is not a folder`);
  if (!REPO_NAME.test(repo)) throw new UsageError(`REPO: '${repo}' is not a repository name of the form namespace/name`);
  const v = parsed.values;
  const t0 = performance.now();
  const r = await pushFolder(dir, repo, { private: v.private ?? false, message: v.message, card: !v['no-card'] });
  console.error(`sppo push: ${r.files.length} files -> ${r.url} (commit ${r.commit ?? 'unknown'}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}

/** `--push-to-hub REPO` / `--hub-private` of sppo train, sft and merge (TRL's push_to_hub / hub_model_id). */
export const PUSH_OPTIONS = { 'push-to-hub': { type: 'string' }, 'hub-private': { type: 'boolean' } } as const;

export const PUSH_HELP = `  --push-to-hub REPO     upload OUT to the Hub repository REPO (namespace/name) when done, in one commit with
                         a model card (as sppo push OUT REPO; the token is HF_TOKEN)
  --hub-private          create that repository private`;

/** Checks --push-to-hub before any work: the name, and a token to write with. */
export function checkPushOption(v: { 'push-to-hub'?: string; 'hub-private'?: boolean }): void {
  const repo = v['push-to-hub'];
  if (repo === undefined) {
    if (v['hub-private']) throw new UsageError('--hub-private goes with --push-to-hub REPO');
    return;
  }
  if (!REPO_NAME.test(repo)) throw new UsageError(`--push-to-hub: '${repo}' is not a repository name of the form namespace/name`);
  if (!hubToken()) throw new UsageError('--push-to-hub needs a token with write access: set HF_TOKEN (or run `hf auth login`)');
}

/** Uploads `dir` when --push-to-hub was given. */
export async function pushIfAsked(command: string, v: { 'push-to-hub'?: string; 'hub-private'?: boolean }, dir: string): Promise<void> {
  const repo = v['push-to-hub'];
  if (repo === undefined) return;
  const r = await pushFolder(dir, repo, { private: v['hub-private'] ?? false });
  console.error(`sppo ${command}: ${dir} pushed to ${r.url} (commit ${r.commit ?? 'unknown'})`);
}
