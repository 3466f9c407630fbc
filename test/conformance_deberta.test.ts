// Conformance of DebertaV2Model with transformers on $SPPO_HF_FIXTURES/deberta-v2 (default
// ../shared/fixtures/hf-tiny/deberta-v2): the last hidden states of the fixture's batch (one row with padding),
// float32 on the CPU, in the folder's transformers 5 layout and in a transformers 4 layout copy (`torch_dtype`
// instead of `dtype`, pos_att_type as the "p2c|c2p" string that transformers 4 configs may hold).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadDebertaV2Model, parseDebertaV2Config, readDebertaV2Config, relativePositions } from '../src/models/deberta_v2.js';
import { SafetensorsFile, tidy, type Tensor } from '../src/torch/index.js';
import { fixtureRoot } from './text_helpers.js';
import { FWD32, reportError } from './helpers/tolerances.js';

const src = join(fixtureRoot, 'deberta-v2');
const required = ['config.json', 'model.safetensors', 'expected.safetensors'];
const missing = required.filter((f) => !existsSync(join(src, f)));
const skip = missing.length ? `${src} lacks ${missing.join(', ')}` : false;

/** A transformers 4 layout copy: torch_dtype, pos_att_type "p2c|c2p", no null token ids; weights linked. */
function transformers4DebertaCopy(from: string): string {
  const dst = mkdtempSync(join(tmpdir(), 'sppo-deberta4-'));
  const config = JSON.parse(readFileSync(join(from, 'config.json'), 'utf8')) as Record<string, unknown>;
  config.torch_dtype = config.dtype;
  delete config.dtype;
  if (Array.isArray(config.pos_att_type)) config.pos_att_type = (config.pos_att_type as string[]).join('|');
  for (const k of ['bos_token_id', 'eos_token_id']) if (config[k] === null) delete config[k];
  config.transformers_version = '4.46.0';
  writeFileSync(join(dst, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of ['model.safetensors', 'expected.safetensors']) symlinkSync(resolve(from, f), join(dst, f));
  return dst;
}

function conform(dir: string): void {
  const model = loadDebertaV2Model(dir, { dtype: 'float32' });
  try {
    const ex = SafetensorsFile.open(join(dir, 'expected.safetensors'));
    tidy(() => {
      const inputIds = ex.load('input_ids');
      const attentionMask = ex.load('attention_mask');
      const mask = attentionMask.toArray() as number[][];
      assert.ok(mask.some((row) => row.includes(0)), 'the fixture batch has padding');
      const got = model.forward({ inputIds, attentionMask });
      const want: Tensor = ex.load('last_hidden_state');
      assert.deepEqual(got.shape, want.shape);
      // float32 against PyTorch's float32 kernels: reduction order only (FWD32, helpers/tolerances.ts), relative
      // to the largest |output|; padding positions included (transformers' uniform attention there).
      const scale = want.abs().max().item();
      const err = got.sub(want).abs().max().item() / scale;
      reportError(`${dir} last_hidden_state`, err, FWD32);
      assert.ok(err <= FWD32, `last_hidden_state: max error ${err} of the largest |value| ${scale}`);
    });
  } finally {
    model.dispose();
  }
}

test('conformance: deberta-v2 (transformers 5 layout)', { skip }, () => conform(src));
test('conformance: deberta-v2 (transformers 4 layout)', { skip }, () => {
  const dir = transformers4DebertaCopy(src);
  try {
    const c4 = readDebertaV2Config(dir);
    const c5 = readDebertaV2Config(src);
    assert.deepEqual({ ...c4, raw: null }, { ...c5, raw: null }, 'both layouts give the same configuration');
    conform(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('deberta-v2: log-bucketed relative positions as make_log_bucket_position', () => {
  // bucket 16 (mid 8), max_position 128: |r| <= 8 stays r; |r| > 8 maps to
  // sign(r) * (8 + ceil(ln(|r|/8) / ln(127/8) * 7)), here worked out by hand: ln(127/8) = 2.7649.
  //   r = 9:  ln(1.125) = 0.1178 -> 0.1178/2.7649*7 = 0.298 -> ceil 1 -> 9
  //   r = 12: ln(1.5)   = 0.4055 -> 1.027 -> ceil 2 -> 10
  //   r = 16: ln(2)     = 0.6931 -> 1.755 -> ceil 2 -> 10
  //   r = 17: ln(2.125) = 0.7538 -> 1.908 -> ceil 2 -> 10
  //   r = 19: ln(2.375) = 0.8650 -> 2.190 -> ceil 3 -> 11
  const rel = relativePositions(20, 16, 128);
  try {
    const m = rel.toArray() as number[][];
    assert.equal(rel.dtype, 'int64');
    const at = (r: number): number => m[r]![0]!;
    for (let r = 0; r <= 8; r++) assert.equal(at(r), r, `r = ${r}`);
    assert.deepEqual([at(9), at(12), at(16), at(17), at(19)], [9, 10, 10, 10, 11]);
    for (let i = 0; i < 20; i++) for (let j = 0; j < 20; j++) assert.equal(m[i]![j]! + m[j]![i]!, 0, 'antisymmetric');
  } finally {
    rel.dispose();
  }
  const plain = relativePositions(4, -1, 128);
  try {
    assert.deepEqual(plain.toArray(), [[0, -1, -2, -3], [1, 0, -1, -2], [2, 1, 0, -1], [3, 2, 1, 0]]);
  } finally {
    plain.dispose();
  }
});

test('deberta-v2: config errors name the file and the field', () => {
  assert.throws(() => parseDebertaV2Config({ model_type: 'bert' }, 'x/config.json'), /x\/config\.json: model_type 'bert' is not deberta-v2/);
  assert.throws(() => parseDebertaV2Config({ pos_att_type: ['c2p', 'p2p'] }, 'x/config.json'), /x\/config\.json: pos_att_type p2p is not supported/);
  assert.throws(() => parseDebertaV2Config({ hidden_size: '64' }, 'x/config.json'), /"hidden_size" must be a number/);
  assert.throws(() => parseDebertaV2Config({ conv_kernel_size: 3 }, 'x/config.json'), /conv_kernel_size/);
  assert.deepEqual(parseDebertaV2Config({ pos_att_type: 'p2c|c2p' }).posAttType, ['p2c', 'c2p']);
});
