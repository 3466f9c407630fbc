// `npm run bench -- pairrm`: PairRM judge throughput, ordered pairs per second (one pair = one sequence
// [CLS] <|source|> x [SEP] [CLS] <|candidate1|> a [SEP] [CLS] <|candidate2|> b [SEP] through the encoder and
// the head; a prompt's K x K matrix costs K(K-1) of them), through PairRMJudge.preferenceMatrices as `sppo run`
// calls it (8 prompts x K = 5 responses a call, tokenization included).
//   fixture   the PairRM-hf-layout test fixture (2-layer, hidden-64 DeBERTa-v2; test/helpers/pairrm_fixture.ts)
//   large     (`npm run bench -- pairrm-large`) a DeBERTa-v3-large-shaped PairRM (24 layers, hidden 1024, 16 heads,
//             256 position buckets: PairRM's 0.4B shape) with random weights, on the same texts
// Options: --device cpu|cuda, --dtype float32|bfloat16, --batch N (sequences per forward pass), --repeats N.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { defaultDevice, getNumThreads, noGrad, type DType } from '../src/torch/index.js';
import { DebertaV2PairRM, parsePairRMConfig } from '../src/models/pairrm.js';
import { PairRMJudge } from '../src/judge/pairrm.js';
import type { PreferenceItem } from '../src/judge/oracle.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { FIXTURE_WORDS, PAIRRM_IDS, writePairRMFixture } from '../test/helpers/pairrm_fixture.js';
import { header, row, stats, timeRepeats, arg, numArg } from './stats.js';

export interface PairRMBenchOptions {
  device?: string;
  dtype?: DType;
  batch?: number;
  repeats?: number;
  large?: boolean;
}

/** 8 prompts of 40 words, 5 responses of 60-120 words each (seeded): pairs of about 230-290 tokens. */
function benchItems(): PreferenceItem[] {
  let s = 12345;
  const rnd = (): number => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const words = (n: number): string => Array.from({ length: n }, () => FIXTURE_WORDS[Math.floor(rnd() * FIXTURE_WORDS.length)]).join(' ');
  return Array.from({ length: 8 }, () => ({ prompt: words(40), responses: Array.from({ length: 5 }, () => words(60 + Math.floor(rnd() * 61))) }));
}

/** DeBERTa-v3-large's shape with PairRM's fields (vocabulary cut to the fixture tokenizer's 512 ids). */
function largeConfig(): Record<string, unknown> {
  return {
    architectures: ['DebertaV2PairRM'], model_type: 'deberta-v2', hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16,
    intermediate_size: 4096, hidden_act: 'gelu', layer_norm_eps: 1e-7, max_position_embeddings: 512, max_relative_positions: -1,
    position_buckets: 256, pos_att_type: ['p2c', 'c2p'], relative_attention: true, share_att_key: true, norm_rel_ebd: 'layer_norm',
    position_biased_input: false, type_vocab_size: 0, vocab_size: 512, pad_token_id: 0, n_tasks: 1,
    source_prefix_id: PAIRRM_IDS.source, cand1_prefix_id: PAIRRM_IDS.cand1, cand2_prefix_id: PAIRRM_IDS.cand2, sep_token_id: 2,
  };
}

export async function run(opts: PairRMBenchOptions = {}): Promise<void> {
  const device = opts.device ?? defaultDevice();
  const dtype = opts.dtype ?? (device.startsWith('cuda') ? 'bfloat16' : 'float32');
  const batch = opts.batch ?? 16;
  const dir = writePairRMFixture(mkdtempSync(join(tmpdir(), 'sppo-bench-pairrm-')));
  try {
    let judge: PairRMJudge;
    let what: string;
    if (opts.large) {
      const model = new DebertaV2PairRM(parsePairRMConfig(largeConfig(), 'DeBERTa-v3-large shape'));
      model.initWeights({ std: 0.02, seed: 1, dtype, device });
      model.eval();
      judge = new PairRMJudge(model, Tokenizer.fromFolder(dir), dir, { batchSize: batch });
      what = `PairRM-sized (DeBERTa-v3-large shape, ${(model.numParameters() / 1e6).toFixed(0)}M parameters without the 128k vocabulary, random weights)`;
    } else {
      judge = PairRMJudge.load(dir, { device, dtype, batchSize: batch });
      what = `PairRM fixture (2-layer hidden-64 DeBERTa-v2, ${(judge.model.numParameters() / 1e3).toFixed(0)}k parameters)`;
    }
    try {
      // The large model on the CPU: one prompt with K = 3 (6 pairs) keeps a call to seconds.
      const items = opts.large && device === 'cpu' ? [{ ...benchItems()[0]!, responses: benchItems()[0]!.responses.slice(0, 3) }] : opts.large ? benchItems().slice(0, 2) : benchItems();
      const pairs = items.reduce((n, it) => n + it.responses.length * (it.responses.length - 1), 0);
      const lengths = items.flatMap((it) => it.responses.slice(1).map((r) => judge.encodePair(it.prompt, it.responses[0]!, r).ids.length));
      const repeats = opts.repeats ?? (opts.large && device === 'cpu' ? 2 : 5);
      const secs = timeRepeats(() => void noGrad(() => judge.logitMatrices(items)), repeats, 1);
      const k = items[0]!.responses.length;
      console.log(`pairrm: ${what}, ${device}, ${dtype}, ${getNumThreads()} threads, batch ${batch}; ${items.length} prompts x K = ${k}: ${pairs} ordered pairs of ${Math.min(...lengths)}-${Math.max(...lengths)} tokens per call`);
      console.log(header());
      console.log(row('pairrm ordered pairs', secs.map((s) => pairs / s), null, 'pairs/s', 'higher', 2));
      console.log(row(`pairrm prompts (K = ${k} matrix)`, secs.map((s) => items.length / s), null, 'prompts/s', 'higher', 2));
      console.log(`(1 warm-up + ${stats(secs).n} timed calls)`);
    } finally {
      judge.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await run({ device: arg('--device'), dtype: arg('--dtype') as DType | undefined, batch: numArg('--batch'), repeats: numArg('--repeats'), large: process.argv.includes('--large') });
}
