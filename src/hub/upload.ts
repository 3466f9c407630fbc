// Uploading a folder sppo wrote (a checkpoint, a merged model, a PEFT adapter) to a Hub repository in one commit,
// as `hf upload REPO DIR` and TRL's push_to_hub do, through Hugging Face's JavaScript client (@huggingface/hub:
// createRepo, uploadFiles: the Hub's preupload call, LFS for weights, one commit). The repository is created when it
// does not exist. Without a README.md in the folder, a model card is written (modelCard): the metadata the Hub
// reads (library_name, base_model, tags, pipeline_tag) and, for a checkpoint of an `sppo run`, how it was trained.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { createRepo, modelInfo, uploadFiles } from '@huggingface/hub';
import { HubError, hubEndpoint, hubToken } from './cache.js';
import { isHubName } from './resolve.js';

export interface PushOptions {
  /** Create the repository private (when it does not exist). */
  private?: boolean;
  /** Commit title (default "Upload <folder> with sppo"). */
  message?: string;
  /** Write no model card when the folder has none. */
  card?: boolean;
  /** The run's iterations so far, for the card of a run checkpoint pushed before the run's summary.json exists. */
  cardIterations?: readonly object[];
  endpoint?: string;
  token?: string;
  log?: (line: string) => void;
}

export interface Pushed {
  /** The repository's page. */
  url: string;
  /** The commit the upload made. */
  commit: string | undefined;
  /** The files uploaded (paths in the repository). */
  files: string[];
  /** Whether the repository was created by this push. */
  created: boolean;
}

/** Files never uploaded: sppo's partial writes and locks, editor and OS leftovers, git's own folder. */
const SKIP = /(^|\/)(\.git|\.cache|__pycache__)(\/|$)|\.tmp-\d+|\.incomplete$|(^|\/)run\.lock$|(^|\/)\.DS_Store$/;

/** The files of a folder to upload, as repository paths (sorted). */
export function folderFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile() && !e.isSymbolicLink()) continue;
    const path = relative(dir, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).split('\\').join('/');
    if (SKIP.test(path)) continue;
    if (e.isSymbolicLink() && !statSync(join(dir, path)).isFile()) continue;
    out.push(path);
  }
  return out.sort();
}

const readJsonMaybe = (path: string): Record<string, unknown> | undefined => {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
};

/**
 * A model card (README.md) for a folder: YAML metadata the Hub reads (library_name transformers, or peft for an
 * adapter; base_model where it is known: an adapter's base_model_name_or_path, a run checkpoint's starting model
 * when it is a Hub name; tags; pipeline_tag) and a body saying what the folder is. For `RUN/iter-t/checkpoint` (or
 * the adapter beside it) the body has the run's method and settings (RUN/run.json) and the per-iteration figures
 * of RUN/summary.json.
 */
export function modelCard(dir: string, repo: string, iterations?: readonly object[]): string {
  const folder = resolve(dir);
  const adapter = readJsonMaybe(join(folder, 'adapter_config.json'));
  const config = readJsonMaybe(join(folder, 'config.json'));
  // A run's checkpoint or adapter: RUN/iter-t/{checkpoint,adapter}.
  const iter = /^iter-(\d+)$/.exec(basename(dirname(folder)));
  const runRoot = iter ? dirname(dirname(folder)) : undefined;
  const run = runRoot ? readJsonMaybe(join(runRoot, 'run.json')) : undefined;
  const runCfg = run?.config as Record<string, unknown> | undefined;
  const summary = runRoot ? readJsonMaybe(join(runRoot, 'summary.json')) : undefined;
  let base: string | undefined;
  if (adapter && typeof adapter.base_model_name_or_path === 'string') base = adapter.base_model_name_or_path;
  else if (runCfg && typeof runCfg.model === 'string') base = runCfg.model; // the run's starting model
  // A Hub name (org/name[@revision]), or a snapshot of the Hugging Face cache (models--org--name/snapshots/<commit>).
  const cached = base ? /(?:^|[\\/])models--([^\\/]+?)--([^\\/]+)[\\/]snapshots[\\/]/.exec(base) : null;
  const baseOnHub = cached ? `${cached[1]}/${cached[2]}` : base && isHubName(base.replace(/@.*$/, '')) && !existsSync(base) ? base.replace(/@.*$/, '') : undefined;
  const training = runCfg?.training as Record<string, unknown> | undefined;
  const loss = typeof training?.loss === 'string' ? training.loss : undefined;
  const tags = ['sppo', ...(runCfg ? ['self-play-preference-optimization', ...(loss && loss !== 'sppo' ? [loss] : [])] : []), ...(adapter ? ['lora'] : [])];
  const yaml = [
    '---',
    `library_name: ${adapter ? 'peft' : 'transformers'}`,
    ...(baseOnHub ? [`base_model: ${baseOnHub}`] : []),
    ...(adapter && baseOnHub ? ['tags:', `- base_model:adapter:${baseOnHub}`] : ['tags:']),
    ...tags.map((t) => `- ${t}`),
    'pipeline_tag: text-generation',
    '---',
  ];
  const lines = [...yaml, '', `# ${repo.split('/').pop()}`, ''];
  const what = adapter ? `A LoRA adapter (PEFT's files) of ${base ? `\`${base}\`` : 'its base model'}` : `A causal language model (${typeof config?.architectures === 'object' ? (config.architectures as string[]).join(', ') : 'transformers'} format)`;
  if (runCfg && iter) {
    lines.push(`${what}, iteration ${iter[1]} of a self-play preference optimization run of [sppo](https://arxiv.org/abs/2405.00675) (Wu et al., 2024, "Self-Play Preference Optimization for Language Model Alignment")${base ? `, starting from \`${base}\`` : ''}.`, '');
    const g = runCfg.generation as Record<string, unknown> | undefined;
    const settings: [string, unknown][] = [
      ['iterations', runCfg.iterations],
      ['loss', loss],
      ['beta', training?.beta],
      ['learning rate', training?.lr],
      ['epochs', training?.epochs],
      ['samples per prompt', g?.k],
      ['temperature', g?.temperature],
      ['top-p', g?.topP],
      ['judge', typeof runCfg.judge === 'object' && runCfg.judge ? (runCfg.judge as Record<string, unknown>).kind ?? JSON.stringify(runCfg.judge) : runCfg.judge],
      ['prompts', runCfg.prompts],
    ];
    lines.push('| setting | value |', '| --- | --- |', ...settings.filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `| ${k} | ${typeof v === 'object' ? JSON.stringify(v) : String(v)} |`), '');
    // summary.json: each iteration's prompts, pairs and (with eval on) win rate against the reference.
    const its = (((iterations ?? summary?.iterations) as Record<string, unknown>[] | undefined) ?? []).map((s) => ({ iteration: s.iteration, prompts: s.prompts, pairs: s.pairs, ...(s.eval as Record<string, unknown> | undefined) }));
    const columns: [string, string][] = [['prompts', 'prompts'], ['pairs', 'pairs'], ['winRate', 'win rate'], ['standardError', '± SE'], ['lcWinRate', 'LC win rate'], ['avgLength', 'mean length']];
    const shown = columns.filter(([k]) => its.some((s) => typeof (s as Record<string, unknown>)[k] === 'number'));
    if (its.length && shown.length) {
      lines.push("Per iteration (the run's summary.json; win rates against the run's eval reference):", '', `| iteration | ${shown.map(([, h]) => h).join(' | ')} |`, `| --- | ${shown.map(() => '---').join(' | ')} |`,
        ...its.map((s, i) => `| ${s.iteration ?? i + 1} | ${shown.map(([k]) => { const v = (s as Record<string, unknown>)[k]; return typeof v === 'number' ? String(Number(v.toPrecision(4))) : ''; }).join(' | ')} |`), '');
    }
  } else {
    lines.push(`${what}, written by [sppo](https://arxiv.org/abs/2405.00675).`, '');
  }
  lines.push('It loads with transformers' + (adapter ? "' PEFT integration (`PeftModel.from_pretrained`)" : " (`AutoModelForCausalLM.from_pretrained`)") + ', vLLM and sppo (`--model ' + repo + '`).', '');
  return lines.join('\n');
}

