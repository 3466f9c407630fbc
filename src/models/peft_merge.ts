// `sppo merge BASE ADAPTER OUT`: a PEFT LoRA adapter merged into its base model, as PEFT's merge_and_unload()
// computes it, for every LoRA variant PEFT saves in adapter_model.safetensors:
//
//   plain LoRA      W' = W + s B A,  s = alpha / r (or alpha / sqrt r with use_rslora)
//                   r and alpha per module from rank_pattern / alpha_pattern (PEFT's get_pattern_key: the first
//                   key k with re.match(rf"(.*\.)?({k})$", module name)), else the config's r and lora_alpha
//   DoRA            W' = (m / ||W + s B A||_row) (W + s B A)      (use_dora; m is lora_magnitude_vector [out],
//                   the norm is over the input dimension of each output row, PEFT's get_weight_norm)
//   LoRA bias       b' = b + s lora_B.bias                        (lora_bias; the base layer must have a bias)
//   embedding LoRA  E' = E + s (B A)^T     A = lora_embedding_A [r, vocab], B = lora_embedding_B [dim, r]
//   trained biases  b' = the saved bias                            (bias "all" / "lora_only")
//   modules_to_save the module replaced by its trained copy (<module>.modules_to_save.<p>, or <module>.<p>)
//   trainable_token_indices  E'[i] = trainable_tokens_delta[j] for the j-th index i (only those rows trained)
//   saved base layers        <module>.base_layer.<p> / <module>.original_module.<p>: the base's own tensor as
//                   training saw it (PEFT saves them with the embeddings when the vocabulary was resized)
//   fused experts   target_parameters on transformers 5's mixture-of-experts weights (PEFT's ParamWrapper):
//                   <layer>.mlp.experts[.base_layer].lora_A [E r, in] and lora_B [out, E r] for gate_up_proj
//                   ([E, 2I, H]: gate rows, then up rows) and down_proj ([E, H, I]); expert e's delta is
//                   s B[:, e::E] A[e r:(e+1) r] (A expert by expert, B's columns with the expert fastest, as PEFT
//                   lays them out), added to sppo's per-expert projections (Mixtral's w1 / w3 / w2, which
//                   transformers 5 names mlp.*, sppo and the checkpoints block_sparse_moe.*)
//
// Tied embeddings (Qwen2, Gemma-2, GPT-2): trainable tokens change both, as PEFT trains them; a modules_to_save
// copy of one of them unties them, and the merged config says tie_word_embeddings false, as PEFT's
// merge_and_unload() sets it (copies of both with equal values, PEFT's ensure_weight_tying, keep them tied). A LoRA
// on one of them unties them too, so that the merged model computes what the PeftModel computed: PEFT's
// merge_and_unload() adds it to the shared matrix instead, which moves the other layer as well (PEFT warns of it). A vocabulary resized for training (TRL's
// setup_chat_format, added tokens) comes out resized: vocab_size is the saved embeddings' rows, and the tokenizer
// files are the adapter folder's when it has them (the trainer saves them there), else the base's.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { loadSafetensors, noGrad, tensor, tidy, type Tensor } from '../torch/index.js';
import { loraScaling } from '../nn/lora.js';
import { Conv1D, Embedding, Linear } from '../nn/layers.js';
import { SparseMoeBlock } from './sparse_moe.js';
import { ADAPTER_CONFIG, AdapterError, adapterKey, adapterWeightsPath, baseMismatch, inList, readAdapterConfig, type AdapterSpec } from './peft.js';
import { loadModel, saveModel, type LoadModelOptions } from './registry.js';
import type { CausalLMBase } from './causal_lm.js';
import { writeDirAtomic } from '../util/files.js';

export interface MergeReport {
  /** The files written into OUT. */
  files: string[];
  /** What was merged, one phrase each ("14 LoRA layers (DoRA)", "vocabulary 512 -> 520", ...). */
  merged: string[];
}

