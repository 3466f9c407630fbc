// `sppo run` with generation.backend (src/sppo/remote_generation.ts, src/generate/server_process.ts): the
// loop starts `sppo serve` on each iteration's checkpoint (serverCommand) and generates through it, with
// generations.jsonl in the same format as in-process generation; two running servers, one SIGKILLed
// mid-generation, still give a finished run; a serverCommand that exits at once is an error naming the
// command and the last lines of its stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSppo } from '../src/sppo/loop.js';
import { ConfigError, parseConfig, type SppoConfigInput } from '../src/sppo/config.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const bin = fileURLToPath(new URL('../../bin/sppo.js', import.meta.url));
const model = join(fixtureRoot, 'llama');
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no llama fixture at ${model}`;

const JUDGE = `export const name = 'longer';
export const positionBiased = false;
export default function ({ a, b }) { return 1 / (1 + Math.exp(-(a.length - b.length) / 8)); }
`;

function setup(prefix: string, n: number): string {
  const dir = tempDir(prefix);
  writeFileSync(join(dir, 'judge.mjs'), JUDGE);
  writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: n }, (_, i) => JSON.stringify({ id: `p${i}`, prompt: `p${i} ${'cat '.repeat(i % 3)}` })).join('\n') + '\n');
  return dir;
}

function cfg(dir: string, iterations: number, perIteration: number, backend: Record<string, unknown> | undefined, runDir = 'run'): SppoConfigInput {
  return {
    model,
    prompts: join(dir, 'prompts.jsonl'),
    runDir: join(dir, runDir),
    judge: { kind: 'module', path: join(dir, 'judge.mjs') },
    iterations,
    seed: 1,
    device: 'cpu',
    promptsPerIteration: perIteration,
    generation: { k: 3, temperature: 1, topP: 1, maxNewTokens: 8, batchSize: 4, ...(backend ? { backend } : {}) },
    training: { loss: 'sppo', beta: 0.1, lr: 0.001, optimizer: 'adamw', batchSize: 4, maxLength: 64, maxPromptLength: 48, warmupRatio: 0 },
    eval: { count: 0 },
  } as SppoConfigInput;
}

const readJsonl = (p: string): Record<string, unknown>[] => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

const SERVE = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} serve {checkpoint} --port {port} --device cpu`;

test('config: generation.backend is checked, naming the field', () => {
  const base = { model: 'm', prompts: 'p.jsonl', runDir: 'r', judge: { kind: 'module', path: 'j.mjs' } };
  const bad = (backend: unknown, field: string): void => {
    assert.throws(() => parseConfig({ ...base, generation: { backend } }), (e: unknown) => e instanceof ConfigError && e.fields.includes(field), field);
  };
  bad({ kind: 'openai' }, 'generation.backend.urls');
  bad({ kind: 'openai', urls: ['http://a:1/v1'], serverCommand: 'x' }, 'generation.backend.urls');
  bad({ kind: 'openai', urls: ['not a url'] }, 'generation.backend.urls[0]');
  bad({ kind: 'vllm', urls: ['http://a:1/v1'] }, 'generation.backend.kind');
  bad({ kind: 'openai', urls: ['http://a:1/v1'], bogus: 1 }, 'generation.backend.bogus');
  bad({ kind: 'openai', serverCommand: 'x', servers: 0 }, 'generation.backend.servers');
  const c = parseConfig({ ...base, generation: { backend: { kind: 'openai', serverCommand: 'sppo serve {checkpoint} --port {port}' } } });
  assert.equal(c.generation.backend?.servers, 1);
  assert.equal(c.generation.backend?.concurrency, 8);
  assert.equal(parseConfig(base).generation.backend, undefined);
});