/** A repository name as the Hub takes it for uploads: namespace/name. */
export const REPO_NAME = /^[\w.-]+\/[\w.-]+$/;

/** Uploads `dir` to the model repository `repo` (org/name) in one commit; creates the repository when absent. */
export async function pushFolder(dir: string, repo: string, opts: PushOptions = {}): Promise<Pushed> {
  const folder = resolve(dir);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new HubError(`${dir}: not a folder`, repo, 'main');
  if (!REPO_NAME.test(repo)) throw new HubError(`'${repo}' is not a repository name of the form namespace/name`, repo, 'main');
  const endpoint = opts.endpoint ?? hubEndpoint();
  const token = opts.token ?? hubToken();
  const revision = 'main';
  const log = opts.log ?? ((l: string) => console.error(l));
  if (!token) throw new HubError(`pushing to ${repo} at ${endpoint} needs a token with write access: set HF_TOKEN (or run \`hf auth login\`)`, repo, revision);
  const creds = { hubUrl: endpoint, accessToken: token as `hf_${string}` };
  const paths = folderFiles(folder);
  if (!paths.length) throw new HubError(`${dir}: no files to upload`, repo, revision);
  const what = (e: unknown): string => (e as Error).message;
  let created = false;
  try {
    await modelInfo({ ...creds, name: repo });
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode !== 404 && (e as { statusCode?: number }).statusCode !== 401) throw new HubError(`${repo} at ${endpoint}: ${what(e)}`, repo, revision);
    try {
      await createRepo({ ...creds, repo: { type: 'model', name: repo }, ...(opts.private ? { visibility: 'private' as const } : {}) });
      created = true;
      log(`sppo push: created ${endpoint}/${repo}${opts.private ? ' (private)' : ''}`);
    } catch (e2) {
      throw new HubError(`${repo} at ${endpoint}: cannot create the repository: ${what(e2)}`, repo, revision);
    }
  }
  const files: { path: string; content: Blob }[] = paths.map((p) => ({ path: p, content: new Blob([readFileSync(join(folder, p))]) }));
  const uploaded = [...paths];
  if (opts.card !== false && !paths.includes('README.md')) {
    files.push({ path: 'README.md', content: new Blob([modelCard(folder, repo, opts.cardIterations)]) });
    uploaded.push('README.md');
  }
  const bytes = paths.reduce((a, p) => a + statSync(join(folder, p)).size, 0);
  log(`sppo push: ${uploaded.length} files (${(bytes / 1e6).toFixed(1)} MB) from ${dir} to ${repo}@${revision}`);
  let out;
  try {
    out = await uploadFiles({ ...creds, repo: { type: 'model', name: repo }, files, branch: revision, commitTitle: opts.message ?? `Upload ${basename(folder)} with sppo` });
  } catch (e) {
    throw new HubError(`${repo}@${revision} at ${endpoint}: the upload failed: ${what(e)}`, repo, revision);
  }
  return { url: `${endpoint}/${repo}`, commit: out?.commit?.oid, files: uploaded.sort(), created };
}
