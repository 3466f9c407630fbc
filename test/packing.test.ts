// Training on packed sequences (src/sppo/logprobs.ts packRows): the layout (first-fit decreasing rows, positions
// restarting at 0, cumulative lengths, response indices), and for every causal fixture (Llama, Llama 3 rope
// scaling, Mistral, Qwen2, Gemma 2 with its sliding window of 6, GPT-2 with learned positions) the per-sequence
// response log-probs and their gradients against the right-padded batch of the same sequences. On CUDA with
// a PyTorch 2 libtorch, also libtorch's variable-length flash attention against the attention written out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadModel } from '../src/models/registry.js';
import { packRows, packSequences, responseLogprobs, type PromptResponse } from '../src/sppo/logprobs.js';
import { createRng } from '../src/sppo/rng.js';
import { fixtureCases, hfTiny } from './helpers/fixtures.js';
import { flat } from './helpers/torch.js';
import { BWD32, EPS_BF16, LOGPROB32, reportError } from './helpers/tolerances.js';
import { cudaSkipReason } from './helpers/cuda.js';

/** Sequences of mixed lengths (prompt 1-6, response 1-9 tokens; at most 15, under the fixtures' T <= 20). */
function sequences(n: number, seed: number): PromptResponse[] {
  const rng = createRng(seed);
  const ids = (k: number): number[] => Array.from({ length: k }, () => 4 + rng.int(500));
  return Array.from({ length: n }, () => ({ promptIds: ids(1 + rng.int(6)), responseIds: ids(1 + rng.int(9)) }));
}

test('packRows: first-fit decreasing rows, positions from 0 per sequence, cumulative lengths and response indices', () => {
  const seqs: PromptResponse[] = [
    { promptIds: [10, 11], responseIds: [12, 13, 14] }, // 5 tokens
    { promptIds: [20], responseIds: [21, 22] }, // 3
    { promptIds: [30], responseIds: [31] }, // 2
  ];
  const b = packRows(seqs, 0);
  // Rows of 5 (the longest): row 0 = sequence 0; row 1 = sequence 1 then sequence 2 (3 + 2 = 5, no tail).
  assert.equal(b.rows, 2);
  assert.equal(b.rowLength, 5);
  assert.equal(b.tokens, 10);
  assert.deepEqual(flat(b.inputIds), [10, 11, 12, 13, 14, 20, 21, 22, 30, 31]);
  assert.deepEqual(flat(b.packing.sequenceIds), [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]);
  assert.deepEqual(flat(b.packing.positionIds), [0, 1, 2, 3, 4, 0, 1, 2, 0, 1]);
  assert.deepEqual(flat(b.packing.cuSeqlens), [0, 5, 8, 10]);
  assert.equal(b.packing.cuSeqlens.dtype, 'int32');
  assert.equal(b.packing.maxLength, 5);
  // Flattened [2, 4] token log-probs: target j of a sequence at offset o in row r is at r * 4 + o + j - 1;
  // the longest response has 3 targets; 8 (one past the end) pads the shorter ones.
  assert.deepEqual(flat(b.responseIndex), [1, 2, 3, /* seq 1, offset 0 */ 4, 5, 8, /* seq 2, offset 3 */ 7, 8, 8]);
  // A row with room left: its tail is a sequence of its own (id N + row), positions from 0, padId tokens.
  const t = packRows([{ promptIds: [1, 2], responseIds: [3] }, { promptIds: [4], responseIds: [5] }], 9, { rowLength: 6 });
  assert.equal(t.rows, 1);
  assert.equal(t.rowLength, 5);
  assert.deepEqual(flat(t.inputIds), [1, 2, 3, 4, 5]);
  const u = packRows([{ promptIds: [1, 2], responseIds: [3] }, { promptIds: [4, 5, 6], responseIds: [7] }], 9);
  assert.deepEqual(flat(u.inputIds), [4, 5, 6, 7, 1, 2, 3, 9]);
  assert.deepEqual(flat(u.packing.sequenceIds), [1, 1, 1, 1, 0, 0, 0, 3]);
  assert.deepEqual(flat(u.packing.positionIds), [0, 1, 2, 3, 0, 1, 2, 0]);
  assert.deepEqual(flat(u.packing.cuSeqlens), [0, 4, 7, 8]);
  assert.throws(() => packRows([{ promptIds: [1, 2, 3], responseIds: [4] }], 0, { rowLength: 3 }), /sequence 0 has 4 tokens, more than rowLength 3/);
  assert.throws(() => packRows([{ promptIds: [1], responseIds: [-2] }], 0), /sequence 0 has an invalid token id -2 at 1/);
  assert.throws(() => packRows([], 0), /no sequences/);
});

