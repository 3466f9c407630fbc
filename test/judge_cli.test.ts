// `sppo judge`: generations in (plain or `sppo generate` lines), one line per prompt out with the matrix and the win
// rates, written atomically; errors naming file:line; bad specs as usage errors. The command runs as a process, as
// a user runs it; the generation lines are read by the library's readGenerations (src/sppo/generations.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readGenerations } from '../src/sppo/generations.js';
import { sppoFails, sppoOk } from './helpers/cli.js';
import { removeDir, tempDir } from './text_helpers.js';

const JUDGE = `export const positionBiased = false;
export default ({ a, b }) => 1 / (1 + Math.exp(-(a.length - b.length)));`;

test('sppo judge: matrix and win rates per prompt, generate lines grouped by prompt', async () => {
  const dir = tempDir('judge-cli');
  try {
    writeFileSync(join(dir, 'j.mjs'), JUDGE);
    const gens = join(dir, 'g.jsonl');
    writeFileSync(gens, [
      JSON.stringify({ prompt_id: 'p1', prompt: 'Q1', responses: ['a', 'bbb', 'cc'] }),
      '',
      // `sppo generate` lines: responses as objects; the same id twice is one prompt with 2 + 1 responses.
      JSON.stringify({ id: 7, prompt: 'Q2', prompt_text: '<user>Q2', responses: [{ text: 'xy', token_ids: [1, 2], logprobs: [-1, -0.5] }, { text: 'x', token_ids: [1], logprobs: [-2] }] }),
      JSON.stringify({ id: 7, prompt: 'Q2', prompt_text: '<user>Q2', responses: [{ text: 'xyz', token_ids: [1, 2, 3], logprobs: [-1, -1, -1] }] }),
    ].join('\n') + '\n');
    const out = join(dir, 'prefs.jsonl');
    sppoOk(['judge', '--judge', join(dir, 'j.mjs'), '--generations', gens, '--out', out]);
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.equal(lines[0].prompt_id, 'p1');
    assert.deepEqual(lines[0].responses, ['a', 'bbb', 'cc']);
    const s = (x: number): number => 1 / (1 + Math.exp(-x));
    assert.ok(Math.abs(lines[0].matrix[1][0] - s(2)) < 1e-15);
    const k = 3;
    for (const l of lines) {
      const sum = l.win_rates.reduce((a: number, x: number) => a + x, 0);
      assert.ok(Math.abs(sum - k / 2) < 1e-12, 'win rates sum to K/2');
      l.win_rates.forEach((w: number, i: number) => assert.ok(Math.abs(w - l.matrix[i].reduce((a: number, x: number) => a + x, 0) / k) < 1e-15));
    }
    assert.equal(lines[1].prompt_id, 7);
    assert.deepEqual(lines[1].responses, ['xy', 'x', 'xyz']);
    assert.equal(lines[1].prompt_text, '<user>Q2');
    assert.deepEqual(lines[1].ref_logprobs, [-1.5, -2, -3]);
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
  } finally {
    removeDir(dir);
  }
});

test('sppo judge: malformed lines name file:line; bad options are usage errors', async () => {
  const dir = tempDir('judge-cli');
  try {
    writeFileSync(join(dir, 'j.mjs'), JUDGE);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, JSON.stringify({ prompt: 'Q', responses: ['a'] }) + '\n{"prompt": "Q", "responses": [3]}\n');
    assert.throws(() => readGenerations(bad), /bad\.jsonl:2: responses\[0\] must be a string/);
    writeFileSync(bad, '{"prompt": "Q", "responses": ["a"]}\n\n{oops\n');
    assert.throws(() => readGenerations(bad), /bad\.jsonl:3: not valid JSON/);
    writeFileSync(bad, '{"responses": ["a"]}\n');
    assert.throws(() => readGenerations(bad), /bad\.jsonl:1: expected "prompt"/);
    const out = join(dir, 'o.jsonl');
    sppoFails(['judge', '--judge', '/nowhere', '--generations', bad, '--out', out], 2, /--judge/);
    sppoFails(['judge', '--judge', 'reward-model:/nowhere', '--generations', bad, '--out', out], 2, /does not exist/);
    sppoFails(['judge', '--generations', bad, '--out', out], 2, /--judge is required/);
    sppoFails(['judge', '--judge', join(dir, 'j.mjs'), '--generations', join(dir, 'none.jsonl'), '--out', out], 2, /--generations: .*none\.jsonl does not exist/);
    assert.throws(() => readGenerations(join(dir, 'none.jsonl')), /none\.jsonl does not exist/);
    // A judge failing midway leaves no output file behind.
    writeFileSync(join(dir, 'fail.mjs'), 'export default () => 2;');
    writeFileSync(bad, '{"prompt": "Q", "responses": ["a", "b"]}\n');
    sppoFails(['judge', '--judge', join(dir, 'fail.mjs'), '--generations', bad, '--out', out], 1, /fail\.mjs: query 0: returned 2/);
    assert.ok(!existsSync(out));
  } finally {
    removeDir(dir);
  }
});
