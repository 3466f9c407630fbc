// Shared by the conformance and model tests: fixture folders in transformers 4 layout, made from the
// transformers 5 ones.
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { transformers4Copy } from './text_helpers.js';

/**
 * A transformers-4-layout copy of a fixture folder: `rope_theta` / `rope_scaling` at the top level of
 * config.json instead of `rope_parameters`, `torch_dtype` instead of `dtype`, no `layer_types` (derived
 * from sliding_window / use_sliding_window as transformers 4 did), the chat template inside
 * tokenizer_config.json; the weights and expected outputs linked.
 */
export function transformers4ModelCopy(src: string): string {
  const dst = transformers4Copy(src);
  const path = join(dst, 'config.json');
  const config = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const rope = config.rope_parameters as Record<string, unknown> | undefined;
  if (rope) {
    delete config.rope_parameters;
    // Gemma 3's per-layer-type parameters: 4.x's rope_theta / rope_scaling are the full layers', rope_local_base_freq the sliding ones'.
    const perType = !('rope_theta' in rope) && typeof rope.full_attention === 'object';
    const { rope_theta, rope_type, ...rest } = (perType ? rope.full_attention : rope) as Record<string, unknown>;
    config.rope_theta = rope_theta;
    config.rope_scaling = rope_type === 'default' ? null : { rope_type, type: rope_type, ...rest };
    if (perType) config.rope_local_base_freq = (rope.sliding_attention as Record<string, unknown>).rope_theta;
    // Phi-3's fields, which 4.x keeps at the top level (Llama 3's original_max_position_embeddings stays in rope_scaling).
    const scaling = config.rope_scaling as Record<string, unknown> | null;
    if (config.model_type === 'phi3' && scaling) {
      for (const k of ['partial_rotary_factor', 'original_max_position_embeddings']) {
        if (k in scaling) {
          config[k] = scaling[k];
          delete scaling[k];
        }
      }
    }
  }
  if ('dtype' in config) {
    config.torch_dtype = config.dtype;
    delete config.dtype;
  }
  delete config.layer_types;
  config.transformers_version = '4.46.0';
  writeFileSync(path, JSON.stringify(config, null, 2));
  for (const f of ['model.safetensors', 'expected.safetensors']) {
    if (existsSync(join(src, f))) symlinkSync(resolve(src, f), join(dst, f));
  }
  return dst;
}