/** PEFT's get_pattern_key: the value of the first pattern whose key matches the end of the module's name. */
function patternValue(pattern: Record<string, number>, module: string): number | undefined {
  for (const [k, v] of Object.entries(pattern)) if (new RegExp(`^(?:.*\\.)?(?:${k})$`).test(module)) return v;
  return undefined;
}

interface ModuleTensors {
  A?: Tensor;
  B?: Tensor;
  bias?: Tensor;
  magnitude?: Tensor;
  embA?: Tensor;
  embB?: Tensor;
  tokens?: Tensor;
}

/**
 * The merged weights of `model` (in place, or for a changed shape or an untied head, in `over`): every variant of
 * the header. Returns what changed in the config (vocab_size, tie_word_embeddings) and what was merged.
 */
function mergeInto(model: CausalLMBase, spec: AdapterSpec, tensors: Map<string, Tensor>, where: string, over: Map<string, Tensor>): { config: Record<string, unknown>; merged: string[] } {
  const params = new Map(model.namedParameters());
  const modules = new Map(model.namedModules());
  const HEAD = 'lm_head.weight';
  const EMB = params.has('model.embed_tokens.weight') ? 'model.embed_tokens.weight' : 'transformer.wte.weight';
  if (!params.has(EMB)) throw new AdapterError(`${where}: the model has no input embedding named model.embed_tokens or transformer.wte`);
  const tiedBase = !params.has(HEAD);
  let aliased = tiedBase; // lm_head.weight is the input embedding's matrix
  const alias = (n: string): string => (aliased && n === HEAD ? EMB : n);
  const has = (n: string): boolean => params.has(alias(n)) || over.has(alias(n));
  /** The tensor a name holds now (not to be disposed or changed in place by the caller). */
  const current = (n: string): Tensor => over.get(alias(n)) ?? params.get(alias(n))!;
  /** Gives `n` the value `t` (float32, taken over): in place where the shape is the parameter's, else in `over`. */
  const write = (n: string, t: Tensor): void => {
    n = alias(n);
    const p = params.get(n);
    if (!over.has(n) && p && p.shape.join() === t.shape.join()) {
      noGrad(() => p.copy_(t));
      t.dispose();
    } else {
      over.get(n)?.dispose();
      over.set(n, t);
    }
  };
  const untie = (): void => {
    if (!aliased) return;
    over.set(HEAD, compute(() => current(EMB)));
    aliased = false;
  };
  /** A float32 result computed from the current tensors; intermediates freed. */
  const compute = (fn: () => Tensor): Tensor => noGrad(() => tidy(() => {
    const t = fn();
    return t.dtype === 'float32' ? t.clone() : t.float();
  }));

  const byModule = new Map<string, ModuleTensors>();
  const copies: [string, Tensor][] = [];
  const bases: [string, Tensor][] = [];
  for (const [key, t] of tensors) {
    const e = adapterKey(key, spec, where);
    const slot = (): ModuleTensors => byModule.get(e.module) ?? (byModule.set(e.module, {}), byModule.get(e.module)!);
    if (e.kind === 'lora') slot()[e.which] = t;
    else if (e.kind === 'loraBias') slot().bias = t;
    else if (e.kind === 'magnitude') slot().magnitude = t;
    else if (e.kind === 'embedding') slot()[e.which === 'A' ? 'embA' : 'embB'] = t;
    else if (e.kind === 'tokens') slot().tokens = t;
    else {
      const target = `${e.module}.${e.param}`;
      if (!has(target)) throw new AdapterError(`${where}: tensor '${key}' is for '${target}', which the model does not have`);
      (e.kind === 'copy' ? copies : bases).push([target, t]);
    }
  }
  const merged: string[] = [];
  const count = (n: number, what: string): void => {
    if (n) merged.push(`${n} ${what}`);
  };
  const shapeError = (target: string, t: Tensor, key: string): never => {
    throw new AdapterError(`${where}: '${key}' has shape [${t.shape.join(', ')}]; the model's '${target}' is [${current(target).shape.join(', ')}] (a resized vocabulary must be saved for the embeddings and the output layer alike)`);
  };
  const rowsOnly = (target: string, t: Tensor): boolean => target === EMB || target === HEAD ? t.shape[1] === current(target).shape[1] : t.shape.join() === current(target).shape.join();

  // 1. The base's own tensors as training saw them (in place: a tied matrix stays tied), trained biases.
  for (const [target, t] of bases) {
    if (!rowsOnly(target, t)) shapeError(target, t, `${target} (base_layer / original_module / bias)`);
    write(target, compute(() => t));
  }
  count(new Set(bases.filter(([n]) => n.endsWith('.bias')).map(([n]) => n)).size, 'trained biases');
  // 2. modules_to_save: the trained copies (a copy of one of two tied matrices unties them).
  for (const [target, t] of copies) {
    if (!rowsOnly(target, t)) shapeError(target, t, `${target} (modules_to_save)`);
    if (target === EMB || target === HEAD) untie();
    write(target, compute(() => t));
  }
  count(new Set(copies.map(([n]) => n)).size, `tensors of modules_to_save (${[...new Set(copies.map(([n]) => n.replace(/\.[^.]+$/, '')))].join(', ')})`);

  // 3. LoRA, DoRA and LoRA biases on linear layers; LoRA on embeddings; trainable tokens.
  let linearLayers = 0, doraLayers = 0, biasLayers = 0, embLayers = 0, tokenRows = 0;
  const rankOf = (module: string, r: number, key: string): number => {
    const want = patternValue(spec.rankPattern, module) ?? spec.options.r;
    if (r !== want) throw new AdapterError(`${where}: '${key}' has rank ${r}; adapter_config.json gives '${module}' rank ${want} (r${Object.keys(spec.rankPattern).length ? ' / rank_pattern' : ''})`);
    return r;
  };
  const scalingOf = (module: string, r: number): number => loraScaling(r, patternValue(spec.alphaPattern, module) ?? spec.options.alpha, spec.options.rslora ?? false);
  const expertLayers = model.config.moe ? mergeFusedExperts(model, byModule, { where, rankOf, scalingOf, current, write, compute }) : 0;
  for (const [module, mt] of byModule) {
    const weight = `${module}.weight`;
    const layer = modules.get(module);
    const isHeadAlias = module === 'lm_head' && aliased;
    if (!layer && !isHeadAlias) throw new AdapterError(`${where}: the model has no module '${module}'`);
    if (mt.A || mt.B) {
      if (!mt.A || !mt.B) throw new AdapterError(`${where}: module '${module}' has lora_${mt.A ? 'A' : 'B'} but no lora_${mt.A ? 'B' : 'A'}`);
      const conv = layer instanceof Conv1D;
      if (!(conv || layer instanceof Linear || isHeadAlias)) throw new AdapterError(`${where}: '${module}.lora_A.weight' is on a ${layer!.constructor.name}; a LoRA with lora_A / lora_B adapts linear layers`);
      // A LoRA on a tied output layer adapts the output only (PeftModel's forward): untied, as PEFT advises.
      if (isHeadAlias) untie();
      const W = current(weight);
      const [out, inF] = conv ? [W.shape[1]!, W.shape[0]!] : [W.shape[0]!, W.shape[1]!];
      const r = rankOf(module, mt.A.shape[0]!, `${module}.lora_A.weight`);
      if (mt.A.shape.join() !== [r, inF].join()) throw new AdapterError(`${where}: '${module}.lora_A.weight' has shape [${mt.A.shape.join(', ')}], expected [${r}, ${inF}] (r, in_features)`);
      if (mt.B.shape.join() !== [out, r].join()) throw new AdapterError(`${where}: '${module}.lora_B.weight' has shape [${mt.B.shape.join(', ')}], expected [${out}, ${r}] (out_features, r)`);
      if (mt.magnitude && mt.magnitude.shape.join() !== String(out)) throw new AdapterError(`${where}: '${module}.lora_magnitude_vector' has shape [${mt.magnitude.shape.join(', ')}], expected [${out}] (out_features)`);
      const s = scalingOf(module, r);
      const next = compute(() => {
        const w = conv ? W.float().transpose(0, 1) : W.float(); // [out, in]
        const sum = w.add(mt.B!.float().matmul(mt.A!.float()).mul(s));
        // DoRA: each output row rescaled to its magnitude (PEFT's weight norm: over the input dimension).
        const res = mt.magnitude ? sum.mul(mt.magnitude.float().reshape(out, 1).div(sum.square().sum([1], true).sqrt())) : sum;
        return conv ? res.transpose(0, 1).contiguous() : res;
      });
      write(weight, next);
      linearLayers++;
      if (mt.magnitude) doraLayers++;
      else if (spec.useDora) throw new AdapterError(`${where}: use_dora is true but module '${module}' has no lora_magnitude_vector`);
      if (mt.bias) {
        const bname = `${module}.bias`;
        if (!has(bname)) throw new AdapterError(`${where}: '${module}.lora_B.bias' (lora_bias) cannot be merged: the base layer '${module}' has no bias (PEFT refuses this merge too)`);
        if (mt.bias.shape.join() !== String(out)) throw new AdapterError(`${where}: '${module}.lora_B.bias' has shape [${mt.bias.shape.join(', ')}], expected [${out}]`);
        write(bname, compute(() => current(bname).float().add(mt.bias!.float().mul(s))));
        biasLayers++;
      }
    } else if (mt.bias || mt.magnitude) {
      throw new AdapterError(`${where}: module '${module}' has ${mt.bias ? 'lora_B.bias' : 'lora_magnitude_vector'} but no lora_A / lora_B`);
    }
    if (mt.embA || mt.embB) {
      if (!mt.embA || !mt.embB) throw new AdapterError(`${where}: module '${module}' has lora_embedding_${mt.embA ? 'A' : 'B'} but no lora_embedding_${mt.embA ? 'B' : 'A'}`);
      if (!(layer instanceof Embedding)) throw new AdapterError(`${where}: '${module}.lora_embedding_A' is on a ${layer?.constructor.name ?? 'tied output layer'}, not an embedding`);
      if (mt.magnitude) throw new AdapterError(`${where}: '${module}': DoRA on an embedding layer is not supported by sppo merge; merge it with PEFT's merge_and_unload`);
      // A LoRA on tied input embeddings adapts the input only (PeftModel's forward); merged into the shared
      // matrix (PEFT's merge_and_unload) it would move the output layer too, by O(1) logits: untied, as PEFT advises.
      if (weight === EMB) untie();
      const E = current(weight);
      const [rows, dim] = E.shape as [number, number];
      const r = rankOf(module, mt.embA.shape[0]!, `${module}.lora_embedding_A`);
      if (mt.embA.shape.join() !== [r, rows].join()) throw new AdapterError(`${where}: '${module}.lora_embedding_A' has shape [${mt.embA.shape.join(', ')}], expected [${r}, ${rows}] (r, num_embeddings)`);
      if (mt.embB.shape.join() !== [dim, r].join()) throw new AdapterError(`${where}: '${module}.lora_embedding_B' has shape [${mt.embB.shape.join(', ')}], expected [${dim}, ${r}] (embedding_dim, r)`);
      const s = scalingOf(module, r);
      write(weight, compute(() => E.float().add(mt.embB!.float().matmul(mt.embA!.float()).transpose(0, 1).mul(s))));
      embLayers++;
    }
    if (mt.tokens) {
      const indices = tokenIndices(spec, module, weight === alias(EMB) || weight === EMB);
      if (!indices) throw new AdapterError(`${where}: '${module}.token_adapter.trainable_tokens_delta' has no indices in adapter_config.json's trainable_token_indices`);
      const E = current(weight);
      const [rows, dim] = E.shape as [number, number];
      if (mt.tokens.shape.join() !== [indices.length, dim].join()) throw new AdapterError(`${where}: '${module}.token_adapter.trainable_tokens_delta' has shape [${mt.tokens.shape.join(', ')}], expected [${indices.length}, ${dim}] (the ${indices.length} trainable_token_indices)`);
      const bad = indices.find((i) => i >= rows);
      if (bad !== undefined) throw new AdapterError(`${join(where, '..', ADAPTER_CONFIG)}: trainable_token_indices: token ${bad} is beyond '${weight}' (${rows} rows): the vocabulary was resized for training, and the adapter does not carry the new rows`);
      const idx = tensor(indices, { dtype: 'int64' });
      write(weight, compute(() => E.float().indexCopy(0, idx, mt.tokens!.float())));
      idx.dispose();
      tokenRows += indices.length;
    }
  }
  count(expertLayers, "layers' fused experts (target_parameters)");
  if (linearLayers) merged.unshift(`${linearLayers} LoRA layers${doraLayers ? ' (DoRA)' : ''}${Object.keys(spec.rankPattern).length + Object.keys(spec.alphaPattern).length ? ' (rank_pattern / alpha_pattern)' : ''}`);
  count(biasLayers, 'LoRA biases');
  count(embLayers, 'embedding LoRAs');
  count(tokenRows, 'trainable token rows');

  // 4. Tied again when the copies agree (ensure_weight_tying); the vocabulary as the embeddings now have it.
  const config: Record<string, unknown> = {};
  if (tiedBase && !aliased) {
    const same = current(HEAD).shape.join() === current(EMB).shape.join() && noGrad(() => tidy(() => current(HEAD).float().equal(current(EMB).float())));
    if (same) {
      over.get(HEAD)!.dispose();
      over.delete(HEAD);
      aliased = true;
    } else {
      const arch = model.config.architecture;
      if (/^(Gemma[23]|GPT2)/.test(arch)) throw new AdapterError(`${where}: the adapter unties the input embeddings and the output layer (modules_to_save holds one of them, or two that differ), which ${arch} ties in sppo: not supported; train with ensure_weight_tying=True, or merge with PEFT`);
      config.tie_word_embeddings = false;
      merged.push('embeddings untied (as PEFT sets tie_word_embeddings false)');
    }
  }
  const rows = current(EMB).shape[0]!;
  if (!aliased && current(HEAD).shape[0] !== rows) {
    throw new AdapterError(`${where}: the input embeddings have ${rows} rows and the output layer ${current(HEAD).shape[0]}: a resized vocabulary must be saved for both (modules_to_save ["embed_tokens", "lm_head"], or save_embedding_layers=True)`);
  }
  if (rows !== model.config.vocabSize) {
    config.vocab_size = rows;
    merged.push(`vocabulary ${model.config.vocabSize} -> ${rows}`);
  }
  return { config, merged };
}

