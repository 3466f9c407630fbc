// One run of the demo with options changed, for the experiments logged in docs/demo.md ("Style equilibrium"):
//   node scripts/demo-experiment.mjs OUT '{"proxy":"DIR","methods":["sppo"],"hyper":{"sppo":{"lr":0.0005,"beta":0.1}},"fresh":true}'
// The JSON is passed to runDemo (src/demo/run.ts, DemoOptions: proxy, judge ('proxy' or 'gold'), methods, hyper, lastIterate, training, pairs, seed, perIteration,
// iterations, fresh, quick); e.g. a stronger magnet for nash-md: {"methods":["nash-md"],"lastIterate":{"nash-md":{"etaTau":1}}}.
// Prints the last and average iterates' tables and each row's correctness, style mix and equilibrium.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { runDemo } = await import(join(root, 'dist', 'src', 'demo', 'run.js'));
const { formatTable } = await import(join(root, 'dist', 'src', 'demo', 'report.js'));
const [out, json] = process.argv.slice(2);
if (!out) {
  console.error("usage: node scripts/demo-experiment.mjs OUT '{JSON options of runDemo}'");
  process.exit(2);
}
let o;
try {
  o = JSON.parse(json ?? '{}');
} catch (e) {
  console.error(`demo-experiment: the options are not JSON (${e.message})`);
  process.exit(2);
}
const r = await runDemo({ root, out, progress: false, log: (s) => { if (/iteration|demo:/.test(s)) console.error(s); }, ...o });
console.log(r.table);
console.log('average iterate:\n' + formatTable(r.averageRows, r.averageDetails));
const pct = (m) => Object.values(m).map((x) => (100 * x).toFixed(0)).join('/');
for (const d of [...r.details, ...r.averageDetails.map((x) => ({ ...x, method: `${x.method} avg` }))]) {
  console.log(`${d.method} ${d.iteration}: correct ${d.correct.toFixed(3)}, styles ${pct(d.styles)}, equilibrium ${pct(d.style_equilibrium)}`);
}
console.log(`${r.seconds.toFixed(0)} s ${JSON.stringify(r.timings)}`);