const cases = fixtureCases(['model.safetensors', 'config.json']).filter((c) => !c.name.startsWith('deberta'));

for (const c of cases) {
  test(`${c.name}: packed rows give the padded batch's response log-probs and gradients (float32)`, { skip: c.skip }, () => {
    const model = loadModel(c.dir, { dtype: 'float32' });
    try {
      const seqs = sequences(9, 7);
      const pad = model.config.padTokenId ?? 0;
      const packed = packRows(seqs, pad, { device: model.device });
      const padded = packSequences(seqs, pad, model.device);
      // Fewer positions through the model than the padded batch's (the point of packing).
      assert.ok(packed.rows * packed.rowLength < padded.inputIds.numel, `${packed.rows} x ${packed.rowLength} vs ${padded.inputIds.shape}`);
      const params = model.parameters();
      for (const p of params) p.requiresGrad_(true);
      const run = (batch: typeof packed | typeof padded): { lp: number[]; grads: Float64Array[] } => torch.tidy(() => {
        const lp = responseLogprobs(model, batch);
        // A weighted sum, so that every sequence's gradient counts with its own sign.
        const w = torch.tensor(Float32Array.from(seqs.map((_, i) => (i % 2 ? -1 : 1) * (1 + i / 8))), { device: model.device });
        lp.mul(w).sum().backward();
        const grads = params.map((p) => Float64Array.from(p.grad!.cpu().toTypedArray() as Float32Array));
        for (const p of params) p.zeroGrad();
        return { lp: Array.from(lp.detach().cpu().toTypedArray() as Float32Array), grads };
      });
      const a = run(packed);
      const b = run(padded);
      for (const p of params) p.requiresGrad_(false);
      // Each response log-prob is a sum of n token log-probs, each within LOGPROB32 of the exact value on both
      // paths (the masks differ, the arithmetic of one position does not, up to the kernels' summation orders).
      seqs.forEach((s, i) => {
        const limit = 2 * s.responseIds.length * LOGPROB32;
        reportError(`${c.name} seq ${i}`, Math.abs(a.lp[i]! - b.lp[i]!), limit);
        assert.ok(Math.abs(a.lp[i]! - b.lp[i]!) <= limit, `${c.name}: sequence ${i}: packed ${a.lp[i]} vs padded ${b.lp[i]} (limit ${limit})`);
      });
      // Gradients normwise: |g_packed - g_padded| <= 2 BWD32 |g_padded| per parameter tensor (both within BWD32).
      a.grads.forEach((g, k) => {
        let d = 0, n = 0;
        g.forEach((x, j) => {
          d += (x - b.grads[k]![j]!) ** 2;
          n += b.grads[k]![j]! ** 2;
        });
        const err = Math.sqrt(d), scale = Math.sqrt(n);
        reportError(`${c.name} grad ${k}`, err, 2 * BWD32 * scale);
        assert.ok(err <= 2 * BWD32 * scale + 1e-30, `${c.name}: parameter ${model.namedParameters()[k]![0]}: gradient differs by ${err} (norm ${scale})`);
      });
    } finally {
      model.dispose();
    }
  });
}

test('a wrong layout changes the log-probs by O(1): positions not restarting, or attention across sequences', { skip: cases[0]?.skip ?? false }, () => {
  const model = loadModel(join(hfTiny, 'gpt2'), { dtype: 'float32' });
  try {
    const seqs = sequences(6, 3);
    const packed = packRows(seqs, 0, { device: model.device });
    const ref = torch.tidy(() => flat(responseLogprobs(model, packSequences(seqs, 0, model.device))));
    const moved = torch.tidy(() => {
      const rowPositions = torch.arange(0, packed.rowLength, 1, { device: model.device }).unsqueeze(0).expand(packed.rows, packed.rowLength);
      return flat(responseLogprobs(model, { ...packed, packing: { ...packed.packing, positionIds: rowPositions } }));
    });
    const oneSeq = torch.tidy(() => flat(responseLogprobs(model, { ...packed, packing: { ...packed.packing, sequenceIds: torch.zerosLike(packed.packing.sequenceIds) } })));
    // Sequences not at the start of their row change; the largest change is far above LOGPROB32.
    const worst = (xs: number[]): number => Math.max(...xs.map((x, i) => Math.abs(x - ref[i]!)));
    assert.ok(worst(moved) > 0.05, `positions: ${worst(moved)}`);
    assert.ok(worst(oneSeq) > 0.05, `sequence ids: ${worst(oneSeq)}`);
    assert.throws(() => model.forward({ inputIds: packed.inputIds, attentionMask: torch.onesLike(packed.inputIds), packing: packed.packing }), /packed sequences take no attentionMask/);
  } finally {
    model.dispose();
  }
});