interface MergeTools {
  where: string;
  rankOf: (module: string, r: number, key: string) => number;
  scalingOf: (module: string, r: number) => number;
  current: (n: string) => Tensor;
  write: (n: string, t: Tensor) => void;
  compute: (fn: () => Tensor) => Tensor;
}

/**
 * A mixture of experts' LoRA of transformers 5's layout (see the header): the router's and the fused experts' module
 * names made sppo's (Mixtral: mlp.* is block_sparse_moe.*), and the fused experts' A and B merged expert by expert into
 * the per-expert projections; taken out of `byModule`. Returns how many layers' experts were merged.
 */
function mergeFusedExperts(model: CausalLMBase, byModule: Map<string, ModuleTensors>, t: MergeTools): number {
  const moe = model.config.moe!;
  const modules = new Map(model.namedModules());
  // transformers 5's names (what PEFT saved) as sppo's: Mixtral's mlp.gate / mlp.experts are block_sparse_moe.*.
  const sppoName = (m: string): string => (model.config.modelType === 'mixtral' && !modules.has(m) ? m.replace(/\.mlp\.(?=(gate|experts)(\.|$))/, '.block_sparse_moe.') : m);
  const layers = new Set<string>();
  for (const [module, mt] of [...byModule]) {
    const m = /^(.*\.experts)(?:\.base_layer)*$/.exec(module);
    if (!m || modules.get(sppoName(module)) instanceof Linear) {
      // Not fused experts (the router's LoRA, attention's): under sppo's name for the merge of linear layers.
      if (sppoName(module) !== module) {
        byModule.delete(module);
        byModule.set(sppoName(module), mt);
      }
      continue;
    }
    const prefix = sppoName(m[1]!);
    const block = modules.get(prefix.slice(0, -'.experts'.length));
    if (!(block instanceof SparseMoeBlock)) throw new AdapterError(`${t.where}: '${module}' is a LoRA on fused experts, but the model has no experts under '${prefix}'`);
    if (!mt.A || !mt.B) throw new AdapterError(`${t.where}: module '${module}' has lora_${mt.A ? 'A' : 'B'} but no lora_${mt.A ? 'B' : 'A'}`);
    if (mt.bias || mt.magnitude || mt.embA || mt.tokens) throw new AdapterError(`${t.where}: '${module}': only plain LoRA (lora_A, lora_B) on fused experts is supported`);
    const E = moe.numExperts;
    const [rows, inF] = mt.A.shape as [number, number];
    const [out, cols] = mt.B.shape as [number, number];
    const [H, I] = [model.config.hiddenSize, moe.expertIntermediateSize];
    // Which of the two fused parameters: by the shapes (gate_up_proj: in H, out 2I; down_proj: in I, out H).
    const param = inF === H && out === 2 * I ? 'gate_up_proj' : inF === I && out === H ? 'down_proj' : null;
    if (!param) throw new AdapterError(`${t.where}: '${module}.lora_A' / lora_B have shapes [${rows}, ${inF}] / [${out}, ${cols}], which fit neither of the experts' fused gate_up_proj (in ${H}, out ${2 * I}) nor down_proj (in ${I}, out ${H})`);
    if (rows % E !== 0 || cols !== rows) throw new AdapterError(`${t.where}: '${module}.lora_A' / lora_B have shapes [${rows}, ${inF}] / [${out}, ${cols}]: expected [${E} x r, ${inF}] and [${out}, ${E} x r] for ${E} experts`);
    // rank_pattern / alpha_pattern name the fused parameter as transformers 5 does.
    const pname = `${m[1]}.${param}`;
    const r = t.rankOf(pname, rows / E, `${module}.lora_A.weight`);
    const s = t.scalingOf(pname, r);
    const names = block.experts[0]!.names;
    for (let e = 0; e < E; e++) {
      const delta = (): Tensor => mt.B!.float().view(out, r, E).select(2, e).matmul(mt.A!.float().narrow(0, e * r, r)).mul(s);
      const w = (leaf: string): string => `${prefix}.${e}.${leaf}.weight`;
      if (param === 'down_proj') {
        t.write(w(names.down), t.compute(() => t.current(w(names.down)).float().add(delta())));
      } else {
        const d = t.compute(delta);
        t.write(w(names.gate), t.compute(() => t.current(w(names.gate)).float().add(d.narrow(0, 0, I))));
        t.write(w(names.up), t.compute(() => t.current(w(names.up)).float().add(d.narrow(0, I, I))));
        d.dispose();
      }
    }
    byModule.delete(module);
    layers.add(prefix);
  }
  return layers.size;
}

