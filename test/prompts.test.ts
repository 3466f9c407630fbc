// Prompts of an SPPO run: JSONL and Parquet, `prompt` / `messages` / `instruction`, errors naming the file and
// line, the seeded split, and the texts for the model and the judge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { modelPromptText, plainPromptText, PromptFileError, readPromptFile, splitPrompts } from '../src/sppo/prompts.js';
import { ChatTemplate } from '../src/text/chat_template.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const DATA = join(fixtureRoot, '..', '..', 'data');

// ---- a minimal Parquet writer (no hyparquet-writer or pyarrow here): one row group, PLAIN, uncompressed ----

class Thrift {
  bytes: number[] = [];
  private last: number[] = [0];
  varint(n: number): void {
    let v = BigInt(n);
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) b |= 0x80;
      this.bytes.push(b);
    } while (v > 0n);
  }
  private zigzag(n: number): void {
    this.varint(n >= 0 ? 2 * n : -2 * n - 1);
  }
  private header(id: number, type: number): void {
    const delta = id - this.last[this.last.length - 1]!;
    if (delta > 0 && delta <= 15) this.bytes.push((delta << 4) | type);
    else {
      this.bytes.push(type);
      this.zigzag(id);
    }
    this.last[this.last.length - 1] = id;
  }
  i32(id: number, v: number): this {
    this.header(id, 5);
    this.zigzag(v);
    return this;
  }
  i64(id: number, v: number): this {
    this.header(id, 6);
    this.zigzag(v);
    return this;
  }
  str(id: number, s: string): this {
    this.header(id, 8);
    const b = Buffer.from(s, 'utf8');
    this.varint(b.length);
    this.bytes.push(...b);
    return this;
  }
  struct(id: number, fill: (t: this) => void): this {
    this.header(id, 12);
    this.last.push(0);
    fill(this);
    this.bytes.push(0);
    this.last.pop();
    return this;
  }
  private listHeader(n: number, type: number): void {
    if (n < 15) this.bytes.push((n << 4) | type);
    else {
      this.bytes.push(0xf0 | type);
      this.varint(n);
    }
  }
  listStruct<T>(id: number, items: T[], fill: (t: this, x: T) => void): this {
    this.header(id, 9);
    this.listHeader(items.length, 12);
    for (const x of items) {
      this.last.push(0);
      fill(this, x);
      this.bytes.push(0);
      this.last.pop();
    }
    return this;
  }
  listI32(id: number, xs: number[]): this {
    this.header(id, 9);
    this.listHeader(xs.length, 5);
    for (const x of xs) this.zigzag(x);
    return this;
  }
  listStr(id: number, xs: string[]): this {
    this.header(id, 9);
    this.listHeader(xs.length, 8);
    for (const x of xs) {
      const b = Buffer.from(x, 'utf8');
      this.varint(b.length);
      this.bytes.push(...b);
    }
    return this;
  }
  end(): number[] {
    this.bytes.push(0);
    return this.bytes;
  }
}

/** RLE / bit-packing hybrid of levels, as RLE runs only, with the 4-byte length prefix of data page v1. */
function levels(values: number[], maxLevel: number): number[] {
  const width = Math.ceil(Math.log2(maxLevel + 1));
  const bytesPer = Math.ceil(width / 8);
  const out = new Thrift();
  for (let i = 0; i < values.length; ) {
    let j = i;
    while (j < values.length && values[j] === values[i]) j++;
    out.varint((j - i) << 1);
    for (let b = 0; b < bytesPer; b++) out.bytes.push((values[i]! >> (8 * b)) & 0xff);
    i = j;
  }
  const len = out.bytes.length;
  return [len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >>> 24, ...out.bytes];
}

interface Column {
  path: string[];
  maxDef: number;
  maxRep: number;
  rep: number[];
  def: number[];
  values: string[];
}

type Row = { id?: string; prompt?: string; messages?: { role: string; content: string }[] | null };

