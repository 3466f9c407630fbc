// generateRemote (src/generate/remote.ts) over two real `sppo serve` processes, one killed mid-way: every
// prompt is still generated (the dead server's prompts go to the other), with the same outputs as a run on
// one server (each sample has its own seed), token ids and log-probs from the responses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServers, type RunningServers } from '../src/generate/server_process.js';
import { fileURLToPath } from 'node:url';
import { generateRemote, RemoteError } from '../src/generate/index.js';
import { fixture, llamaDir, noLlama } from './serve_helpers.js';

const bin = fileURLToPath(new URL('../../bin/sppo.js', import.meta.url));

/** Two `sppo serve` processes on the llama fixture (`exec`: each child is the server itself, so a kill reaches it). */
function startTwo(): Promise<RunningServers> {
  return startServers(`exec ${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} serve {checkpoint} --port {port} --served-model-name tiny`, llamaDir, { count: 2, startTimeoutS: 60 });
}

test('generateRemote: prompts sharded over two servers, one killed mid-way; same outputs as one server', { skip: noLlama, timeout: 120_000 }, async () => {
  const { tokenizer } = fixture();
  const servers = await startTwo();
  const [a, b] = servers.urls.map((url, i) => ({ url, child: servers.children[i]! }));
  try {
    const prompts = Array.from({ length: 30 }, (_, i) => tokenizer.encode(`prompt number ${i} ${'x'.repeat(i % 5)}`, { addSpecialTokens: true }));
    const opts = { model: 'tiny', n: 2, maxNewTokens: 12, temperature: 1, topP: 0.95, seed: 7, concurrency: 3, backoffMs: 20 };
    const down: string[] = [];
    let killed = false;
    const both = await generateRemote(prompts, {
      ...opts,
      urls: [a.url, b.url],
      onProgress: (done) => {
        if (done >= 8 && !killed) {
          killed = true;
          b.child.kill('SIGKILL');
        }
      },
      onServerDown: (url) => down.push(url),
    });
    assert.ok(killed);
    assert.deepEqual(down, [b.url]);
    assert.equal(both.length, prompts.length);
    const one = await generateRemote(prompts, { ...opts, urls: [a.url] });
    both.forEach((gens, i) => {
      assert.equal(gens.length, 2);
      gens.forEach((g, s) => {
        assert.equal(g.prompt, i);
        assert.equal(g.sample, s);
        assert.deepEqual(g.tokens, one[i]![s]!.tokens, `prompt ${i} sample ${s}`);
        assert.equal(g.logprobs.length, g.tokens.length);
        assert.ok(g.logprobs.every((x) => x <= 0 && Number.isFinite(x)));
        assert.equal(g.text, tokenizer.decode(g.tokens, { skipSpecialTokens: true }));
        // Fewer than 12 tokens, or 12 and the last an EOS.
        assert.ok(g.finishReason === 'length' || g.tokens.length < 12 || (g.finishReason === 'eos' && g.tokens.at(-1) === tokenizer.eosTokenId), `prompt ${i} sample ${s}: ${g.finishReason}, ${g.tokens.length} tokens`);
      });
    });
    // A request the server refuses is not retried: the error says why.
    await assert.rejects(generateRemote(prompts.slice(0, 2), { ...opts, model: 'other', urls: [a.url] }), (e: unknown) => e instanceof RemoteError && e.status === 404);
    // No server left: an error after the retries.
    a.child.kill('SIGKILL');
    await new Promise((r) => a.child.once('exit', r));
    await assert.rejects(generateRemote(prompts.slice(0, 2), { ...opts, urls: [a.url], backoffMs: 5 }), (e: unknown) => e instanceof RemoteError);
  } finally {
    await servers.stop();
  }
});