/** The trainable_token_indices of a module: a list applies to the input embedding; a dict names modules. */
function tokenIndices(spec: AdapterSpec, module: string, isInputEmbedding: boolean): number[] | undefined {
  const t = spec.trainableTokens;
  if (!t) return undefined;
  if (Array.isArray(t)) return isInputEmbedding ? t : undefined;
  for (const [k, v] of Object.entries(t)) if (inList(module, [k])) return v;
  return undefined;
}

/** Whether a folder holds tokenizer files (a trainer saves them beside the adapter when it added tokens). */
function hasTokenizer(dir: string): boolean {
  return ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model'].some((f) => existsSync(join(dir, f)));
}

/**
 * `sppo merge BASE ADAPTER OUT`: the base model with the adapter merged into its weights, written as a plain
 * Hugging Face folder. The weights keep the base's dtype (each merge is computed in float32 and rounded once).
 * Tokenizer files come from the adapter folder when it has them, else from the base; generation_config.json
 * from the base.
 */
export function mergeAdapter(baseDir: string, adapterDir: string, outDir: string, opts: LoadModelOptions = {}): MergeReport {
  const out = resolve(outDir);
  if (existsSync(out)) throw new AdapterError(`${outDir} exists; give a new folder`);
  const spec = readAdapterConfig(adapterDir);
  const mismatch = baseMismatch(spec.raw.base_model_name_or_path, baseDir);
  if (mismatch) process.emitWarning(`${join(adapterDir, ADAPTER_CONFIG)}: ${mismatch}`, { code: 'SPPO_ADAPTER_BASE' });
  const wpath = adapterWeightsPath(adapterDir);
  const model = loadModel(baseDir, { device: 'cpu', ...opts });
  const over = new Map<string, Tensor>();
  const { tensors } = loadSafetensors(wpath, { device: 'cpu' });
  try {
    const { config, merged } = mergeInto(model, spec, tensors, wpath, over);
    const tokenizerFromAdapter = hasTokenizer(resolve(adapterDir));
    if (config.vocab_size !== undefined && !tokenizerFromAdapter) {
      process.emitWarning(`${adapterDir}: the vocabulary grew to ${config.vocab_size} rows, and the adapter folder has no tokenizer files: ${outDir} gets the base's tokenizer, without the tokens added for training; copy the training run's tokenizer files into it`, { code: 'SPPO_ADAPTER_TOKENIZER' });
    }
    if (tokenizerFromAdapter) merged.push('tokenizer files from the adapter folder');
    const extra = new Map<string, Tensor>();
    if (config.tie_word_embeddings === false) {
      extra.set('lm_head.weight', over.get('lm_head.weight')!);
      over.delete('lm_head.weight');
    }
    const files = writeDirAtomic(out, (tmp) => saveModel(model, tmp, {
      tokenizerDir: tokenizerFromAdapter ? adapterDir : baseDir,
      generationConfigDir: baseDir,
      replace: (name) => {
        const t = over.get(name);
        over.delete(name);
        return t;
      },
      extraTensors: extra,
      configPatch: config,
    }));
    return { files, merged };
  } finally {
    for (const t of tensors.values()) t.dispose();
    for (const t of over.values()) t.dispose();
    model.dispose();
  }
}

