// safetensors: the fixtures read with the right names, shapes and dtypes; bit-exact round trips for
// every dtype; sharded checkpoints; corrupt and truncated files give errors naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { fixtureModels, hfTiny } from './helpers/fixtures.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'sppo-st-'));
const bytesOf = (t: torch.Tensor) => Buffer.from((t.dtype === 'float16' || t.dtype === 'bfloat16' ? t.view(-1) : t).contiguous().toTypedArray().buffer as ArrayBuffer);

/** An independent reading of a safetensors header (no sppo code): name -> {dtype, shape}. */
function headerOf(path: string): Record<string, { dtype: string; shape: number[]; data_offsets: number[] }> {
  const fd = openSync(path, 'r');
  const len = Buffer.alloc(8);
  readSync(fd, len, 0, 8, 0);
  const n = Number(len.readBigUInt64LE());
  const h = Buffer.alloc(n);
  readSync(fd, h, 0, n, 8);
  closeSync(fd);
  const j = JSON.parse(h.toString());
  delete j.__metadata__;
  return j;
}

const ST = { F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', BOOL: 'bool' } as Record<string, string>;
const manifest = () => JSON.parse(readFileSync(join(hfTiny, 'MANIFEST.json'), 'utf8'));

test('every fixture safetensors file reads with the right names, shapes and dtypes', (t) => {
  const models = fixtureModels();
  if (!models.length) return t.skip(`no fixtures at ${hfTiny}`);
  const m = manifest();
  for (const model of models) {
    for (const file of ['model.safetensors', 'expected.safetensors']) {
      const path = join(hfTiny, model, file);
      const f = torch.SafetensorsFile.open(path);
      const h = headerOf(path);
      assert.deepEqual(f.names.sort(), Object.keys(h).sort(), `${model}/${file} names`);
      for (const [name, e] of Object.entries(h)) {
        const x = f.load(name);
        assert.deepEqual(x.shape, e.shape, `${model}/${file}:${name} shape`);
        assert.equal(x.dtype, ST[e.dtype], `${model}/${file}:${name} dtype`);
        // the bytes are the file's bytes
        const raw = Buffer.alloc(e.data_offsets[1]! - e.data_offsets[0]!);
        const fd = openSync(path, 'r');
        readSync(fd, raw, 0, raw.length, f.entries.get(name)!.offset);
        closeSync(fd);
        assert.ok(bytesOf(x).equals(raw), `${model}/${file}:${name} bytes`);
        x.dispose();
      }
    }
    // against what transformers wrote: parameter count and sequence length
    const info = m.models[model];
    if (info) {
      const w = new torch.WeightFolder(join(hfTiny, model));
      const params = w.names.reduce((s, n) => s + w.entry(n)!.shape.reduce((a, b) => a * b, 1), 0);
      assert.equal(params, info.params, `${model}: parameter count`);
      const ex = torch.SafetensorsFile.open(join(hfTiny, model, 'expected.safetensors'));
      assert.deepEqual(ex.entries.get('input_ids')!.shape, [3, info.L]);
      assert.equal(ex.entries.get('input_ids')!.dtype, 'int64');
      assert.deepEqual(ex.entries.get('logits')!.shape, [3, info.L, 512]);
    }
  }
});

test('a write/read round trip of each fixture is bit-exact', (t) => {
  const models = fixtureModels();
  if (!models.length) return t.skip(`no fixtures at ${hfTiny}`);
  const dir = tmp();
  try {
    for (const model of models) {
      const { tensors, metadata } = torch.loadSafetensors(join(hfTiny, model, 'model.safetensors'));
      const out = join(dir, `${model}.safetensors`);
      torch.saveSafetensors(out, tensors, metadata);
      const back = torch.loadSafetensors(out);
      assert.deepEqual([...back.tensors.keys()], [...tensors.keys()]);
      assert.deepEqual(back.metadata, metadata);
      for (const [name, x] of tensors) {
        assert.ok(bytesOf(back.tensors.get(name)!).equals(bytesOf(x)), `${model}:${name}`);
        assert.equal(back.tensors.get(name)!.dtype, x.dtype);
      }
      for (const x of [...tensors.values(), ...back.tensors.values()]) x.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every dtype round-trips bit-exactly, with metadata; files are 8-byte aligned', () => {
  const dir = tmp();
  try {
    const g = new torch.Generator(9);
    const src = new Map<string, torch.Tensor>();
    for (const d of ['float32', 'float64', 'float16', 'bfloat16'] as const) src.set(d, torch.randn([3, 5], { generator: g }).to(d));
    src.set('int64', torch.randint(-1000, 1000, [7], { generator: g }));
    src.set('int32', torch.randint(-1000, 1000, [2, 2], { generator: g }).to('int32'));
    src.set('bool', torch.rand([9], { generator: g }).gt(0.5));
    src.set('scalar', torch.scalarTensor(3.5));
    src.set('empty', torch.zeros([0, 4]));
    const path = join(dir, 'all.safetensors');
    torch.saveSafetensors(path, src, { note: 'hello' });
    const hlen = Number(readFileSync(path).readBigUInt64LE(0));
    assert.equal(hlen % 8, 0);
    const { tensors, metadata } = torch.loadSafetensors(path);
    assert.equal(metadata.note, 'hello');
    for (const [name, x] of src) {
      const y = tensors.get(name)!;
      assert.equal(y.dtype, x.dtype, name);
      assert.deepEqual(y.shape, x.shape, name);
      assert.ok(bytesOf(y).equals(bytesOf(x)), name);
    }
    // load with a cast
    const f = torch.SafetensorsFile.open(path);
    assert.equal(f.load('float32', { dtype: 'bfloat16' }).dtype, 'bfloat16');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sharded checkpoints: written above a size limit, read through the index', () => {
  const dir = tmp();
  try {
    const src = new Map<string, torch.Tensor>();
    for (let i = 0; i < 5; i++) src.set(`layer.${i}.weight`, torch.full([256], i)); // 1 KiB each
    const files = torch.saveWeights(dir, src, { maxShardBytes: 2100 });
    assert.deepEqual(files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    assert.equal(index.metadata.total_size, 5 * 1024);
    assert.equal(index.weight_map['layer.4.weight'], 'model-00003-of-00003.safetensors');
    const w = new torch.WeightFolder(dir);
    assert.equal(w.files.length, 3);
    for (const [name, x] of src) assert.ok(w.load(name).equal(x), name);
    // below the limit: one file, and the stale index is removed
    assert.deepEqual(torch.saveWeights(dir, src), ['model.safetensors']);
    assert.equal(new torch.WeightFolder(dir).files.length, 1);
    // an index that points at a tensor its shard lacks
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { nope: 'model.safetensors' } }));
    assert.throws(() => new torch.WeightFolder(dir), /model\.safetensors\.index\.json.*'nope'/);
    assert.throws(() => new torch.WeightFolder(join(dir, 'missing')), /no model\.safetensors/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt, truncated and foreign files give errors that name the file', () => {
  const dir = tmp();
  try {
    const good = join(dir, 'good.safetensors');
    torch.saveSafetensors(good, { a: torch.ones([64]), b: torch.ones([64]) });
    const size = statSync(good).size;
    const cases: [string, (p: string) => void, RegExp][] = [
      ['empty', (p) => writeFileSync(p, ''), /not a safetensors file \(0 bytes/],
      ['text', (p) => writeFileSync(p, 'hello world, not a tensor file'), /header length .* (implausible|runs past)/],
      ['truncated data', (p) => { copyFileSync(good, p); truncateSync(p, size - 10); }, /tensor 'b' ends at byte .* truncated/],
      ['truncated header', (p) => { copyFileSync(good, p); truncateSync(p, 20); }, /runs past the end of the file/],
      ['bad json', (p) => { const b = Buffer.alloc(16, 0x7b); b.writeBigUInt64LE(8n); writeFileSync(p, b); }, /not valid JSON/],
      ['bad dtype', (p) => writeHeader(p, { x: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, 1), /tensor 'x': unsupported dtype "F8"/],
      ['bad offsets', (p) => writeHeader(p, { x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, 8), /tensor 'x': float32\[2\] needs 8 bytes, data_offsets give 4/],
      ['bad shape', (p) => writeHeader(p, { x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /tensor 'x': shape \[-1\]/],
    ];
    for (const [name, make, re] of cases) {
      const p = join(dir, `${name.replace(/ /g, '_')}.safetensors`);
      make(p);
      assert.throws(() => torch.loadSafetensors(p), (e: Error) => e instanceof torch.SafetensorsError && e.message.includes(p) && re.test(e.message), name);
    }
    assert.throws(() => torch.SafetensorsFile.open(join(dir, 'absent.safetensors')), /absent\.safetensors.*ENOENT/);
    // the process lives on and the good file still reads
    assert.equal(torch.loadSafetensors(good).tensors.get('a')!.sum().item(), 64);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function writeHeader(path: string, header: object, dataBytes: number): void {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
}
