// `sppo report RUN_DIR`: the HTML report of a real (tiny) sppo run with an `sppo bench` report inside it; its
// table carries the numbers of each iteration's eval.json, and every chart renders in headless Chromium
// (Debian's /usr/bin/chromium through playwright-core, as the demo's report is checked).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSppo } from '../src/sppo/loop.js';
import type { SppoConfigInput } from '../src/sppo/config.js';
import { readRunReport, runChartSpecs } from '../src/demo/run_report.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const bin = fileURLToPath(new URL('../../bin/sppo.js', import.meta.url));
const model = join(fixtureRoot, 'llama');
const DATA = join(process.cwd(), '..', 'shared', 'data');
const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no llama fixture at ${model}`;

const JUDGE = `export const name = 'longer';
export const positionBiased = false;
export default function ({ a, b }) { return 1 / (1 + Math.exp(-(a.length - b.length) / 8)); }
`;

test('sppo report: a run directory with two iterations and a bench report; every chart drawn in Chromium', { skip, timeout: 300_000 }, async () => {
  const dir = tempDir('report');
  try {
    writeFileSync(join(dir, 'judge.mjs'), JUDGE);
    writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 14 }, (_, i) => JSON.stringify({ id: `p${i}`, prompt: `p${i} ${'cat '.repeat(i % 3)}` })).join('\n') + '\n');
    const runDir = join(dir, 'run');
    await runSppo({
      model, prompts: join(dir, 'prompts.jsonl'), runDir, judge: { kind: 'module', path: join(dir, 'judge.mjs') }, iterations: 2, seed: 1, device: 'cpu', promptsPerIteration: 4,
      generation: { k: 3, temperature: 1, topP: 1, maxNewTokens: 8, batchSize: 4 },
      training: { loss: 'sppo', beta: 0.1, lr: 0.001, optimizer: 'adamw', batchSize: 2, maxLength: 64, maxPromptLength: 48, warmupRatio: 0 },
      eval: { count: 5 },
    } as SppoConfigInput, { log: () => {}, progress: false });
    if (existsSync(join(DATA, 'alpaca_eval2_ref_gpt4_1106_preview_outputs.json'))) {
      const b = spawnSync(process.execPath, [bin, 'bench', 'alpaca-eval', '--outputs', join(DATA, 'alpaca_eval2_ref_gpt4_1106_preview_outputs.json'), '--judge', 'openai:http://127.0.0.1:9/v1#none', '--data', DATA, '--out', join(runDir, 'bench', 'ae'), '--limit', '5'], { encoding: 'utf8' });
      assert.equal(b.status, 0, b.stderr);
    }
    const r = spawnSync(process.execPath, [bin, 'report', runDir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const html = readFileSync(join(runDir, 'report.html'), 'utf8');
    const data = readRunReport(runDir);
    assert.deepEqual(data.iterations.map((x) => x.iteration), [1, 2]);
    for (const t of [1, 2]) {
      const e = JSON.parse(readFileSync(join(runDir, `iter-${t}`, 'eval.json'), 'utf8'));
      const row = `<tr><td>${t}</td><td>${e.n}</td><td>${(100 * e.winRate).toFixed(1)} ± ${(100 * e.standardError).toFixed(1)}</td><td>${(100 * e.lcWinRate).toFixed(1)}</td><td>${e.nWins} / ${e.nLosses} / ${e.nTies}</td>`;
      assert.ok(html.includes(row), `iteration ${t}: ${row}`);
      const metrics = readFileSync(join(runDir, `iter-${t}`, 'train-metrics.jsonl'), 'utf8').trim().split('\n').length;
      assert.equal(data.steps.filter((s) => s.iteration === t).length, metrics);
    }
    const charts = runChartSpecs(data).length;
    assert.equal(charts, 5);
    if (data.benches.length) assert.match(html, /AlpacaEval 2\.0 <small>\(bench\/ae\/report\.json\)<\/small>[\s\S]*length-controlled win rate \(%\)<\/th><td>50\.00/);
    assert.equal(spawnSync(process.execPath, [bin, 'report', join(dir, 'nothing')], { encoding: 'utf8' }).status, 1);

    if (!existsSync(CHROMIUM)) return;
    const { chromium } = await import('playwright-core');
    const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('requestfailed', (q) => errors.push(`request failed: ${q.url()}`));
      await page.goto(`file://${join(runDir, 'report.html')}`);
      const drawn = (await page.evaluate(`Array.from(document.querySelectorAll('figure.chart')).map((f) => {
        const svg = f.querySelector('svg');
        if (!svg) return { marks: 0, width: 0 };
        const marks = svg.querySelectorAll('g[class^="mark-"] path, g[class^="mark-"] rect, g[class^="mark-"] line').length;
        return { marks, width: svg.getBoundingClientRect().width };
      })`)) as { marks: number; width: number }[];
      assert.equal(drawn.length, charts);
      drawn.forEach((d, i) => assert.ok(d.marks > 0 && d.width > 100, `chart ${i} has ${d.marks} marks, width ${d.width}`));
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  } finally {
    removeDir(dir);
  }
});