/** A Parquet file with optional columns id (string), prompt (string) and messages (list<struct<role, content>>). */
function writeParquet(path: string, rows: Row[]): void {
  const flat = (name: string): Column => {
    const c: Column = { path: [name], maxDef: 1, maxRep: 0, rep: [], def: [], values: [] };
    for (const r of rows) {
      const v = (r as Record<string, unknown>)[name];
      if (typeof v === 'string') {
        c.def.push(1);
        c.values.push(v);
      } else c.def.push(0);
    }
    return c;
  };
  const nested = (field: 'role' | 'content'): Column => {
    const c: Column = { path: ['messages', 'list', 'element', field], maxDef: 4, maxRep: 1, rep: [], def: [], values: [] };
    for (const r of rows) {
      const ms = r.messages;
      if (ms === undefined || ms === null) {
        c.rep.push(0);
        c.def.push(0);
      } else if (ms.length === 0) {
        c.rep.push(0);
        c.def.push(1);
      } else {
        ms.forEach((m, i) => {
          c.rep.push(i === 0 ? 0 : 1);
          c.def.push(4);
          c.values.push(m[field]);
        });
      }
    }
    return c;
  };
  const cols = [flat('id'), flat('prompt'), nested('role'), nested('content')];
  const file: number[] = [...Buffer.from('PAR1')];
  const metas: { col: Column; offset: number; size: number }[] = [];
  for (const col of cols) {
    const data: number[] = [];
    if (col.maxRep > 0) data.push(...levels(col.rep, col.maxRep));
    data.push(...levels(col.def, col.maxDef));
    for (const v of col.values) {
      const b = Buffer.from(v, 'utf8');
      data.push(b.length & 0xff, (b.length >> 8) & 0xff, (b.length >> 16) & 0xff, b.length >>> 24, ...b);
    }
    const header = new Thrift()
      .i32(1, 0)
      .i32(2, data.length)
      .i32(3, data.length)
      .struct(5, (t) => t.i32(1, col.def.length).i32(2, 0).i32(3, 3).i32(4, 3))
      .end();
    metas.push({ col, offset: file.length, size: header.length + data.length });
    file.push(...header, ...data);
  }
  type El = { name: string; type?: number; rep?: number; children?: number; converted?: number };
  const schema: El[] = [
    { name: 'schema', children: 3 },
    { name: 'id', type: 6, rep: 1, converted: 0 },
    { name: 'prompt', type: 6, rep: 1, converted: 0 },
    { name: 'messages', rep: 1, children: 1, converted: 3 },
    { name: 'list', rep: 2, children: 1 },
    { name: 'element', rep: 1, children: 2 },
    { name: 'role', type: 6, rep: 1, converted: 0 },
    { name: 'content', type: 6, rep: 1, converted: 0 },
  ];
  const meta = new Thrift()
    .i32(1, 1)
    .listStruct(2, schema, (t, e) => {
      if (e.type !== undefined) t.i32(1, e.type);
      if (e.rep !== undefined) t.i32(3, e.rep);
      t.str(4, e.name);
      if (e.children !== undefined) t.i32(5, e.children);
      if (e.converted !== undefined) t.i32(6, e.converted);
    })
    .i64(3, rows.length)
    .listStruct(4, [0], (t) => {
      t.listStruct(1, metas, (t2, m) => {
        t2.i64(2, m.offset).struct(3, (t3) => {
          t3.i32(1, 6).listI32(2, [0, 3]).listStr(3, m.col.path).i32(4, 0).i64(5, m.col.def.length).i64(6, m.size).i64(7, m.size).i64(9, m.offset);
        });
      });
      t.i64(2, metas.reduce((a, m) => a + m.size, 0)).i64(3, rows.length);
    })
    .end();
  const len = meta.length;
  file.push(...meta, len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >>> 24, ...Buffer.from('PAR1'));
  writeFileSync(path, Buffer.from(file));
}

// ---- tests ----

test('JSONL prompts: prompt, messages (trailing assistant turns dropped), instruction, ids', async () => {
  const dir = tempDir('prompts');
  try {
    const f = join(dir, 'p.jsonl');
    writeFileSync(
      f,
      [
        JSON.stringify({ prompt: 'Hello', id: 'a' }),
        '',
        JSON.stringify({ messages: [{ role: 'user', content: 'Q?' }, { role: 'assistant', content: 'the answer' }], prompt_id: 'h1' }),
        JSON.stringify({ prompt: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }] }),
        JSON.stringify({ instruction: 'List three colours.', source_index: 7 }),
      ].join('\n') + '\n',
    );
    const recs = await readPromptFile(f);
    assert.deepEqual(recs, [
      { index: 0, id: 'a', prompt: 'Hello' },
      { index: 1, id: 'h1', prompt: [{ role: 'user', content: 'Q?' }] },
      { index: 2, prompt: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }] },
      { index: 3, id: 7, prompt: 'List three colours.' },
    ]);
    assert.equal(plainPromptText(recs[1]!.prompt), 'Q?');
    assert.equal(plainPromptText(recs[2]!.prompt), 'system: Be brief.\n\nuser: Hi');
  } finally {
    removeDir(dir);
  }
});

