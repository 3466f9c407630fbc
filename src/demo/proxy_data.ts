// Training data of the proxy judge: the starter's own samples on prompts of their own stream (never the
// held-out prompts, nor those of the SPPO iterations), K per prompt, with the gold judge's verdict on every
// pair of distinct responses. Split by prompt into training and held-out comparisons.
import { loadModel } from '../models/registry.js';
import { generate } from '../generate/generate.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate, promptIds } from '../text/chat_template.js';
import { goldPreference } from './gold_judge.js';
import { heldOutPrompts, parseResponse, render, STYLES, trainingPrompts } from './tasks.js';
import { HELD_OUT_COUNT, HELD_OUT_SEED, STREAM_PROXY } from './constants.js';

export interface JudgeDataOptions {
  model: string;
  prompts: number;
  k: number;
  seed: number;
  /** Fraction of the prompts whose comparisons are held out (default 0.15). */
  evalFraction?: number;
  temperature?: number;
  maxNewTokens?: number;
  onProgress?: (done: number, total: number) => void;
  /**
   * Also compare each styled sample with the same answer in each other style (judged by the gold judge like
   * any pair): the comparisons where only style and length differ, which the starter's own samples hold few of.
   */
  stylePairs?: boolean;
}

export interface ComparisonRow {
  prompt: string;
  a: string;
  b: string;
  p: number;
}

export async function proxyJudgeData(o: JudgeDataOptions): Promise<{ train: ComparisonRow[]; heldOut: ComparisonRow[] }> {
  const held = heldOutPrompts(HELD_OUT_COUNT, HELD_OUT_SEED);
  const tasks = trainingPrompts(o.prompts, o.seed, held, STREAM_PROXY);
  const tok = Tokenizer.fromFolder(o.model);
  const chat = ChatTemplate.fromFolder(o.model, { specialTokens: tok.specialTokens });
  const model = loadModel(o.model, { dtype: 'float32', device: 'cpu' });
  const rows: ComparisonRow[][] = [];
  try {
    const bs = 32;
    for (let s = 0; s < tasks.length; s += bs) {
      const part = tasks.slice(s, s + bs);
      const ids = part.map((t) => promptIds(tok, t.prompt, chat));
      const gens = generate(model, ids, { n: o.k, temperature: o.temperature ?? 1, maxNewTokens: o.maxNewTokens ?? 24, seed: o.seed * 1000003 + s, tokenizer: tok });
      part.forEach((t, i) => {
        const texts = [...new Set(gens.slice(i * o.k, (i + 1) * o.k).map((g) => g.text))];
        const r: ComparisonRow[] = [];
        for (let x = 0; x < texts.length; x++) for (let y = x + 1; y < texts.length; y++) r.push({ prompt: t.prompt, a: texts[x]!, b: texts[y]!, p: goldPreference(t.prompt, texts[x]!, texts[y]!) });
        if (o.stylePairs) {
          const seen = new Set(r.map((c) => JSON.stringify([c.a, c.b].sort())));
          for (const a of texts) {
            const pa = parseResponse(a);
            if (pa.style === 'other') continue;
            for (const s of STYLES) {
              if (s === pa.style) continue;
              const b = render(s, pa.payload!);
              const key = JSON.stringify([a, b].sort());
              if (seen.has(key)) continue;
              seen.add(key);
              r.push({ prompt: t.prompt, a, b, p: goldPreference(t.prompt, a, b) });
            }
          }
        }
        rows.push(r);
      });
      o.onProgress?.(Math.min(s + bs, tasks.length), tasks.length);
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    model.dispose();
  }
  const nEval = Math.round(rows.length * (o.evalFraction ?? 0.15));
  return { heldOut: rows.slice(0, nEval).flat(), train: rows.slice(nEval).flat() };
}
