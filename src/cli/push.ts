// `sppo push DIR REPO`: a folder sppo wrote (a run's checkpoint or adapter, a merged or trained model) uploaded to a
// Hub model repository in one commit, with a model card when the folder has none (src/hub/upload.ts).
import { existsSync, statSync } from 'node:fs';
import { pushFolder } from '../hub/upload.js';
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
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new UsageError(`REPO: '${repo}' is not a repository name of the form namespace/name`);
  const v = parsed.values;
  const t0 = performance.now();
  const r = await pushFolder(dir, repo, { private: v.private ?? false, message: v.message, card: !v['no-card'] });
  console.error(`sppo push: ${r.files.length} files -> ${r.url} (commit ${r.commit ?? 'unknown'}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
