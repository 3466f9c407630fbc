// Recomputes AlpacaEval 2.0 leaderboard rows from the published annotations with `sppo bench alpaca-eval
// --annotations`, and prints them beside the leaderboard as a Markdown table (docs/eval.md).
//
//   node scripts/alpaca-eval-leaderboard.mjs --repo DIR [--gamed-baselines df_gamed.csv] [--instruction-difficulty
//        instruction_difficulty.csv] [--models a,b,c] [--out DIR]
//
// DIR: a checkout of github.com/tatsu-lab/alpaca_eval (results/MODEL/weighted_alpaca_eval_gpt4_turbo/annotations.json
// and src/alpaca_eval/leaderboards/data_AlpacaEval_2/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv). Every model
// with annotations and a leaderboard row is scored twice: without the two Hugging Face files (the approximate LC) and,
// when they are given, with them (length_controlled_v1).
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const { values: v } = parseArgs({ options: { repo: { type: 'string' }, 'gamed-baselines': { type: 'string' }, 'instruction-difficulty': { type: 'string' }, models: { type: 'string' }, out: { type: 'string' } } });
if (!v.repo) {
  console.error('usage: node scripts/alpaca-eval-leaderboard.mjs --repo ALPACA_EVAL_CHECKOUT [--gamed-baselines F] [--instruction-difficulty F] [--models a,b] [--out DIR]');
  process.exit(2);
}
const ANNOTATOR = 'weighted_alpaca_eval_gpt4_turbo';
const lbFile = join(v.repo, 'src/alpaca_eval/leaderboards/data_AlpacaEval_2', `${ANNOTATOR}_leaderboard.csv`);

function csvRows(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') q = false;
      else cell += c;
    } else if (c === '"') q = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\n') row.push(cell), rows.push(row), (row = []), (cell = '');
    else if (c !== '\r') cell += c;
  }
  if (cell !== '' || row.length) row.push(cell), rows.push(row);
  return rows;
}
const [header, ...body] = csvRows(readFileSync(lbFile, 'utf8'));
const leaderboard = new Map(body.map((r) => [r[0], Object.fromEntries(header.map((h, k) => [h, r[k]]))]));

const models = (v.models ? v.models.split(',') : readdirSync(join(v.repo, 'results')))
  .filter((m) => existsSync(join(v.repo, 'results', m, ANNOTATOR, 'annotations.json')) && leaderboard.has(m))
  .sort();
const out = resolve(v.out ?? '/tmp/sppo-alpaca-eval-leaderboard');
mkdirSync(out, { recursive: true });

function score(model, extra, tag) {
  const dir = join(out, tag, model);
  const r = spawnSync(process.execPath, [join(root, 'bin', 'sppo.js'), 'bench', 'alpaca-eval', '--annotations', join(v.repo, 'results', model, ANNOTATOR, 'annotations.json'), '--name', model, '--out', dir, ...extra], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${model}: sppo exited with ${r.status}: ${r.stderr}`);
  return JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
}

const withFiles = [...(v['gamed-baselines'] ? ['--gamed-baselines', v['gamed-baselines']] : []), ...(v['instruction-difficulty'] ? ['--instruction-difficulty', v['instruction-difficulty']] : [])];
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const rows = [];
for (const m of models) {
  const lb = leaderboard.get(m);
  const a = score(m, [], 'approximate');
  const b = withFiles.length ? score(m, withFiles, 'with-files') : undefined;
  rows.push({ m, lbWr: Number(lb.win_rate), lbSe: Number(lb.standard_error), lbLc: Number(lb.length_controlled_winrate), lbLen: Number(lb.avg_length), a, b });
  process.stderr.write(`${m}: WR ${f2(a.win_rate)} (leaderboard ${f2(Number(lb.win_rate))}), LC ${f2(a.length_controlled_winrate)}${b ? ` / ${f2(b.length_controlled_winrate)}` : ''} (leaderboard ${f2(Number(lb.length_controlled_winrate))})\n`);
}

const cols = ['model', 'avg_length', 'win rate: leaderboard', 'ours', 'LC: leaderboard', `ours, ${rows[0]?.a.lc_method ?? 'approximate'}`, 'difference', ...(withFiles.length ? [`ours, ${rows[0]?.b.lc_method}`, 'difference'] : [])];
console.log(`| ${cols.join(' | ')} |`);
console.log(`|${cols.map(() => '---').join('|')}|`);
for (const r of rows) {
  const cells = [r.m, String(r.a.avg_length), f2(r.lbWr), f2(r.a.win_rate), f2(r.lbLc), f2(r.a.length_controlled_winrate), f2(r.a.length_controlled_winrate - r.lbLc)];
  if (r.b) cells.push(f2(r.b.length_controlled_winrate), f2(r.b.length_controlled_winrate - r.lbLc));
  console.log(`| ${cells.join(' | ')} |`);
}
const stats = (d) => {
  const s = d.map(Math.abs).sort((x, y) => x - y);
  return `mean |difference| ${f2(s.reduce((x, y) => x + y, 0) / s.length)}, median ${f2(s[Math.floor(s.length / 2)])}, max ${f2(s[s.length - 1])}`;
};
const wrDiff = Math.max(...rows.map((r) => Math.abs(r.a.win_rate - r.lbWr)));
const seDiff = Math.max(...rows.map((r) => Math.abs(r.a.standard_error - r.lbSe)));
console.log(`\n${rows.length} models. Win rate: max |ours - leaderboard| ${wrDiff.toExponential(2)}, standard error ${seDiff.toExponential(2)}.`);
console.log(`LC ${rows[0]?.a.lc_method}: ${stats(rows.map((r) => r.a.length_controlled_winrate - r.lbLc))}; above the leaderboard for ${rows.filter((r) => r.a.length_controlled_winrate > r.lbLc).length}.`);
if (withFiles.length) console.log(`LC ${rows[0]?.b.lc_method}: ${stats(rows.map((r) => r.b.length_controlled_winrate - r.lbLc))}.`);