/** sppo's own cache (merged adapters): $SPPO_CACHE, default $XDG_CACHE_HOME/sppo, else ~/.cache/sppo. */
export function sppoCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.SPPO_CACHE ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sppo');
}

/** Whether `dir` is a PEFT adapter folder rather than a model: adapter_config.json and no config.json. */
export function isAdapterFolder(dir: string): boolean {
  return existsSync(join(dir, ADAPTER_CONFIG)) && !existsSync(join(dir, 'config.json'));
}

export interface AdapterModelOptions {
  /**
   * The local folder of a model name (base_model_name_or_path that is not a local path, with `@revision` when the
   * config gives PEFT's `revision`): a Hub name resolved in the Hugging Face cache, or an error.
   */
  resolveBase: (name: string) => Promise<string>;
  /** Where merged models are kept (default: sppoCacheDir()/merged). */
  cacheDir?: string;
  /** Told what is merged, or reused. */
  log?: (line: string) => void;
}

/** What identifies a folder's files for the cache: its real path, and each file's name, size and modification time. */
function folderStamp(dir: string): string {
  const real = realpathSync(dir);
  const files = readdirSync(real).sort().map((f) => {
    const st = statSync(join(real, f));
    return st.isFile() ? `${f}:${st.size}:${st.mtimeMs}` : '';
  });
  return `${real}\n${files.join('\n')}`;
}

