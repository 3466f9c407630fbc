// libtorch's operator profiler through torch.profile: the operators a function calls, with self and total times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';

test('profile records the operators of forward and backward, with self time within total time', () => {
  const { result, rows, events } = torch.profile(() => torch.tidy(() => {
    const a = torch.randn([64, 64]).requiresGrad_();
    const y = a.matmul(a).relu().sum();
    y.backward();
    return y.item();
  }));
  assert.ok(Number.isFinite(result));
  const byName = new Map(rows.map((r) => [r.name, r]));
  for (const op of ['aten::mm', 'aten::relu', 'aten::sum']) assert.ok(byName.has(op), `${op} missing from ${[...byName.keys()].join(', ')}`);
  assert.ok([...byName.keys()].some((n) => n.startsWith('MmBackward')), 'no autograd node for the matmul');
  const matmul = byName.get('aten::matmul')!;
  assert.ok(matmul.totalMs > matmul.selfMs, 'matmul calls mm: its total time exceeds its self time');
  for (const r of rows) assert.ok(r.selfMs <= r.totalMs + 1e-9 && r.calls > 0, `${r.name}: self ${r.selfMs} > total ${r.totalMs}`);
  assert.ok(events.length >= rows.length);
  assert.ok(torch.formatProfile(rows).includes('aten::mm'));
});

test('profile nests by time span: self time excludes children; the recorder stops when the function throws', () => {
  const rows = torch.profileRows([
    { name: 'outer', ph: 'X', ts: 0, dur: 100, tid: 1 },
    { name: 'inner', ph: 'X', ts: 10, dur: 30, tid: 1 },
    { name: 'inner', ph: 'X', ts: 50, dur: 20, tid: 1 },
    { name: 'other-thread', ph: 'X', ts: 20, dur: 500, tid: 2 },
  ]);
  const get = (n: string) => rows.find((r) => r.name === n)!;
  assert.deepEqual([get('outer').selfMs, get('outer').totalMs], [0.05, 0.1]);
  assert.deepEqual([get('inner').calls, get('inner').selfMs], [2, 0.05]);
  assert.equal(get('other-thread').selfMs, 0.5);
  assert.throws(() => torch.profile(() => { throw new Error('boom'); }), /boom/);
  const again = torch.profile(() => torch.tidy(() => torch.ones([2]).add(1).sum().item()));
  assert.ok(again.rows.some((r) => r.name === 'aten::add'));
});
