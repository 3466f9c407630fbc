// The arithmetic of `npm run bench -- --gpu` (bench/gpu.ts): the memory bandwidth chosen from the device name,
// the bytes a decode step must read (weights and KV cache), and the summary's ratios joining sppo's figures with
// the right transformers figure (hf_baseline.py's at batch 64, bench/peer_gpu.py's at batch 256).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bandwidthOf, decodeStepBytes, SHAPES, summary } from '../bench/gpu.js';

test('bandwidth from the device name: H200 4.8 TB/s, H100 SXM 3.35, H100 PCIe 2.0, others unknown', () => {
  assert.equal(bandwidthOf('NVIDIA H200'), 4.8e12);
  assert.equal(bandwidthOf('NVIDIA H100 80GB HBM3'), 3.35e12);
  assert.equal(bandwidthOf('NVIDIA H100 PCIe'), 2.0e12);
  assert.equal(bandwidthOf('Tesla T4'), null);
});

test('decode-step bytes at the 135M shape: 2 bytes a weight plus the KV cache of 30 layers x 3 heads x 64 dims', () => {
  const c = SHAPES['135M']!.config;
  // Parameters of SmolLM2-135M (tied embeddings): 49152 x 576 embeddings, per layer q, o 576^2, k, v 576 x 192,
  // gate, up, down 576 x 1536, two norms of 576; the final norm.
  const perLayer = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536 + 2 * 576;
  const params = 49152 * 576 + 30 * perLayer + 576;
  assert.equal(params, 134515008);
  // Batch 64 at a context of 128 positions: 64 x 30 x (k and v) x 3 x 64 x 128 x 2 bytes.
  const kv = 64 * 30 * 2 * 3 * 64 * 128 * 2;
  assert.equal(decodeStepBytes(params, c, 64, 128), 2 * params + kv);
  // The figure: a step reads about 270 MB of weights.
  assert.ok(Math.abs(2 * params - 270e6) < 1.5e6);
});

test('summary: generation against hf_baseline at batch 64 and peer_gpu at batch 256; training against the 16 x 512 peer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sppo-gpu-summary-'));
  const old = process.env.OUT;
  process.env.OUT = dir;
  try {
    const w = (part: string, v: unknown): void => writeFileSync(join(dir, `gpu-${part}.json`), JSON.stringify(v));
    w('gen', { device: 'NVIDIA H100 80GB HBM3', results: [
      { shape: '135M', case_batch: 64, batch: 64, graph: 'off', tok_s: 800 },
      { shape: '135M', case_batch: 64, batch: 64, graph: 'on', tok_s: 30000, fraction_of_limit: 0.25 },
      { shape: '135M', case_batch: 256, batch: 256, graph: 'on', tok_s: 90000 },
    ] });
    w('peer', { hf_baseline: { '135M': { gen_tok_s: 600, train_tok_s: 70000 } }, peer_gpu: { '135M': { gen_b256_tok_s: 1500 } } });
    w('train', { results: [
      { shape: '135M', lengths: 'uniform', packing: true, masterWeights: true, optimizer: 'adamw', tok_s: 140000 },
      { shape: '135M', lengths: 'mixed', packing: true, masterWeights: true, optimizer: 'adamw', tok_s: 120000 },
    ] });
    const s = summary() as { generation: { shape: string; batch: number; ratio?: number; transformers?: number }[]; training: { lengths: string; ratio?: number }[] };
    const g64 = s.generation.find((r) => r.shape === '135M' && r.batch === 64)!;
    const g256 = s.generation.find((r) => r.shape === '135M' && r.batch === 256)!;
    assert.equal(g64.transformers, 600);
    assert.equal(g64.ratio, 30000 / 600);
    assert.equal(g256.ratio, 90000 / 1500);
    assert.equal(s.generation.find((r) => r.shape === '360M' && r.batch === 64)!.ratio, undefined);
    assert.equal(s.training.find((r) => r.lengths === 'uniform')!.ratio, 2);
    // Mixed lengths have no transformers counterpart (hf_baseline trains 16 x 512).
    assert.equal(s.training.find((r) => r.lengths === 'mixed')!.ratio, undefined);
  } finally {
    if (old === undefined) delete process.env.OUT;
    else process.env.OUT = old;
    rmSync(dir, { recursive: true, force: true });
  }
});