/**
 * The local folder of an adapter's base model, base_model_name_or_path (at PEFT's `revision`): a path from the
 * working directory (as PEFT takes it), else from the adapter's folder, else `resolveBase(name)` (a Hub name).
 * Errors name adapter_config.json and the field, and say how to give the base instead.
 */
export async function adapterBaseDir(adapterDir: string, resolveBase: (name: string) => Promise<string>): Promise<string> {
  const cfgPath = join(resolve(adapterDir), ADAPTER_CONFIG);
  const spec = readAdapterConfig(adapterDir);
  const named = spec.raw.base_model_name_or_path;
  const giveBase = `give the base: sppo merge BASE ${adapterDir} OUT`;
  if (typeof named !== 'string' || named === '') throw new AdapterError(`${cfgPath}: base_model_name_or_path: not set, so the adapter does not say which model it applies to; ${giveBase}`);
  let base = (isAbsolute(named) ? [named] : [resolve(named), resolve(adapterDir, named)]).find((d) => existsSync(d));
  if (base === undefined) {
    const revision = spec.raw.revision;
    const name = typeof revision === 'string' && revision !== '' && !named.includes('@') ? `${named}@${revision}` : named;
    try {
      base = await resolveBase(name);
    } catch (e) {
      if (e instanceof Error) e.message = `${cfgPath}: base_model_name_or_path: ${e.message}; or ${giveBase}`;
      throw e;
    }
  }
  if (realpathSync(base) === realpathSync(adapterDir)) throw new AdapterError(`${cfgPath}: base_model_name_or_path: names the adapter's own folder; ${giveBase}`);
  return base;
}

