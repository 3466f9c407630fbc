// TRL's dataset formats read by `sppo train` and `sppo sft` (src/sppo/pairs_file.ts, src/sppo/sft.ts), tokenized as
// TRL 1.13's DPOTrainer and SFTTrainer tokenize them: test/fixtures/trl/formats.json holds the ids TRL prepared from
// the same records (scripts/trl-formats-fixture.py), and pref_conv.parquet the records as `datasets` writes Parquet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPairs, tokenizePairs } from '../src/sppo/pairs_file.js';
import { readSftData, sftLoss, tokenizeSft, trainedTokens } from '../src/sppo/sft.js';
import { loadModel } from '../src/models/registry.js';
import * as torch from '../src/torch/index.js';
import { FWD32 } from './helpers/tolerances.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { ChatTemplate, responseIdsAfterIds } from '../src/text/chat_template.js';
import { forEachJsonl } from '../src/util/files.js';
import { projectRoot } from './helpers/fixtures.js';
import { sppoCli, sppoOk } from './helpers/cli.js';
import { hubFiles, layoutCache } from './helpers/hub_fixture.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

interface Formats {
  records: Record<string, Record<string, unknown>[]>;
  real?: Record<string, { package: string; sft_multi_turns: { input_ids: number[]; loss_mask: number[] }[] }>;
  models: Record<string, {
    dpo_conversational: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
    dpo_implicit: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
    sft_conversational: { input_ids: number[]; loss_mask: number[] }[];
    sft_multi_messages: { input_ids: number[]; loss_mask: number[] }[];
    sft_multi_turns: { input_ids: number[]; loss_mask: number[] }[];
  }>;
}

const fixtures = join(projectRoot, 'test', 'fixtures', 'trl');
const fx = JSON.parse(readFileSync(join(fixtures, 'formats.json'), 'utf8')) as Formats;
const skip = Object.keys(fx.models).every((m) => existsSync(join(fixtureRoot, m, 'tokenizer.json'))) ? false : `no hf-tiny fixtures at ${fixtureRoot}`;

