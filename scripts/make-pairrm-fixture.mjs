// Writes a PairRM-hf-layout folder with random weights on the tiny DeBERTa-v2 fixture backbone (see
// test/helpers/pairrm_fixture.ts for its layout): node scripts/make-pairrm-fixture.mjs OUT_DIR [--layout 4|5] [--seed N]
// Needs the build (node scripts/setup.mjs) and ../shared/fixtures/hf-tiny/deberta-v2 (or $SPPO_HF_FIXTURES).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { layout: { type: 'string', default: '5' }, seed: { type: 'string', default: '7' } } });
if (positionals.length !== 1 || !['4', '5'].includes(values.layout) || !/^\d+$/.test(values.seed)) {
  console.error('usage: node scripts/make-pairrm-fixture.mjs OUT_DIR [--layout 4|5] [--seed N]');
  process.exit(2);
}
const helper = new URL('../dist/test/helpers/pairrm_fixture.js', import.meta.url);
if (!existsSync(helper)) {
  console.error('build first: node scripts/setup.mjs');
  process.exit(1);
}
const { writePairRMFixture, DEBERTA_FIXTURE } = await import(helper.href);
if (!existsSync(resolve(DEBERTA_FIXTURE, 'model.safetensors'))) {
  console.error(`no DeBERTa-v2 fixture at ${DEBERTA_FIXTURE} (set SPPO_HF_FIXTURES)`);
  process.exit(1);
}
const out = writePairRMFixture(resolve(positionals[0]), { layout: Number(values.layout), seed: Number(values.seed) });
console.error(`PairRM fixture written to ${out}`);
