// Conformance with transformers on every model folder of $SPPO_HF_FIXTURES (default ../shared/fixtures/hf-tiny) and of
// test/fixtures/hf-extra,
// in its transformers 5 layout and in a transformers 4 layout copy: chat prompts, prompt ids, round trips, logits,
// token log-probs, greedy generation, and gradients of a sequence's log-prob (float32, CPU).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '../src/text/tokenizer.js';
import { ChatTemplate } from '../src/text/chat_template.js';
import { loadModel } from '../src/models/index.js';
import { generateTensors } from '../src/generate/index.js';
import { SafetensorsFile, tidy, type Tensor } from '../src/torch/index.js';
import { fixtureRoot, readExpected, removeDir } from './text_helpers.js';
import { fixtureCases, hfExtra } from './helpers/fixtures.js';
import { BWD32, FWD32, reportError } from './helpers/tolerances.js';
import { transformers4ModelCopy } from './conformance_helpers.js';

// Every manifest folder registers its tests (skipped with the missing file's name when one is missing), and so does
// every folder of test/fixtures/hf-extra: architectures hf-tiny lacks (Qwen3), in its layout, written by
// transformers itself (scripts/hf-extra-fixtures.py); its reward model folders (no expected.json) are judge.test.ts's.
const REQUIRED = ['config.json', 'tokenizer.json', 'expected.json', 'model.safetensors', 'expected.safetensors'];
const cases = [...fixtureCases(REQUIRED, fixtureRoot), ...fixtureCases(REQUIRED, hfExtra).filter((c) => existsSync(join(c.dir, 'expected.json'))).map((c) => ({ ...c, name: `hf-extra/${c.name}` }))];

const maxAbs = (t: Tensor): number => tidy(() => t.abs().max().item());
const relL2 = (got: Tensor, want: Tensor): number => tidy(() => got.sub(want).norm().item() / Math.max(want.norm().item(), 1e-30));

function conform(dir: string): void {
  const expected = readExpected(dir);
  // Text: chat prompts, prompt ids, round trips.
  const tok = Tokenizer.fromFolder(dir);
  const template = ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens });
  expected.messages.forEach((messages, i) => {
    const prompt = template.render(messages, { addGenerationPrompt: true });
    assert.equal(prompt, expected.prompts[i], `chat prompt ${i}`);
    assert.deepEqual(tok.encode(prompt, { addSpecialTokens: false }), expected.prompt_ids[i], `prompt ids ${i}`);
  });
  for (const [text, { ids, decoded }] of Object.entries(expected.roundtrip)) {
    assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), ids, `ids of ${JSON.stringify(text)}`);
    assert.equal(tok.decode(ids), decoded, `decoded ${JSON.stringify(text)}`);
  }

  // Eager attention, as the fixtures were computed, on the default device (cpu, or $SPPO_DEVICE).
  const model = loadModel(dir, { dtype: 'float32', attention: 'eager' });
  const ex = SafetensorsFile.open(join(dir, 'expected.safetensors'));
  const want = (name: string): Tensor => ex.load(name);
  let logitScale = 1;
  tidy(() => {
    const inputIds = want('input_ids');
    const attentionMask = want('attention_mask');
    const positionIds = want('position_ids');
    // The padded prompts are the fixture's prompt ids.
    const rows = inputIds.toArray() as number[][];
    const mask = attentionMask.toArray() as number[][];
    rows.forEach((r, i) => assert.deepEqual(r.filter((_, j) => mask[i]![j]), expected.prompt_ids[i], `input_ids row ${i}`));

    const logits = model.forward({ inputIds, attentionMask, positionIds });
    const refLogits = want('logits');
    assert.deepEqual(logits.shape, refLogits.shape);
    // float32 against PyTorch's float32 kernels: reduction order only (FWD32, see helpers/tolerances.ts).
    logitScale = maxAbs(refLogits);
    const logitErr = maxAbs(logits.sub(refLogits)) / logitScale;
    reportError(`${dir} logits`, logitErr, FWD32);
    assert.ok(logitErr <= FWD32, `logits: max error ${logitErr} of the largest |logit|`);

    const lp = model.tokenLogprobs({ inputIds, attentionMask, positionIds }, { chunkTokens: 37 });
    // A log-prob is a logit minus a logsumexp of logits: twice the logits' absolute error, plus the
    // logsumexp's own V-term sum (already counted in FWD32).
    const lpErr = maxAbs(lp.sub(want('token_logprobs')));
    reportError(`${dir} token_logprobs`, lpErr, 2 * FWD32 * logitScale);
    assert.ok(lpErr <= 2 * FWD32 * logitScale, `token_logprobs: max error ${lpErr}`);

    const gen = generateTensors(model, inputIds, attentionMask, { temperature: 0, maxNewTokens: 10, minNewTokens: 10 });
    try {
      assert.deepEqual(gen.tokens.toArray(), want('greedy_tokens').toArray(), 'greedy tokens');
      const texts = (gen.tokens.toArray() as number[][]).map((ids) => tok.decode(ids, { skipSpecialTokens: true }));
      assert.deepEqual(texts, expected.greedy_text, 'greedy text');
    } finally {
      gen.tokens.dispose();
      gen.logprobs.dispose();
    }
  });

  // Gradients of the summed log-prob of row 2 with respect to layer 0's parameters.
  model.requiresGrad_(true);
  tidy(() => {
    const inputIds = want('input_ids');
    const attentionMask = want('attention_mask');
    const positionIds = want('position_ids');
    const s = model.tokenLogprobs({ inputIds, attentionMask, positionIds }).select(0, 2).sum();
    const refSum = want('seq_logprob_sum').item();
    // n log-probs, each within 2 * FWD32 * max|logit| (above), summed: relative to |sum| = n * mean|log-prob|,
    // and every log-prob of a 512-token vocabulary is far below -1 here: <= 2 * FWD32 * max(1, max|logit|).
    const sumErr = Math.abs(s.item() - refSum) / Math.abs(refSum);
    reportError(`${dir} seq_logprob_sum`, sumErr, 2 * FWD32 * Math.max(1, logitScale));
    assert.ok(sumErr <= 2 * FWD32 * Math.max(1, logitScale), `seq_logprob_sum: relative error ${sumErr}`);
    s.backward();
    const params = new Map(model.namedParameters());
    const gradNames = ex.names.filter((n) => n.startsWith('grad.'));
    assert.ok(gradNames.length > 0, 'the fixture has gradients');
    for (const g of gradNames) {
      const p = params.get(g.slice(5));
      assert.ok(p, `no parameter ${g.slice(5)}`);
      const grad = p.grad;
      assert.ok(grad, `no gradient for ${g.slice(5)}`);
      // Backward in float32 against PyTorch's kernels: BWD32 (helpers/tolerances.ts), normwise.
      const err = relL2(grad, want(g));
      reportError(`${dir} ${g}`, err, BWD32);
      assert.ok(err <= BWD32, `${g}: relative L2 error ${err}`);
    }
  });
  model.dispose();
}

for (const { name, dir: src, skip } of cases) {
  test(`conformance: ${name} (transformers 5 layout)`, { skip }, () => conform(src));
  test(`conformance: ${name} (transformers 4 layout)`, { skip }, () => {
    const dir = transformers4ModelCopy(src);
    try {
      conform(dir);
    } finally {
      removeDir(dir);
    }
  });
}
