// startServers (src/generate/server_process.ts): free ports filled into the command, readiness by GET
// /v1/models, a server that never answers is an error after the start timeout (and is killed), stop()
// ends the command's whole process group (a shell's children too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { fillCommand, freePort, ServerStartError, startServers } from '../src/generate/server_process.js';

const node = JSON.stringify(process.execPath);
/** Running (a zombie, left for a PID 1 that may not reap it, counts as gone). */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

test('fillCommand quotes the checkpoint; freePort gives a port', async () => {
  assert.equal(fillCommand('serve {checkpoint} --port {port} # {index}', { checkpoint: "/a b/it's", port: 1234, index: 2 }), `serve '/a b/it'\\''s' --port 1234 # 2`);
  assert.equal(fillCommand('serve {checkpoint}', { checkpoint: '/runs/iter-1/checkpoint', port: 1, index: 0 }), 'serve /runs/iter-1/checkpoint');
  const p = await freePort();
  assert.ok(p > 0 && p < 65536);
});

test('startServers: ready on GET /v1/models; stop() ends the shell and its children', { timeout: 30_000 }, async () => {
  // A shell that starts a child server and waits: the child must go too.
  const server = `require('http').createServer((q, s) => { s.setHeader('content-type', 'application/json'); s.end(JSON.stringify({ data: [{ id: 'x' }] })); }).listen(Number(process.argv[1]), '127.0.0.1'); process.on('SIGTERM', () => {}); console.log(process.pid)`;
  const cmd = `${node} -e "${server}" {port} > "$TMPDIR_PIDS/{index}.pid"; echo unreachable`;
  const tmp = mkdtempSync('/tmp/sppo-sp-');
  try {
    const s = await startServers(cmd.replace(/\$TMPDIR_PIDS/g, tmp), '/unused', { count: 2, startTimeoutS: 20, graceS: 1 });
    assert.equal(s.urls.length, 2);
    assert.notEqual(s.urls[0], s.urls[1]);
    for (const u of s.urls) assert.equal((await fetch(`${u}/models`)).status, 200);
    const pids = [0, 1].map((i) => Number(readFileSync(`${tmp}/${i}.pid`, 'utf8')));
    assert.ok(pids.every(alive));
    const t0 = Date.now();
    await s.stop(); // the servers ignore SIGTERM: SIGKILL after the 1 s grace
    assert.ok(Date.now() - t0 >= 900);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!pids.some(alive), 'the shells\' children are gone');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('startServers: no answer within the start timeout is an error naming the command; the process is killed', { timeout: 30_000 }, async () => {
  const tmp = mkdtempSync('/tmp/sppo-sp-');
  try {
    const cmd = `${node} -e "console.error('warming up'); console.log(process.pid); setInterval(() => {}, 1000)" {port} > ${tmp}/pid`;
    await assert.rejects(startServers(cmd, '/unused', { startTimeoutS: 0.5, graceS: 1 }), (e: unknown) => {
      const m = (e as Error).message;
      assert.ok(e instanceof ServerStartError);
      assert.match(m, /did not answer GET http:\/\/127\.0\.0\.1:\d+\/v1\/models within 0\.5 s/);
      assert.ok(m.includes('warming up') && m.includes('setInterval'), m);
      return true;
    });
    const pid = Number(readFileSync(`${tmp}/pid`, 'utf8'));
    assert.ok(pid > 0);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!alive(pid), 'killed');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