/**
 * The model an adapter folder stands for, as transformers' from_pretrained(adapter folder) and PEFT's
 * AutoPeftModelForCausalLM load it: its base (base_model_name_or_path, at PEFT's `revision`) with the adapter
 * merged (mergeAdapter: every variant, the logits of the PeftModel). The merged folder is kept in sppo's cache,
 * keyed by both folders' files, so a later command given the same adapter loads it without merging again.
 * The base is adapterBaseDir's (`resolveBase` may merge a base that is itself an adapter).
 */
export async function adapterModelDir(adapterDir: string, opts: AdapterModelOptions): Promise<string> {
  const base = await adapterBaseDir(adapterDir, opts.resolveBase);
  adapterWeightsPath(adapterDir);
  const key = createHash('sha256').update(`sppo merge 1\n${folderStamp(base)}\n${folderStamp(adapterDir)}`).digest('hex').slice(0, 16);
  const out = join(opts.cacheDir ?? join(sppoCacheDir(), 'merged'), `${basename(realpathSync(adapterDir)).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)}-${key}`);
  if (existsSync(join(out, 'config.json'))) {
    opts.log?.(`${adapterDir} is a PEFT adapter on ${base}: using its merge in ${out}`);
    return out;
  }
  const t0 = performance.now();
  try {
    const { merged } = mergeAdapter(base, adapterDir, out);
    opts.log?.(`${adapterDir} is a PEFT adapter on ${base}: merged into ${out} (${merged.join('; ')}; ${((performance.now() - t0) / 1000).toFixed(1)} s, once: later commands reuse it)`);
  } catch (e) {
    // Another process (a rank of the same run) merged it first.
    if (!(e instanceof AdapterError && existsSync(join(out, 'config.json')))) throw e;
  }
  return out;
}
