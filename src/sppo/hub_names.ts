// A run configuration's Hub names (`model`, the judges' `dir`: org/name[@revision]) made local folders before the
// run starts: the cached snapshots of huggingface_hub's cache, downloaded into it when online (src/hub). A PEFT
// adapter as `model` starts the run from its base with the adapter merged (models/peft_merge.ts adapterModelDir).
import { resolveModelDir } from '../hub/resolve.js';
import { adapterModelDir, isAdapterFolder } from '../models/peft_merge.js';
import { resolveDatasetSplit } from '../hub/dataset.js';
import type { JudgeSpec } from '../judge/spec.js';
import type { SppoConfig } from './config.js';

/** pi_0's folder: a Hub name resolved; a PEFT adapter folder merged into its base (kept in sppo's cache). */
async function policyDir(model: string): Promise<string> {
  const dir = await resolveModelDir(model);
  return isAdapterFolder(dir) ? adapterModelDir(dir, { resolveBase: policyDir, log: (l) => console.error(`model: ${l}`) }) : dir;
}

async function judgeDir<J extends JudgeSpec>(j: J): Promise<J> {
  return 'dir' in j ? { ...j, dir: await resolveModelDir(j.dir) } : j;
}

/**
 * The configuration with every Hub name replaced by its snapshot folder (paths are left as they are), before
 * anything runs, so that a missing judge fails now rather than after the first generation. `judges: false`
 * leaves the judges (a run given its judge object).
 */
export async function resolveHubNames(cfg: SppoConfig, o: { judges?: boolean } = {}): Promise<SppoConfig> {
  const judges = o.judges ?? true;
  const out: SppoConfig = { ...cfg, model: await policyDir(cfg.model), judge: judges ? await judgeDir(cfg.judge) : cfg.judge };
  if (cfg.evalJudge && judges) out.evalJudge = await judgeDir(cfg.evalJudge);
  return out;
}

/**
 * Everything a run names on the Hub (model, judges, data set splits) fetched into the cache once, before ranks
 * start (`sppo run --nproc N`), so that they find it there instead of downloading the same files at once.
 */
export async function prefetchHubNames(cfg: SppoConfig): Promise<void> {
  await resolveHubNames(cfg);
  for (const p of [cfg.prompts, cfg.eval.prompts]) if (p !== undefined && typeof p !== 'string') await resolveDatasetSplit(p);
}
