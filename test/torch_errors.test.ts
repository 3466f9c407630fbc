// A libtorch error becomes a JavaScript Error naming the operator and its inputs; the process lives on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';

// Tensors print as float32[2,3], or float32[2,3]@cuda:0 when the suite runs on a GPU (SPPO_DEVICE).
const at = torch.defaultDevice() === 'cpu' ? '' : `@${torch.defaultDevice().includes(':') ? torch.defaultDevice() : torch.defaultDevice() + ':0'}`;
const shape = (s: string) => s.replace(/\]/g, `]${at}`).replace(/[[\]]/g, (c) => `\\${c}`);

test('a shape mismatch names the op and the shapes', () => {
  const a = torch.ones([2, 3]);
  const b = torch.ones([4, 5]);
  assert.throws(() => a.matmul(b), (e: Error) => new RegExp(`aten::matmul\\(float32${shape('[2,3]')}, float32${shape('[4,5]')}\\)`).test(e.message) && /cannot be multiplied/.test(e.message));
  assert.throws(() => a.add(torch.ones([4])), new RegExp(`aten::add\\.Tensor\\(float32${shape('[2,3]')}, float32${shape('[4]')}.*must match the size`));
  assert.throws(() => a.reshape(7), /aten::reshape.*shape '\[7\]' is invalid for input of size 6/);
  assert.throws(() => a.sum(5), /Dimension out of range/);
});

test('a wrong dtype is an error', () => {
  const ids = torch.tensor([0.5, 1.5]); // float ids
  const w = torch.ones([4, 2]);
  assert.throws(() => torch.embedding(w, ids), new RegExp(`aten::embedding\\(float32${shape('[4,2]')}, float32${shape('[2]')}.*(Long|Int)`));
  assert.throws(() => torch.ones([2]).requiresGrad_().to('int64').requiresGrad_(), /floating point/);
  assert.throws(() => torch.tensor([1, 2]).bmm(torch.tensor([1, 2])), /aten::bmm/);
  assert.throws(() => torch.zeros([2], { dtype: 'nope' as never }), /unknown dtype 'nope'/);
});

test('bad arguments from JavaScript are errors, not crashes', () => {
  // Out-of-range indices are checked on the CPU. On a GPU they are a device-side assert that leaves the
  // CUDA context unusable for the rest of the process, as in PyTorch, so they are not tried there.
  const cpu = { device: 'cpu' };
  const a = torch.ones([2], cpu);
  assert.throws(() => a.index([torch.tensor([5n], cpu)]), /index 5 is out of bounds/);
  assert.throws(() => torch.embedding(torch.ones([3, 2], cpu), torch.tensor([7n], cpu)), /index out of range/i);
  assert.throws(() => a.gather(0, torch.tensor([9n], cpu)), /aten::gather/);
  assert.throws(() => torch.multinomial(torch.tensor([-1, 2], cpu), 1), /aten::multinomial/);
  assert.throws(() => torch.callT('add.Tensor', a.h, 'not a tensor'), /aten::add.Tensor.*other: expected a tensor/);
  assert.throws(() => torch.callT('no_such_op'), /has no operator aten::no_such_op/);
  if (!torch.cuda.isAvailable()) assert.throws(() => torch.tensor([1]).to('cuda:0' as never).add(1), /cuda|CUDA/);
  assert.throws(() => torch.tensor([1]).to('tpu' as never), /tpu|device/i);
  // still alive and computing
  assert.equal(torch.ones([3]).sum().item(), 3);
});

test('backward errors are errors too', () => {
  const x = torch.ones([3]).requiresGrad_();
  const y = x.mul(2);
  assert.throws(() => y.backward(), new RegExp(`backward\\(float32${shape('[3]')}\\).*grad can be implicitly created only for scalar outputs`));
  assert.throws(() => y.backward(torch.ones([4])), /backward/);
  assert.equal(x.mul(2).sum().item(), 6);
});