const jsonl = (path: string, rows: unknown[]): string => (writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n'), path);

function load(name: string): { tok: Tokenizer; template: ChatTemplate } {
  const tok = Tokenizer.fromFolder(join(fixtureRoot, name));
  return { tok, template: ChatTemplate.fromFolder(join(fixtureRoot, name), { specialTokens: tok.specialTokens }) };
}

test('conversational and implicit-prompt preference pairs (JSONL, a JSON array, the Hub\'s Parquet) give TRL 1.13 DPOTrainer\'s ids', { skip }, async () => {
  const dir = tempDir('trl-formats');
  try {
    for (const [name, want] of Object.entries(fx.models)) {
      const { tok, template } = load(name);
      const files: [string, keyof typeof want][] = [
        [jsonl(join(dir, 'conv.jsonl'), fx.records.dpo_conversational!), 'dpo_conversational'],
        [jsonl(join(dir, 'implicit.jsonl'), fx.records.dpo_implicit!), 'dpo_implicit'],
        [(writeFileSync(join(dir, 'conv.json'), JSON.stringify(fx.records.dpo_conversational, null, 1)), join(dir, 'conv.json')), 'dpo_conversational'],
        [join(fixtures, 'pref_conv.parquet'), 'dpo_conversational'],
      ];
      for (const [file, kind] of files) {
        const got = tokenizePairs(tok, await readPairs(file, 'dpo'), true, template);
        const expected = want[kind] as Formats['models'][string]['dpo_conversational'];
        assert.equal(got.length, expected.length);
        got.forEach((e, i) => {
          assert.deepEqual(e.promptIds, expected[i]!.prompt_ids, `${name} ${file} ${i}: prompt`);
          assert.deepEqual(e.chosenIds, expected[i]!.chosen_ids, `${name} ${file} ${i}: chosen`);
          assert.deepEqual(e.rejectedIds, expected[i]!.rejected_ids, `${name} ${file} ${i}: rejected`);
        });
      }
    }
  } finally {
    removeDir(dir);
  }
});

test('conversational prompt-completion SFT data gives TRL 1.13 SFTTrainer\'s ids and loss mask', { skip }, async () => {
  const dir = tempDir('trl-sft');
  try {
    for (const [name, want] of Object.entries(fx.models)) {
      const { tok, template } = load(name);
      const got = tokenizeSft(tok, template, await readSftData(jsonl(join(dir, 'sft.jsonl'), fx.records.sft_conversational!)));
      got.forEach((e, i) => {
        const w = want.sft_conversational[i]!;
        assert.deepEqual([...e.promptIds, ...e.responseIds], w.input_ids, `${name} ${i}`);
        assert.equal(e.promptIds.length, w.loss_mask.indexOf(1), `${name} ${i}: the loss starts after the prompt`);
        assert.ok(w.loss_mask.slice(e.promptIds.length).every((x) => x === 1));
      });
    }
  } finally {
    removeDir(dir);
  }
});

/** Each fixture template's end-of-turn token (what the model emits before it stops). */
const TERMINATOR: Record<string, string> = { qwen2: '<|im_end|>', gemma2: '<end_of_turn>' };

test('multi-turn "messages": every assistant turn trains, in its context: the ids are TRL 1.13 SFTTrainer\'s for the whole conversation, the trained tokens those of TRL\'s prompt-completion split at each assistant turn, through the turn\'s terminator; --assistant-turns last keeps the earlier turns as prompt', { skip }, async () => {
  const dir = tempDir('trl-multi');
  try {
    for (const [name, want] of Object.entries(fx.models)) {
      const { tok, template } = load(name);
      const [end] = tok.encode(TERMINATOR[name]!, { addSpecialTokens: false });
      const file = jsonl(join(dir, 'multi.jsonl'), fx.records.sft_multi_messages!);
      const lines = await readSftData(file);
      const got = tokenizeSft(tok, template, lines);
      const last = tokenizeSft(tok, template, lines, { assistantTurns: 'last' });
      let split = 0;
      got.forEach((e, i) => {
        const whole = want.sft_multi_messages[i]!.input_ids;
        assert.deepEqual([...e.promptIds, ...e.responseIds], whole, `${name} ${i}: the ids`);
        const trained = new Array<number>(whole.length).fill(0);
        e.responseMask!.forEach((m, j) => (trained[e.promptIds.length + j] = m));
        // TRL's split at each assistant turn: its ids are the whole's start, its loss mask the turn; sppo stops at the terminator.
        const expected = new Array<number>(whole.length).fill(0);
        const turns = (fx.records.sft_multi_messages![i]!.messages as { role: string }[]).filter((m) => m.role === 'assistant').length;
        for (let k = 0; k < turns; k++, split++) {
          const s = want.sft_multi_turns[split]!;
          assert.deepEqual(s.input_ids, whole.slice(0, s.input_ids.length), `${name} ${i}: TRL's split ${k} is the conversation's start`);
          const from = s.loss_mask.indexOf(1);
          const stop = s.input_ids.indexOf(end!, from);
          assert.ok(stop >= from, `${name} ${i}: turn ${k} ends with ${TERMINATOR[name]}`);
          for (let j = from; j <= stop; j++) expected[j] = 1;
        }
        assert.deepEqual(trained, expected, `${name} ${i}: the trained tokens`);
        assert.ok(turns >= 2 && trainedTokens(e) > trainedTokens(last[i]!), 'the earlier turns train too');
        // --assistant-turns last: the same ids, the earlier turns prompt, the last turn's tokens trained as before.
        const l = last[i]!;
        assert.deepEqual([...l.promptIds, ...l.responseIds], whole);
        const lastTurn = whole.slice(expected.lastIndexOf(0, expected.lastIndexOf(1)) + 1, expected.lastIndexOf(1) + 1);
        assert.equal(l.promptIds.length, expected.lastIndexOf(0, expected.lastIndexOf(1)) + 1, `${name} ${i}: the earlier turns are prompt`);
        assert.deepEqual(l.responseIds.filter((_, j) => (l.responseMask ?? [])[j] === 1), lastTurn, `${name} ${i}: the last turn alone`);
      });
      assert.equal(split, want.sft_multi_turns.length);
      // --no-eos: the terminators stay in the ids, as context, and no turn is trained to end.
      tokenizeSft(tok, template, lines, { appendEos: false }).forEach((e, i) => {
        assert.deepEqual([...e.promptIds, ...e.responseIds], want.sft_multi_messages[i]!.input_ids);
        assert.ok(e.responseIds.some((id) => id === end) && e.responseIds.every((id, j) => id !== end || e.responseMask![j] === 0), `${name} ${i}: --no-eos`);
      });
    }
    // The loss is the mean over the trained tokens only: by hand from one forward pass of the tiny Qwen2.
    const { tok, template } = load('qwen2');
    const [e] = tokenizeSft(tok, template, await readSftData(jsonl(join(dir, 'one.jsonl'), [fx.records.sft_multi_messages![1]!])));
    const model = loadModel(join(fixtureRoot, 'qwen2'), { dtype: 'float32', device: 'cpu' });
    try {
      const ids = [...e!.promptIds, ...e!.responseIds];
      const byHand = torch.tidy(() => {
        const lp = torch.noGrad(() => model.forward({ inputIds: torch.tensor([ids.map(BigInt)]) })).logSoftmax(-1);
        let sum = 0;
        e!.responseMask!.forEach((m, j) => {
          const t = e!.promptIds.length + j;
          if (m) sum -= lp.select(0, 0).select(0, t - 1).select(0, ids[t]!).item();
        });
        return sum / trainedTokens(e!);
      });
      const got = sftLoss(model, [e!]);
      assert.ok(Math.abs(got - byHand) <= FWD32 * Math.abs(byHand), `sftLoss ${got} vs by hand ${byHand}`);
    } finally {
      model.dispose();
    }
    // A template that renders earlier turns differently once later ones follow (as templates dropping past reasoning do).
    const dropping = new ChatTemplate("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' and not loop.last %}[earlier]{% else %}{{ m['content'] }}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}", tok.specialTokens);
    // Each assistant turn then trains in its own sequence: the conversation up to it, as the template renders it then.
    const logs: string[] = [];
    const conv = lines0(fx)[0]!.conversation;
    const perTurn = tokenizeSft(tok, dropping, lines0(fx), { log: (l) => logs.push(l) });
    const turnAt = conv.flatMap((m, k) => (m.role === 'assistant' ? [k] : []));
    assert.equal(perTurn.length, turnAt.length);
    perTurn.forEach((e, n) => {
      const through = tok.encode(dropping.render(conv.slice(0, turnAt[n]! + 1)), { addSpecialTokens: false });
      assert.deepEqual([...e.promptIds, ...e.responseIds], through, `turn ${n}: the conversation up to it`);
      assert.deepEqual(e.promptIds, tok.encode(dropping.render(conv.slice(0, turnAt[n]!), { addGenerationPrompt: true }), { addSpecialTokens: false }));
      assert.equal(tok.decode(e.responseIds.filter((_, j) => e.responseMask![j] === 1)), `${conv[turnAt[n]!]!.content}<|im_end|>`);
    });
    assert.match(logs.join('\n'), /1 conversation\(s\) \(.*multi\.jsonl:1\): the chat template renders earlier turns differently .* each assistant turn trains in its own sequence.*\(2 sequences from 1 records\)/);
    // A template whose answer does not even follow its own prompt cannot be split: an error naming the record and message.
    const broken = new ChatTemplate("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}", tok.specialTokens);
    assert.throws(() => tokenizeSft(tok, broken, lines0(fx)), /multi\.jsonl:1: message 2 \(assistant\): the chat template renders the conversation up to this answer so that it does not start with the conversation before it and the generation prompt/);
    // The command: a bad --assistant-turns is a usage error.
    const multi = jsonl(join(dir, 'cli.jsonl'), fx.records.sft_multi_messages!);
    const bad = sppoCli(['sft', '--model', join(fixtureRoot, 'qwen2'), '--data', multi, '--out', join(dir, 'o1'), '--assistant-turns', 'both']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--assistant-turns: expected all or last, got "both"/);
    const last = sppoOk(['sft', '--model', join(fixtureRoot, 'qwen2'), '--data', multi, '--out', join(dir, 'o2'), '--assistant-turns', 'last', '--batch-size', '2', '--lr', '1e-4']);
    assert.ok(existsSync(join(dir, 'o2', 'model.safetensors')), last.stderr);
  } finally {
    removeDir(dir);
  }

  function lines0(f: Formats) {
    return [{ prompt: [], response: '', where: join(dir, 'multi.jsonl') + ':1', conversation: f.records.sft_multi_messages![0]!.messages as { role: string; content: string }[] }];
  }
});

const models = (await import(join(projectRoot, 'scripts/text-conformance-models.mjs'))) as { writeModelFolder: (name: string, out: string) => string | undefined; packageModels: (pkg: string) => string | undefined };

test('multi-turn "messages" with Qwen3\'s real chat template (not prefix-preserving: it drops earlier answers\' reasoning): each assistant turn trains in its own sequence, TRL 1.13 SFTTrainer\'s prompt-completion split at that turn, through <|im_end|>', { skip: fx.real?.qwen3 && models.packageModels(fx.real.qwen3.package) ? false : 'the Qwen3 tokenizer package (a devDependency) is not installed' }, async () => {
  const dir = tempDir('trl-qwen3');
  try {
    const folder = models.writeModelFolder('qwen3', dir)!;
    const tok = Tokenizer.fromFolder(folder);
    const template = ChatTemplate.fromFolder(folder, { specialTokens: tok.specialTokens });
    const [end] = tok.encode('<|im_end|>', { addSpecialTokens: false });
    const lines = await readSftData(jsonl(join(dir, 'multi.jsonl'), fx.records.sft_multi_messages!));
    const logs: string[] = [];
    const got = tokenizeSft(tok, template, lines, { log: (l) => logs.push(l) });
    const want = fx.real!.qwen3!.sft_multi_turns;
    assert.equal(got.length, want.length, 'one sequence per assistant turn');
    got.forEach((e, k) => {
      assert.deepEqual([...e.promptIds, ...e.responseIds], want[k]!.input_ids, `turn ${k}: TRL's ids`);
      const from = want[k]!.loss_mask.indexOf(1);
      const stop = want[k]!.input_ids.indexOf(end!, from);
      const expected = want[k]!.input_ids.map((_, j) => (j >= from && j <= stop ? 1 : 0));
      const trained = [...e.promptIds.map(() => 0), ...e.responseMask!];
      assert.deepEqual(trained, expected, `turn ${k}: TRL's trained tokens through <|im_end|>`);
      assert.match(tok.decode(e.responseIds), /^<think>\n\n<\/think>\n\n/, 'the answer carries its (empty) reasoning block, as Qwen3 renders the last answer');
    });
    // Earlier answers are rendered without it in a later turn's context, as at inference.
    assert.ok(!tok.decode(got[1]!.promptIds).includes('<think>'));
    assert.match(logs.join('\n'), /2 conversation\(s\).*not prefix-preserving.*\(5 sequences from 2 records\)/);
    // --assistant-turns last: one sequence per conversation, TRL's split at its last turn.
    const last = tokenizeSft(tok, template, lines, { assistantTurns: 'last' });
    const turns = fx.records.sft_multi_messages!.map((r) => (r.messages as { role: string }[]).filter((m) => m.role === 'assistant').length);
    let at = 0;
    const lastSplit = turns.map((n) => want[(at += n) - 1]!);
    last.forEach((e, i) => assert.deepEqual([...e.promptIds, ...e.responseIds], lastSplit[i]!.input_ids, `conversation ${i}: its last turn's split`));
  } finally {
    removeDir(dir);
  }
});

test('text pairs and text SFT records: a response is tokenized as it follows its prompt (TRL\'s rule for text data), so a text pair rendered with the template trains the tokens of the conversational pair (Gemma: no word boundary at the response\'s start)', { skip }, async () => {
  const dir = tempDir('trl-text-context');
  try {
    for (const [name, want] of Object.entries(fx.models)) {
      const { tok, template } = load(name);
      const [end] = tok.encode(TERMINATOR[name]!, { addSpecialTokens: false });
      const rec = fx.records.dpo_conversational![0]! as { prompt: { role: string; content: string }[]; chosen: { content: string }[]; rejected: { content: string }[] };
      const rendered = template.render(rec.prompt, { addGenerationPrompt: true });
      const [e] = tokenizePairs(tok, [{ prompt: rendered, chosen: rec.chosen[0]!.content, rejected: rec.rejected[0]!.content, where: 'x' }], true, template);
      const conv = want.dpo_conversational[0]!;
      const upTo = (ids: number[]): number[] => ids.slice(0, ids.indexOf(end!) + 1);
      assert.deepEqual(e!.promptIds, conv.prompt_ids, `${name}: the prompt`);
      assert.deepEqual(e!.chosenIds, upTo(conv.chosen_ids), `${name}: chosen, as in the conversation`);
      assert.deepEqual(e!.rejectedIds, upTo(conv.rejected_ids), `${name}: rejected, as in the conversation`);
      const [s] = tokenizeSft(tok, template, await readSftData(jsonl(join(dir, `${name}.jsonl`), [{ prompt: rec.prompt[0]!.content, response: rec.chosen[0]!.content }])));
      assert.deepEqual([s!.promptIds, s!.responseIds], [conv.prompt_ids, upTo(conv.chosen_ids)], `${name}: the SFT record`);
      // A remote server's text-only response, re-tokenized after the prompt's ids (remote_generation.ts): the same.
      assert.deepEqual(responseIdsAfterIds(tok, conv.prompt_ids, rec.chosen[0]!.content), upTo(conv.chosen_ids).slice(0, -1), `${name}: re-tokenized after the prompt's ids`);
      // Encoded alone, Gemma's tokenizer starts the response with a word boundary the conversation does not have.
      const alone = tok.encode(rec.chosen[0]!.content, { addSpecialTokens: false });
      if (name === 'gemma2') assert.notEqual(alone[0], conv.chosen_ids[0], 'gemma2: the response alone starts otherwise');
    }
  } finally {
    removeDir(dir);
  }
});

test('the official SPPO pipeline\'s scored pairs (uclaml/SPPO compute_prob.py\'s train.parquet, written by pandas) train with the sppo loss: chosen_probs_win / _lose are the win rates, chosen_probs P(y_w > y_l)', { skip }, async () => {
  const file = join(fixtures, 'sppo_official.parquet');
  const pairs = await readPairs(file, 'sppo');
  const conv = fx.records.dpo_conversational! as { prompt: unknown[]; chosen: unknown[]; rejected: unknown[] }[];
  assert.equal(pairs.length, conv.length);
  const probs = [[0.71, 0.64, 0.88], [0.62, 0.57, 0.7], [0.41, 0.45, 0.3]];
  pairs.forEach((p, i) => {
    assert.deepEqual([p.prompt, p.chosen, p.rejected], [conv[i]!.prompt, conv[i]!.chosen, conv[i]!.rejected], `pair ${i}: the implicit prompt`);
    assert.deepEqual([p.chosenOverRejected, p.chosenWinRate, p.rejectedWinRate], [probs[0]![i], probs[1]![i], probs[2]![i]], `pair ${i}: the probabilities`);
  });
  const { tok, template } = load('qwen2');
  tokenizePairs(tok, pairs, true, template).forEach((e, i) => assert.deepEqual(e.chosenIds, fx.models.qwen2!.dpo_conversational[i]!.chosen_ids, `pair ${i}: TRL's ids`));
  const dir = tempDir('sppo-official');
  try {
    const r = sppoCli(['train', '--model', join(fixtureRoot, 'qwen2'), '--pairs', file, '--loss', 'sppo', '--out', join(dir, 'out'), '--batch-size', '3', '--lr', '1e-5']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'out', 'model.safetensors')));
  } finally {
    removeDir(dir);
  }
  // Without any of the names, the sppo loss says which it needs.
  await assert.rejects(readPairs(join(fixtures, 'pref_conv.parquet'), 'sppo'), /"chosen_win_rate" \(or "chosen_probs_win", the official SPPO pipeline's name\) is required by the sppo loss/);
});

test('text pairs: a response already ending its turn (TRL-rendered "...<|im_end|>\\n") gets no second terminator; mixed and TRL-less forms are refused naming the record', { skip }, async () => {
  const dir = tempDir('trl-text');
  try {
    const { tok, template } = load('qwen2');
    const end = tok.encode('<|im_end|>', { addSpecialTokens: false });
    assert.equal(end.length, 1);
    const file = jsonl(join(dir, 'p.jsonl'), [{ prompt: 'p', chosen: 'It is blue.<|im_end|>\n', rejected: 'It is green.' }]);
    const [e] = tokenizePairs(tok, await readPairs(file, 'dpo'), true, template);
    assert.deepEqual(e!.chosenIds, tok.encode('It is blue.<|im_end|>\n', { addSpecialTokens: false }));
    assert.equal(e!.chosenIds.filter((t) => t === end[0]).length, 1);
    assert.deepEqual(e!.rejectedIds, [...tok.encode('It is green.', { addSpecialTokens: false }), end[0]]);
    // Standard implicit prompt: the shared text start, a trailing space left to the responses (TRL's extract_prompt).
    const imp = await readPairs(jsonl(join(dir, 'i.jsonl'), [{ chosen: 'Q: sky? A: blue', rejected: 'Q: sky? A: green' }]), 'dpo');
    assert.deepEqual([imp[0]!.prompt, imp[0]!.chosen, imp[0]!.rejected], ['Q: sky? A:', ' blue', ' green']);
    await assert.rejects(readPairs(jsonl(join(dir, 'm.jsonl'), [{ prompt: 'p', chosen: [{ role: 'assistant', content: 'a' }], rejected: [{ role: 'assistant', content: 'b' }] }]), 'dpo'), /m\.jsonl:1: "prompt", "chosen" and "rejected" must all be texts or all lists of messages/);
    await assert.rejects(readPairs(jsonl(join(dir, 'w.jsonl'), [fx.records.dpo_conversational![0]]), 'sppo'), /w\.jsonl:1: "chosen_win_rate" \(or "chosen_probs_win", the official SPPO pipeline.s name\) is required by the sppo loss \(TRL.s datasets have no win rates/);
    await assert.rejects(readSftData(jsonl(join(dir, 't.jsonl'), [{ text: 'a whole document' }])), /t\.jsonl:1: "text" \(language-modelling data\) is not read/);
    // Without a chat template, a conversational pair cannot be rendered.
    assert.throws(() => tokenizePairs(tok, [{ prompt: [{ role: 'user', content: 'q' }], chosen: [{ role: 'assistant', content: 'a' }], rejected: [{ role: 'assistant', content: 'b' }], where: 'x.jsonl:3' }], true), /x\.jsonl:3: a conversational pair needs the model's chat template/);
    // Readers of JSONL name a Parquet file and a JSON array spread over lines as such.
    assert.throws(() => forEachJsonl(join(fixtures, 'pref_conv.parquet'), () => {}), /pref_conv\.parquet: a Parquet file, where JSONL \(one JSON object a line\) is read here/);
    writeFileSync(join(dir, 'arr.json'), JSON.stringify([{ a: 1 }, { a: 2 }], null, 2));
    assert.throws(() => forEachJsonl(join(dir, 'arr.json'), () => {}), /arr\.json: a JSON array spread over lines/);
  } finally {
    removeDir(dir);
  }
});

test('sppo train --pairs on the Hub\'s Parquet of conversational pairs (a file, and a data set by name from the Hugging Face cache), and sppo sft on conversational prompt-completion data, as a user runs them', { skip }, () => {
  const dir = tempDir('trl-cli');
  try {
    const model = join(fixtureRoot, 'qwen2');
    const out = sppoOk(['train', '--model', model, '--pairs', join(fixtures, 'pref_conv.parquet'), '--loss', 'dpo', '--batch-size', '3', '--epochs', '1', '--device', 'cpu', '--out', join(dir, 'dpo')]);
    assert.match(out.stderr + out.stdout, /3 pairs|1 step/);
    assert.ok(existsSync(join(dir, 'dpo', 'model.safetensors')));
    // By name, as TRL's --dataset_name: the split's Parquet file in a cache laid out as huggingface_hub lays it out.
    const src = join(dir, 'ds');
    mkdirSync(join(src, 'data'), { recursive: true });
    copyFileSync(join(fixtures, 'pref_conv.parquet'), join(src, 'data', 'train_prefs-00000-of-00001.parquet'));
    const cache = join(dir, 'hub');
    layoutCache(cache, 'trl-lib/tiny-prefs', hubFiles(src), { type: 'dataset' });
    const env = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
    const byName = ['train', '--model', model, '--pairs', 'trl-lib/tiny-prefs', '--loss', 'dpo', '--batch-size', '3', '--epochs', '1', '--device', 'cpu'];
    const r = sppoCli([...byName, '--split', 'train_prefs', '--out', join(dir, 'dpo-hub')], { env });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'dpo-hub', 'model.safetensors')));
    // The same pairs, the same training: the same weights as from the file.
    assert.deepEqual(readFileSync(join(dir, 'dpo-hub', 'model.safetensors')), readFileSync(join(dir, 'dpo', 'model.safetensors')));
    const missing = sppoCli([...byName, '--split', 'test', '--out', join(dir, 'x')], { env });
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /--pairs: dataset trl-lib\/tiny-prefs, split 'test': the cached snapshot .* has no Parquet file of that split/);
    sppoOk(['sft', '--model', model, '--data', jsonl(join(dir, 'sft.jsonl'), fx.records.sft_conversational!), '--batch-size', '3', '--epochs', '1', '--device', 'cpu', '--out', join(dir, 'sft')]);
    assert.ok(existsSync(join(dir, 'sft', 'model.safetensors')));
  } finally {
    removeDir(dir);
  }
});
