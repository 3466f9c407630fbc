// `sppo merge BASE ADAPTER OUT`: a LoRA adapter (PEFT's files, e.g. runDir/iter-t/adapter) merged into its
// base model, written as a plain Hugging Face folder.
import { existsSync } from 'node:fs';
import { adapterBaseDir, mergeAdapter } from '../models/peft_merge.js';
import { AdapterError } from '../models/peft.js';
import { UsageError } from './usage.js';
import { adapterFolder, modelFolder } from './model_option.js';
import { dtypeOption, parseCommand } from './args.js';
import { checkPushOption, PUSH_HELP, PUSH_OPTIONS, pushIfAsked } from './push.js';

export const summary = 'merge a LoRA adapter (PEFT files) into its base model, as a Hugging Face folder';

const HELP = `usage: sppo merge [BASE] ADAPTER OUT [options]

BASE is a Hugging Face model folder (or a Hub name org/name[@revision]: docs/hub.md; default: the adapter's
base_model_name_or_path, at its revision), ADAPTER a folder (or Hub repository) with PEFT's adapter_config.json
and adapter_model.safetensors (written by sppo run / sppo train --adapter-out, or by PEFT's save_pretrained), OUT a
new folder: the base's weights with W + scaling * B A for every adapted layer (computed in float32, rounded once
to the weights' dtype), the base's config and tokenizer files. PEFT's variants merge as its merge_and_unload()
merges them: DoRA, rank_pattern / alpha_pattern, trained biases (bias "all" / "lora_only", lora_bias), LoRA on
embeddings, modules_to_save, trainable_token_indices, and a vocabulary resized for training (then the tokenizer
files are the adapter folder's, where the trainer saved them). An sppo run's iter-t/adapter applies to
iter-(t-1)/checkpoint (iter-1's to the starting model): its base_model_name_or_path says which.

Every command that takes a model (--model, sppo serve DIR, a run's model) also takes an adapter folder: it
stands for its base with the adapter merged, as transformers' from_pretrained(ADAPTER) loads it; the merge is
made once and kept in sppo's cache ($SPPO_CACHE, default ~/.cache/sppo/merged).

options:
  --dtype D       float32 | bfloat16 | float16 (default: the base checkpoint's)
${PUSH_HELP}
  -h, --help      this help
`;

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand('merge', argv, { dtype: { type: 'string' }, ...PUSH_OPTIONS }, HELP, { positionals: true });
  if (!parsed) return;
  checkPushOption(parsed.values);
  const n = parsed.positionals.length;
  if (n !== 2 && n !== 3) throw new UsageError(`expected [BASE] ADAPTER OUT, got ${n} argument${n === 1 ? '' : 's'}\n\n${HELP}`);
  const [adapterArg, out] = parsed.positionals.slice(-2) as [string, string];
  const adapter = await adapterFolder('ADAPTER', adapterArg);
  if (existsSync(out)) throw new UsageError(`OUT: ${out} exists; give a new folder`);
  let base: string;
  if (n === 3) base = await modelFolder('BASE', parsed.positionals[0]!);
  else {
    try {
      base = await adapterBaseDir(adapter, (name) => modelFolder('', name));
    } catch (e) {
      if (e instanceof AdapterError) throw new UsageError(`ADAPTER: ${e.message}`);
      throw e;
    }
  }
  const dtype = dtypeOption(parsed.values.dtype);
  const t0 = performance.now();
  const { files, merged } = mergeAdapter(base, adapter, out, dtype ? { dtype } : {});
  console.error(`sppo merge: ${adapter} merged into ${base} -> ${out}: ${merged.join('; ')} (${files.length} files, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  await pushIfAsked('merge', parsed.values, out);
}