const cudaSkip = cudaSkipReason() || (!torch.hasVarlenFlashAttention() ? 'needs a libtorch with aten::_flash_attention_forward taking sequence lengths (PyTorch 2.x)' : false);
for (const window of [null, 4]) {
  const skip = cudaSkip ? cudaSkip
    : window !== null && !torch.hasVarlenFlashAttention({ slidingWindow: true }) ? 'this libtorch\'s flash attention takes no window' : false;
  test(`variable-length flash attention (CUDA, bf16${window ? `, sliding window ${window}` : ''}) against the attention written out per sequence, forward and backward`, { skip }, () => {
    varlenAgainstComposed(window);
  });
}

function varlenAgainstComposed(window: number | null): void {
  const dev = torch.defaultDevice();
  const lens = [7, 1, 12, 5];
  const t = lens.reduce((a, x) => a + x, 0);
  const h = 6, hkv = 2, d = 64;
  const g = new torch.Generator(5, dev);
  torch.tidy(() => {
    const mk = (heads: number): torch.Tensor => torch.randn([t, heads, d], { generator: g, device: dev }).to('bfloat16').requiresGrad_(true);
    const q = mk(h), k = mk(hkv), v = mk(hkv);
    const cu = torch.tensor(Int32Array.from([0, 7, 8, 20, 25]), { device: dev });
    const dout = torch.randn([t, h, d], { generator: g, device: dev }).to('bfloat16');
    const scale = 1 / Math.sqrt(d);
    const y = torch.flashAttentionVarlen(q, k, v, cu, 12, { scale, slidingWindow: window });
    y.mul(dout).sum().backward();
    const got = { y: y.float(), dq: q.grad!.float(), dk: k.grad!.float(), dv: v.grad!.float() };
    // Reference: each sequence alone, float32 from the same bf16 inputs, causal, key heads repeated.
    const [qf, kf, vf] = [q, k, v].map((x) => x.detach().float().requiresGrad_(true)) as [torch.Tensor, torch.Tensor, torch.Tensor];
    const outs: torch.Tensor[] = [];
    let o = 0;
    for (const n of lens) {
      const seg = (x: torch.Tensor): torch.Tensor => x.narrow(0, o, n).transpose(0, 1).unsqueeze(0); // [1, heads, n, d]
      const rep = (x: torch.Tensor): torch.Tensor => seg(x).repeatInterleave(h / hkv, 1);
      // Causal, and with a window w a query sees the keys at most w - 1 positions back (packedCausalMask's rule).
      const qi = torch.arange(0, n, 1, { device: dev }).unsqueeze(1);
      const ki = torch.arange(0, n, 1, { device: dev }).unsqueeze(0);
      const allowed = window === null ? ki.le(qi) : ki.le(qi).logicalAnd(ki.gt(qi.sub(window)));
      outs.push(torch.attentionComposed(seg(qf), rep(kf), rep(vf), { mask: allowed, scale }).squeeze(0).transpose(0, 1));
      o += n;
    }
    const ref = torch.cat(outs, 0);
    ref.mul(dout.float()).sum().backward();
    const maxAbs = (x: torch.Tensor): number => x.abs().max().item();
    // Forward: each output is a convex combination of values; the kernel rounds the probabilities to bf16 before
    // P V and the output once more: |y - ref| <= 2 EPS_BF16 max|v| (+ float32 sums, far smaller), with 1.5x slack.
    const fwdErr = maxAbs(got.y.sub(ref));
    const fwdLimit = 3 * EPS_BF16 * maxAbs(vf);
    reportError('varlen flash forward', fwdErr, fwdLimit);
    assert.ok(fwdErr <= fwdLimit, `forward differs by ${fwdErr} (limit ${fwdLimit})`);
    // Backward, normwise per input: dV = P^T dO and dQ, dK through dS = P (dP - rowsum(dO y)): P and dS rounded to
    // bf16 once each, y (in the row sums) once, the result once: 4 roundings of EPS_BF16, doubled for the
    // cancellation in dP - rowsum (|dP| and |rowsum| are of the size of |dS| here: random dO): 8 EPS_BF16.
    for (const [name, gg, r] of [['dq', got.dq, qf.grad!], ['dk', got.dk, kf.grad!], ['dv', got.dv, vf.grad!]] as const) {
      const err = gg.sub(r).norm().item();
      const limit = 8 * EPS_BF16 * r.norm().item();
      reportError(`varlen flash ${name}`, err, limit);
      assert.ok(err <= limit, `${name} differs by ${err} (limit ${limit})`);
    }
  });
}