test("sppo run with serverCommand: sppo serve on each iteration's checkpoint; same generations format as in process; resumes", { skip, timeout: 120_000 }, async () => {
  const dir = setup('remote-run', 16);
  try {
    const logs: string[] = [];
    const res = await runSppo(cfg(dir, 2, 6, { kind: 'openai', serverCommand: SERVE, servers: 2, concurrency: 2, startTimeoutS: 60 }), { log: (l) => logs.push(l), progress: false });
    assert.equal(res.iterations.length, 2);
    const started = logs.filter((l) => l.includes('started 2 inference server(s)'));
    assert.equal(started.length, 2, logs.join('\n'));
    assert.ok(started[0]!.includes(`on ${model}`) && started[1]!.includes(join(dir, 'run', 'iter-1', 'checkpoint')), started.join('\n'));
    // The in-process run of iteration 1 for comparison (same prompts, same split).
    await runSppo({ ...cfg(dir, 1, 6, undefined, 'local') }, { log: () => {}, progress: false });
    const tok = Tokenizer.fromFolder(model);
    const remote = readJsonl(join(dir, 'run/iter-1/generations.jsonl'));
    const local = readJsonl(join(dir, 'local/iter-1/generations.jsonl'));
    assert.equal(remote.length, local.length);
    remote.forEach((r, i) => {
      const l = local[i]!;
      assert.deepEqual(Object.keys(r).sort(), Object.keys(l).sort());
      assert.equal(r.index, l.index);
      assert.deepEqual(r.prompt_ids, l.prompt_ids);
      const rs = r.responses as { text: string; token_ids: number[]; logprob: number; finish_reason: string }[];
      assert.equal(rs.length, 3);
      for (const x of rs) {
        assert.deepEqual(Object.keys(x).sort(), Object.keys((l.responses as object[])[0]!).sort());
        assert.ok(x.token_ids.length >= 1 && x.token_ids.length <= 8);
        assert.equal(x.text, tok.decode(x.token_ids, { skipSpecialTokens: true }));
        assert.ok(Number.isFinite(x.logprob) && x.logprob <= 0);
        assert.ok(['eos', 'stop', 'length'].includes(x.finish_reason));
      }
    });
    for (const t of [1, 2]) assert.ok(existsSync(join(dir, `run/iter-${t}/checkpoint/model.safetensors`)));
    // Resumed: nothing to redo, no server started.
    logs.length = 0;
    await runSppo(cfg(dir, 2, 6, { kind: 'openai', serverCommand: SERVE, servers: 2, concurrency: 2, startTimeoutS: 60 }), { log: (l) => logs.push(l), progress: false });
    assert.ok(!logs.some((l) => l.includes('inference server')), logs.join('\n'));
  } finally {
    removeDir(dir);
  }
});

function serve(): Promise<{ child: ChildProcess; url: string; requests: () => number }> {
  const child = spawn(process.execPath, [bin, 'serve', model, '--port', '0', '--device', 'cpu', '--log-requests'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      err += d;
      const m = /listening on [^\s]+:(\d+)/.exec(err);
      if (m) resolve({ child, url: `http://127.0.0.1:${m[1]}/v1`, requests: () => (err.match(/completions/g) ?? []).length });
    });
    child.on('exit', (code) => reject(new Error(`sppo serve exited (${code}): ${err}`)));
  });
}

test('sppo run with two urls, one server SIGKILLed mid-generation: the run finishes on the other', { skip, timeout: 120_000 }, async () => {
  const dir = setup('remote-kill', 24);
  const [a, b] = await Promise.all([serve(), serve()]);
  try {
    const logs: string[] = [];
    // b dies as soon as it has answered its first request (24 prompts in chunks of 4: most are still to come).
    const timer = setInterval(() => {
      if (b.requests() > 0 && b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGKILL');
    }, 5);
    let res;
    try {
      res = await runSppo(cfg(dir, 1, 24, { kind: 'openai', urls: [a.url, b.url], concurrency: 2 }), { log: (l) => logs.push(l), progress: false });
    } finally {
      clearInterval(timer);
    }
    assert.equal(b.child.signalCode ?? (await new Promise((r) => b.child.once('exit', (_c, s) => r(s)))), 'SIGKILL');
    assert.ok(logs.some((l) => l.includes(`inference server ${b.url} dropped`)), logs.join('\n'));
    assert.equal(res.iterations.length, 1);
    const gens = readJsonl(join(dir, 'run/iter-1/generations.jsonl'));
    assert.equal(gens.length, 24);
    for (const g of gens) assert.equal((g.responses as unknown[]).length, 3);
  } finally {
    for (const s of [a, b]) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    removeDir(dir);
  }
});

test('sppo run: a serverCommand that exits at once is an error naming the command and its stderr', { skip, timeout: 60_000 }, async () => {
  const dir = setup('remote-fail', 8);
  try {
    const command = `${JSON.stringify(process.execPath)} -e "console.error('loading weights'); console.error('CUDA out of memory: no device'); process.exit(3)" {port}`;
    await assert.rejects(runSppo(cfg(dir, 1, 4, { kind: 'openai', serverCommand: command, startTimeoutS: 30 }), { log: () => {}, progress: false }), (e: unknown) => {
      const m = (e as Error).message;
      assert.match(m, /exited with code 3/);
      assert.ok(m.includes(process.execPath) && m.includes('-e'), m);
      assert.ok(m.includes('CUDA out of memory: no device') && m.includes('loading weights'), m);
      return true;
    });
  } finally {
    removeDir(dir);
  }
});