test('a malformed prompts line is an error naming the file and the line', async () => {
  const dir = tempDir('prompts-bad');
  try {
    const f = join(dir, 'bad.jsonl');
    writeFileSync(f, '{"prompt": "ok"}\n\n{"prompt": "also ok"}\n{broken\n');
    await assert.rejects(readPromptFile(f), (e: Error) => e instanceof PromptFileError && /bad\.jsonl:4: not valid JSON/.test(e.message));
    writeFileSync(f, '{"prompt": "ok"}\n{"text": "no prompt field"}\n');
    await assert.rejects(readPromptFile(f), /bad\.jsonl:2: expected "prompt"/);
    writeFileSync(f, '{"messages": [{"role": "user"}]}\n');
    await assert.rejects(readPromptFile(f), /bad\.jsonl:1: messages\[0\] must be an object with string "role" and "content"/);
    writeFileSync(f, '{"messages": [{"role": "assistant", "content": "only an answer"}]}\n');
    await assert.rejects(readPromptFile(f), /bad\.jsonl:1: "messages" has no message before the assistant's answer/);
    await assert.rejects(readPromptFile(join(dir, 'missing.jsonl')), /missing\.jsonl: no such prompts file/);
  } finally {
    removeDir(dir);
  }
});

test('Parquet prompts (hyparquet): prompt strings and UltraFeedback-style messages lists', async () => {
  const dir = tempDir('prompts-pq');
  try {
    const f = join(dir, 'p.parquet');
    writeParquet(f, [
      { id: 'r0', prompt: 'Plain prompt' },
      { id: 'r1', messages: [{ role: 'user', content: 'What is 2 + 2?' }, { role: 'assistant', content: '4' }] },
      { prompt: 'Ünïcödé prompt ✓' },
    ]);
    const recs = await readPromptFile(f);
    assert.deepEqual(recs, [
      { index: 0, id: 'r0', prompt: 'Plain prompt' },
      { index: 1, id: 'r1', prompt: [{ role: 'user', content: 'What is 2 + 2?' }] },
      { index: 2, prompt: 'Ünïcödé prompt ✓' },
    ]);
    // A row with neither field names the row.
    writeParquet(f, [{ prompt: 'ok' }, { id: 'x' }]);
    await assert.rejects(readPromptFile(f), /p\.parquet: row 1: expected "prompt"/);
    // Not Parquet at all.
    writeFileSync(f, 'not parquet');
    await assert.rejects(readPromptFile(f), /p\.parquet: not a readable Parquet file/);
  } finally {
    removeDir(dir);
  }
});

test('the UltraFeedback samples read as prompts', { skip: existsSync(join(DATA, 'ultrafeedback_prompts_1200.jsonl')) ? false : `no data at ${DATA}` }, async () => {
  const prompts = await readPromptFile(join(DATA, 'ultrafeedback_prompts_1200.jsonl'));
  assert.equal(prompts.length, 1200);
  assert.equal(prompts[0]!.prompt, 'how to cook t-bone in the oven');
  assert.equal(prompts[0]!.id, 27808);
  const sample = await readPromptFile(join(DATA, 'ultrafeedback_binarized_sample_train1000.jsonl'));
  assert.equal(sample.length, 1000);
  assert.ok(sample.every((p) => typeof p.prompt === 'string' && p.prompt.length > 0));
});

test('split: seeded, disjoint, held-out eval prompts first, even chunks by default', () => {
  const s = splitPrompts(103, { iterations: 3, evalCount: 10, seed: 4 });
  assert.equal(s.eval.length, 10);
  assert.deepEqual(s.iterations.map((x) => x.length), [31, 31, 31]);
  const all = [...s.eval, ...s.iterations.flat()];
  assert.equal(new Set(all).size, all.length, 'disjoint');
  assert.ok(all.every((i) => i >= 0 && i < 103));
  assert.deepEqual(splitPrompts(103, { iterations: 3, evalCount: 10, seed: 4 }), s, 'deterministic');
  assert.notDeepEqual(splitPrompts(103, { iterations: 3, evalCount: 10, seed: 5 }).eval, s.eval, 'the seed matters');
  const fixed = splitPrompts(103, { iterations: 3, evalCount: 10, seed: 4, perIteration: 5 });
  assert.deepEqual(fixed.eval, s.eval, 'held-out prompts do not depend on the chunk size');
  assert.deepEqual(fixed.iterations.map((x) => x.length), [5, 5, 5]);
  assert.throws(() => splitPrompts(20, { iterations: 3, evalCount: 10, seed: 0, perIteration: 4 }), /needs 12 prompts, but only 10 remain/);
  assert.throws(() => splitPrompts(5, { iterations: 3, evalCount: 4, seed: 0 }), /fewer than one per iteration/);
});

const qwen = join(fixtureRoot, 'qwen2');
test('model prompt text: the chat template when there is one, else plain text', { skip: existsSync(join(qwen, 'tokenizer.json')) ? false : 'no qwen2 fixture' }, () => {
  const tok = Tokenizer.fromFolder(qwen);
  const tpl = ChatTemplate.fromFolder(qwen, { specialTokens: tok.specialTokens });
  assert.equal(modelPromptText('Hi', tpl), '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(modelPromptText('Hi', undefined), 'Hi');
  assert.equal(modelPromptText('Hi', tpl, true), 'Hi');
  assert.equal(modelPromptText([{ role: 'user', content: 'Hi' }], undefined), 'Hi');
});
