// What sppo writes so that transformers 4 (4.57, the last 4.x, still widely run) loads it as transformers 5 does.
// sppo reads both layouts (config.ts); a folder it writes keeps the layout it was loaded with, and where that is
// transformers 5's, two things would otherwise break in 4.x:
//   - config.json: 4.x does not know `rope_parameters` and silently uses rope_theta 10000 (and no scaling) instead:
//     wrong logits, no warning. The top-level `rope_theta` (and `rope_scaling`, for a rope type other than
//     default) are written beside it, which 4.x reads and 5.x leaves to `rope_parameters` (Gemma 3's per-layer-type
//     parameters: the full layers' there, and the sliding layers' theta as rope_local_base_freq; Phi-3's
//     partial_rotary_factor and original_max_position_embeddings at the top level too). And Qwen3-MoE's expert count:
//     transformers 5 writes it as `num_local_experts`, which 4.x's Qwen3MoeConfig does not read (it would make the
//     default 128 experts and refuse the weights); `num_experts` is written beside it, as the Hub's configs have it.
//   - tokenizer_config.json: 4.x has no `TokenizersBackend` class (an error), and reads `extra_special_tokens` as a
//     dict of named tokens, where 5.x writes a list (a misleading ImportError). The class is written as
//     `PreTrainedTokenizerFast` (which 5.x loads the same way) and the list as 4.x's `additional_special_tokens`.
// Also the slow tokenizers' files (vocab.json, merges.txt, tokenizer.model) are copied when the source has them.
// Checked by scripts/peft-interop.mjs in CI (where the wheelhouse has transformers 4.57).
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/files.js';

type Json = Record<string, unknown>;

/** The tokenizer files a written model folder gets from its source folder, when the source has them. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'special_tokens_map.json', 'added_tokens.json', 'tokenizer.model', 'vocab.json', 'merges.txt'];

/** config.json's fields also in the form transformers 4 reads: the rope settings at the top level, ... (see the module comment). */
export function portableConfig(raw: Json): Json {
  if (raw.model_type === 'qwen3_moe' && raw.num_experts === undefined && raw.num_local_experts !== undefined) raw = { ...raw, num_experts: raw.num_local_experts };
  let p = raw.rope_parameters as Json | null | undefined;
  if (!p || typeof p !== 'object' || Array.isArray(p)) return raw;
  const out: Json = { ...raw };
  // Per-layer-type parameters (Gemma 3's {full_attention, sliding_attention}): 4.x's rope_theta and rope_scaling are the
  // full layers', rope_local_base_freq the sliding layers' theta.
  if (!('rope_theta' in p || 'rope_type' in p) && typeof p.full_attention === 'object' && p.full_attention) {
    const sliding = p.sliding_attention as Json | undefined;
    if (out.rope_local_base_freq === undefined && sliding && sliding.rope_theta !== undefined) out.rope_local_base_freq = sliding.rope_theta;
    p = p.full_attention as Json;
  }
  if (!('rope_theta' in p || 'rope_type' in p)) return raw;
  // Phi-3's: 4.x reads these at the top level.
  if (raw.model_type === 'phi3') for (const k of ['partial_rotary_factor', 'original_max_position_embeddings']) if (out[k] === undefined && p[k] !== undefined) out[k] = p[k];
  if (out.rope_theta === undefined && p.rope_theta !== undefined) out.rope_theta = p.rope_theta;
  const type = (p.rope_type ?? p.type ?? 'default') as string;
  if (out.rope_scaling === undefined && type !== 'default') {
    // 4.x's Phi-3 takes exactly {type, short_factor, long_factor} (its other fields are top-level, above).
    out.rope_scaling = raw.model_type === 'phi3' && type === 'longrope'
      ? { type: 'longrope', short_factor: p.short_factor, long_factor: p.long_factor }
      : Object.fromEntries(Object.entries(p).filter(([k]) => k !== 'rope_theta'));
  }
  return out;
}

/** tokenizer_config.json as both transformers generations read it (see the module comment). */
export function portableTokenizerConfig(cfg: Json): Json {
  const out: Json = { ...cfg };
  if (out.tokenizer_class === 'TokenizersBackend') {
    out.tokenizer_class = 'PreTrainedTokenizerFast';
    if (out.backend === 'tokenizers') delete out.backend;
  }
  if (Array.isArray(out.extra_special_tokens)) {
    const extra = out.extra_special_tokens as unknown[];
    delete out.extra_special_tokens;
    const had = Array.isArray(out.additional_special_tokens) ? (out.additional_special_tokens as unknown[]) : [];
    out.additional_special_tokens = [...had, ...extra.filter((t) => !had.some((h) => JSON.stringify(h) === JSON.stringify(t)))];
  }
  return out;
}

/** Copies the tokenizer files of `src` into `out` (tokenizer_config.json made portable); returns the names copied. */
export function copyTokenizerFiles(src: string, out: string): string[] {
  const copied: string[] = [];
  for (const name of TOKENIZER_FILES) {
    const from = join(src, name);
    if (!existsSync(from)) continue;
    if (name === 'tokenizer_config.json') {
      let cfg: Json;
      try {
        cfg = JSON.parse(readFileSync(from, 'utf8')) as Json;
      } catch {
        copyFileSync(from, join(out, name)); // not JSON: copied as it is (its reader names the error)
        copied.push(name);
        continue;
      }
      writeFileAtomic(join(out, name), JSON.stringify(portableTokenizerConfig(cfg), null, 2) + '\n');
    } else copyFileSync(from, join(out, name));
    copied.push(name);
  }
  return copied;
}
