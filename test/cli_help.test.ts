// `sppo --help` lists every command, `setup` (bin/sppo.js's own) included, and each command's own --help works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sppoCli } from './helpers/cli.js';

test('sppo --help lists every command and setup; every listed command answers --help', () => {
  const r = sppoCli(['--help']);
  assert.equal(r.status, 0, r.stderr);
  const listed = [...r.stdout.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]!);
  for (const name of ['run', 'generate', 'judge', 'train', 'eval', 'bench', 'report', 'merge', 'sft', 'train-judge', 'serve', 'demo', 'game', 'setup']) {
    assert.ok(listed.includes(name), `${name} is listed: ${listed.join(', ')}`);
  }
  for (const name of listed.filter((n) => n !== 'setup')) {
    const h = sppoCli([name, '--help']);
    assert.equal(h.status, 0, `sppo ${name} --help: ${h.stderr}`);
    assert.match(h.stdout, new RegExp(`usage: sppo ${name}\\b`), `sppo ${name} --help starts with its usage`);
  }
});
