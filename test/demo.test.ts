// The demo end to end, shortened (`sppo demo --quick`: one iteration of 16 prompts, 32 held-out prompts),
// and its report opened in headless Chromium (Debian's /usr/bin/chromium through playwright-core).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_GENERATION, pickFinal, pickFinalists, pickSetting, QUICK_STYLE_SAMPLES, runDemo, runSearch } from '../src/demo/run.js';
import { reportHtml, chartSpecs } from '../src/demo/report.js';
import { projectRoot } from './helpers/fixtures.js';
import { removeDir, tempDir } from './text_helpers.js';
import { syntheticReport } from '../src/demo/synthetic.js';
import { playedStyleGame } from '../src/demo/style_winrates.js';

const models = ['starter', 'proxy-judge'].map((d) => join(projectRoot, 'demo', d));
const skipModels = models.every((d) => existsSync(join(d, 'model.safetensors'))) ? false : `the demo's model folders are missing (${models.join(', ')})`;
const CHROMIUM = '/usr/bin/chromium';
const skipChromium = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium); CI installs it`;

let quickReport: string | undefined;

test('sppo demo --quick: end to end, summary.json rows finite and in range, report.html with every chart', { skip: skipModels, timeout: 300_000 }, async () => {
  const out = tempDir('demo-quick');
  const logs: string[] = [];
  const r = await runDemo({ root: projectRoot, out, quick: true, fresh: true, progress: false, log: (s) => logs.push(s) });
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { rows: Record<string, unknown>[] };
  assert.ok(Array.isArray(summary.rows));
  assert.deepEqual(summary.rows.map((x) => [x.method, x.iteration]), [['sppo', 0], ['sppo', 1]]);
  for (const row of summary.rows) {
    assert.deepEqual(Object.keys(row).sort(), ['avg_length', 'iteration', 'lc_win_rate', 'method', 'win_rate', 'win_rate_se']);
    for (const k of ['win_rate', 'lc_win_rate']) assert.ok(typeof row[k] === 'number' && row[k] >= 0 && row[k] <= 1, `${k} = ${row[k]}`);
    assert.ok(typeof row.win_rate_se === 'number' && row.win_rate_se >= 0 && row.win_rate_se <= 0.5, `se = ${row.win_rate_se}`);
    assert.ok(typeof row.avg_length === 'number' && Number.isFinite(row.avg_length) && row.avg_length > 0);
  }
  assert.ok((summary.rows[1]!.win_rate_se as number) > 0, 'a real standard error at iteration 1');
  assert.deepEqual(r.rows, summary.rows);
  for (const f of ['prompts.jsonl', 'eval-prompts.jsonl', 'sppo/iter-1/eval.json', 'sppo/iter-1/checkpoint/model.safetensors']) assert.ok(existsSync(join(out, f)), f);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.equal((html.match(/<svg/g) ?? []).length, 6);
  // per method and iteration: the style mix's exploitability in the gold style game, with its equilibrium
  const details = (JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { details: Record<string, unknown>[] }).details;
  assert.deepEqual(details.map((x) => [x.method, x.iteration]), [['sppo', 0], ['sppo', 1]]);
  for (const x of details) {
    for (const k of ['style_exploitability', 'style_exploitability_cycle']) assert.ok(typeof x[k] === 'number' && x[k] >= 0 && x[k] <= 1, `${k} = ${x[k]}`);
    for (const k of ['style_equilibrium', 'style_equilibrium_cycle', 'styles']) {
      const mix = x[k] as Record<string, number>;
      assert.deepEqual(Object.keys(mix), ['terse', 'sentence', 'formatted', 'other'], k);
      assert.ok(Math.abs(Object.values(mix).reduce((a, b) => a + b, 0) - 1) < 1e-6, `${k} sums to 1`);
    }
  }
  assert.match(r.table, /sppo\s+1\s+/);
  // The demo's training pairs: ranked (DEMO_PAIRS), two per prompt from K = 5 samples (one where all five are the same text).
  const settings = (JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { settings: { pairs: string } }).settings;
  assert.equal(settings.pairs, 'ranked');
  // the style and correctness figures: QUICK_STYLE_SAMPLES samples per held-out prompt of every checkpoint, kept in the run directory
  assert.equal((settings as { styleSamples?: number }).styleSamples, QUICK_STYLE_SAMPLES);
  for (const t of [0, 1]) {
    const lines = readFileSync(join(out, `sppo/iter-${t}/style-samples.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { index: number; responses: string[] });
    assert.deepEqual(lines.map((l) => l.index), [...Array(32).keys()]);
    assert.ok(lines.every((l) => l.responses.length === QUICK_STYLE_SAMPLES && l.responses.every((r) => typeof r === 'string')));
    // The game played: the same samples read by playedStyleGame on the held-out prompts.
    const d = details.find((x) => x.iteration === t)!;
    const evalPrompts = readFileSync(join(out, 'eval-prompts.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { prompt: string }).prompt);
    const g = playedStyleGame(lines.map((l) => evalPrompts[l.index]!), lines.map((l) => l.responses));
    assert.equal(d.played_exploitability, g.exploitability, `iteration ${t}`);
    assert.equal(d.played_exploitability_se, g.se);
    assert.ok(g.exploitability >= 0 && g.exploitability <= 1 && g.se >= 0);
  }
  const runCfg = (JSON.parse(readFileSync(join(out, 'sppo/run.json'), 'utf8')) as { config: { generation: Record<string, number> } }).config;
  for (const k of ['k', 'temperature', 'topP', 'maxNewTokens'] as const) assert.equal(runCfg.generation[k], DEMO_GENERATION[k], k);
  const perPrompt = new Map<number, number>();
  for (const l of readFileSync(join(out, 'sppo/iter-1/pairs.jsonl'), 'utf8').trim().split('\n')) {
    const i = (JSON.parse(l) as { index: number }).index;
    perPrompt.set(i, (perPrompt.get(i) ?? 0) + 1);
  }
  assert.equal(perPrompt.size, 16);
  assert.ok([...perPrompt.values()].every((n) => n === 1 || n === 2) && [...perPrompt.values()].some((n) => n === 2), JSON.stringify([...perPrompt]));
  // the held-out prompts never appear among the training prompts
  const heldOut = new Set(readFileSync(join(out, 'eval-prompts.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { prompt: string }).prompt));
  for (const l of readFileSync(join(out, 'prompts.jsonl'), 'utf8').trim().split('\n')) assert.ok(!heldOut.has((JSON.parse(l) as { prompt: string }).prompt));
  quickReport = html;
  removeDir(out);
});

test('sppo demo: the training samples\' generation settings can be changed (experiments), evaluation stays at temperature 1', { skip: skipModels, timeout: 300_000 }, async () => {
  const out = tempDir('demo-quick-gen');
  await runDemo({ root: projectRoot, out, quick: true, fresh: true, progress: false, log: () => {}, generation: { temperature: 0.7, topP: 0.9 } });
  const cfg = (JSON.parse(readFileSync(join(out, 'sppo/run.json'), 'utf8')) as { config: { generation: Record<string, number>; eval: Record<string, number> } }).config;
  assert.equal(cfg.generation.temperature, 0.7);
  assert.equal(cfg.generation.topP, 0.9);
  assert.equal(cfg.generation.k, DEMO_GENERATION.k);
  assert.equal(cfg.eval.temperature, 1);
  assert.equal(cfg.eval.topP, 1);
  const settings = (JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { settings: { generation: Record<string, number> } }).settings;
  assert.deepEqual(settings.generation, { ...DEMO_GENERATION, temperature: 0.7, topP: 0.9 });
  removeDir(out);
});

test('report.html renders every chart in headless Chromium with no console errors', { skip: skipChromium, timeout: 120_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const dir = mkdtempSync(join(tmpdir(), 'sppo-chromium-'));
  const pages: [string, string, number][] = [['synthetic', await reportHtml(syntheticReport()), chartSpecs(syntheticReport()).length]];
  if (quickReport) pages.push(['demo --quick', quickReport, 6]);
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    for (const [name, html, charts] of pages) {
      const file = join(dir, `${name.replace(/\W+/g, '-')}.html`);
      writeFileSync(file, html);
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
      await page.goto(`file://${file}`);
      // Every chart: an <svg> with drawn marks (vega writes each mark group as <g class="mark-...">).
      const drawn = (await page.evaluate(`Array.from(document.querySelectorAll('figure.chart')).map((f) => {
        const svg = f.querySelector('svg');
        if (!svg) return { marks: 0, width: 0 };
        const marks = svg.querySelectorAll('g[class^="mark-"] path, g[class^="mark-"] rect, g[class^="mark-"] line').length;
        return { marks, width: svg.getBoundingClientRect().width };
      })`)) as { marks: number; width: number }[];
      assert.equal(drawn.length, charts, `${name}: charts`);
      drawn.forEach((d, i) => assert.ok(d.marks > 0 && d.width > 100, `${name}: chart ${i} has ${d.marks} marks, width ${d.width}`));
      assert.deepEqual(errors, [], `${name}: console errors`);
      await page.close();
    }
  } finally {
    await context.close();
    removeDir(dir);
  }
});

test('sppo demo search, shortened: every grid point for one iteration, the best ones run for all iterations, the choice by pickFinal', { skip: skipModels, timeout: 300_000 }, async () => {
  const out = tempDir('demo-search');
  const grid = [{ lr: 1e-4, beta: 0.1 }, { lr: 1e-3, beta: 0.1 }, { lr: 1e-3, beta: 0.2 }];
  const sizes = { iterations: 2, perIteration: 8, validCount: 12, styleSamples: 2 };
  const logs: string[] = [];
  const r = await runSearch({ root: projectRoot, out, fresh: true, methods: ['sppo'], grid, sizes, finalists: 2, finalSeeds: [0, 3], log: (s) => logs.push(s) });
  assert.equal(r.points.length, 3);
  for (const p of r.points) assert.ok(p.win_rate >= 0 && p.win_rate <= 1 && p.win_rate_se >= 0, JSON.stringify(p));
  // the finalists are the two best points of the first stage, each run for both iterations on the validation prompts
  const finalists = pickFinalists(r.points, 2);
  assert.deepEqual(r.finals.map((f) => [f.lr, f.beta]), finalists.map((p) => [p.lr, p.beta]));
  for (const f of r.finals) {
    // one run per seed, the point's figures their means
    assert.deepEqual(f.runs.map((x) => x.seed), [0, 3]);
    assert.ok(Math.abs(f.win_rate - (f.runs[0]!.win_rate + f.runs[1]!.win_rate) / 2) < 1e-12);
    assert.ok(Math.abs(f.style_exploitability - (f.runs[0]!.style_exploitability + f.runs[1]!.style_exploitability) / 2) < 1e-12);
    for (const run of f.runs) {
      assert.deepEqual(run.iterations.map((x) => x.iteration), [1, 2]);
      assert.equal(run.win_rate, run.iterations[1]!.win_rate);
      assert.ok(run.style_exploitability >= 0 && run.style_exploitability <= 1 && run.correct >= 0 && run.correct <= 1, JSON.stringify(run));
      const name = (g: { lr: number; beta: number }) => `sppo-lr${g.lr}-beta${g.beta}${run.seed === 0 ? '' : `-seed${run.seed}`}`;
      const dir = join(out, 'final', name(f));
      // the style samples: styleSamples per validation prompt of the last checkpoint
      const rows = readFileSync(join(dir, 'iter-2', 'valid-style-samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { responses: string[] });
      assert.equal(rows.length, sizes.validCount);
      for (const row of rows) assert.equal(row.responses.length, sizes.styleSamples);
      // the first iteration's samples do not depend on lr or beta: shared by the finalists of a seed
      assert.equal(readFileSync(join(dir, 'iter-1', 'generations.jsonl'), 'utf8'), readFileSync(join(out, 'final', name(r.finals[0]!), 'iter-1', 'generations.jsonl'), 'utf8'));
    }
    // ... and do depend on the seed
    assert.notEqual(readFileSync(join(out, 'final', `sppo-lr${f.lr}-beta${f.beta}`, 'iter-1', 'generations.jsonl'), 'utf8'), readFileSync(join(out, 'final', `sppo-lr${f.lr}-beta${f.beta}-seed3`, 'iter-1', 'generations.jsonl'), 'utf8'));
  }
  // a finalist's first iteration trains on the same prompts as the first stage (the demo's first prompts)
  const firstStage = readFileSync(join(out, 'prompts.jsonl'), 'utf8').trim().split('\n');
  assert.deepEqual(readFileSync(join(out, 'prompts-demo.jsonl'), 'utf8').trim().split('\n').slice(0, sizes.perIteration), firstStage);
  assert.deepEqual(r.best.sppo, pickFinal(r.finals));
  assert.deepEqual(r.bestOneIteration.sppo, pickSetting(r.points));
  const saved = JSON.parse(readFileSync(join(out, 'search.json'), 'utf8')) as { best: unknown; finals: unknown[]; best_one_iteration: unknown };
  assert.deepEqual(saved.best, r.best);
  assert.equal(saved.finals.length, 2);
  assert.equal(logs.filter((l) => l.startsWith('search, final:')).length, 4);
  removeDir(out);
});
