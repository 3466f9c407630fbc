// sppo as a dependency: `npm pack` this project, install the tarball in a new project, build the addon there
// with `npx sppo setup`, and run the README's "Use as a library" examples (taken from the README itself)
// against the installed package; every entry point of package.json's `exports` imports and type-checks.
// Takes about 30 s (the addon is compiled once more, inside the new project's node_modules/sppo).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../src/torch/index.js';
import { hfTiny, projectRoot } from './helpers/fixtures.js';
import { assertClose } from './helpers/torch.js';
import { createRequire } from 'node:module';

const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { name: string; version: string; exports: Record<string, string | { types: string; import: string }> };
const subpaths = Object.keys(pkg.exports).filter((k) => k !== './package.json');
const specifier = (subpath: string): string => (subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`);

// Child npm/node processes get the environment without what `npm test` sets about this project (its
// npm_config_local_prefix would make the child npm install into this project); npm settings stay.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(k.startsWith('npm_') && !k.startsWith('npm_config_')) && k !== 'npm_config_local_prefix' && k !== 'INIT_CWD'));

function sh(cmd: string, args: string[], cwd: string, timeoutS = 240): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: timeoutS * 1000 });
  if (r.error) throw r.error;
  return r;
}
function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The ```js blocks of the README's "Use as a library" section that start with `// NAME.mjs`. */
function readmeExamples(): Map<string, string> {
  const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Use as a library\n');
  assert.ok(start >= 0, 'README has a "Use as a library" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const out = new Map<string, string>();
  for (const m of section.matchAll(/```js\n(\/\/ (\w+\.mjs)\n[\s\S]*?)```/g)) out.set(m[2]!, m[1]!);
  return out;
}

describe('package: packed, installed in a new project, used as a library', { timeout: 300_000 }, () => {
  let tmp = '';
  let proj = '';
  let tarball = '';
  let files: string[] = [];
  // Set when npm cannot get the dependencies (no registry and not in npm's cache): the rest is skipped.
  let offline: string | null = null;

  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'sppo-pack-'));
    proj = join(tmp, 'project');
    mkdirSync(proj);
    // --ignore-scripts: dist/ is already built (the suite runs after set-up); prepack would redo it.
    const out = ok(sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], projectRoot, 120), 'npm pack');
    const info = (JSON.parse(out) as { filename: string; files: { path: string }[] }[])[0]!;
    tarball = join(tmp, info.filename);
    files = info.files.map((f) => f.path);
  });
  after(() => {
    if (tmp && process.env.SPPO_KEEP_PACK_TEST !== '1') rmSync(tmp, { recursive: true, force: true });
  });

  it('the tarball holds the compiled library, its types, the CLI and what builds the addon, and nothing else', () => {
    assert.ok(existsSync(tarball), tarball);
    for (const target of Object.values(pkg.exports)) {
      for (const p of typeof target === 'string' ? [target] : [target.types, target.import]) assert.ok(files.includes(p.replace(/^\.\//, '')), `${p} is packed`);
    }
    for (const p of ['bin/sppo.js', 'scripts/setup.mjs', 'native/addon_path.cjs', 'native/tensor.cc', 'native/optim.cc', 'native/addon.cc', 'native/common.h', 'README.md', 'dist/src/cli/main.js']) {
      assert.ok(files.includes(p), `${p} is packed`);
    }
    const stray = files.filter((p) => /^(src|test|bench|demo|docs|build|node_modules|dist\/(test|bench))\//.test(p) || p.endsWith('.map') || p === 'tsconfig.json');
    assert.deepEqual(stray, []);
  });

  it('installs with npm, tells to run `npx sppo setup` until the addon is built, then builds it', (t) => {
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'uses-sppo', private: true, type: 'module' }, null, 2));
    const install = sh('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], proj);
    if (install.status !== 0 && /ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH/.test(install.stderr)) {
      offline = `npm could not reach the registry for the dependencies (${/E[A-Z_]{5,}/.exec(install.stderr)![0]})`;
      return t.skip(offline);
    }
    ok(install, 'npm install');
    const installed = join(proj, 'node_modules', pkg.name);
    assert.equal(JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')).version, pkg.version);

    // The game lab needs no addon; the tensor library says how to build it.
    ok(sh('node', ['--input-type=module', '-e', `import { sppoExactStep } from '${pkg.name}/game'; console.log(typeof sppoExactStep);`], proj), 'importing sppo/game');
    const before = sh('node', ['--input-type=module', '-e', `await import('${pkg.name}/torch');`], proj);
    assert.notEqual(before.status, 0);
    assert.match(before.stderr, /native addon is not built .*npx sppo setup/);

    ok(sh('npx', ['--no-install', 'sppo', 'setup'], proj), 'npx sppo setup');
    // In the build folder of the libtorch this environment chooses (native/addon_path.cjs: build/native for the system's).
    const { addonPath } = createRequire(import.meta.url)(join(installed, 'native', 'addon_path.cjs')) as { addonPath(root: string): { file: string } };
    assert.ok(existsSync(addonPath(installed).file), 'the addon is built inside node_modules/sppo');
    // A second run finds it up to date.
    const again = sh('npx', ['--no-install', 'sppo', 'setup'], proj);
    ok(again, 'npx sppo setup (again)');
    assert.doesNotMatch(again.stdout + again.stderr, /building/);
  });

  it("runs the README's examples: a tensor op, a model's token log-probs (= transformers'), the SPPO loss", (t) => {
    if (offline) return t.skip(offline);
    const examples = readmeExamples();
    assert.deepEqual([...examples.keys()].sort(), ['logprobs.mjs', 'loss.mjs', 'ops.mjs']);
    for (const [name, code] of examples) writeFileSync(join(proj, name), code);

    const ops = ok(sh('node', ['ops.mjs'], proj), 'ops.mjs').trim().split('\n').map((l) => JSON.parse(l) as unknown);
    // [[1, 2], [3, 4]] @ [[1, 0, 1], [0, 1, 1]] = [[1, 2, 3], [3, 4, 7]], + 0.5
    assert.deepEqual(ops, [[[1.5, 2.5, 3.5], [3.5, 4.5, 7.5]], [3.5, 7.5]]);

    const loss = JSON.parse(ok(sh('node', ['loss.mjs'], proj), 'loss.mjs')) as number[];
    // a_w = (0.5, -0.5), a_l = (-1, 0.5); targets 10 (P - 1/2): (3, 1) and (-2, -0.5)
    assertClose(loss, [((0.5 - 3) ** 2 + (-1 + 2) ** 2) / 2, ((-0.5 - 1) ** 2 + (0.5 + 0.5) ** 2) / 2], 1e-12, 1e-12);

    // The token log-probs of the fixture's unpadded prompt, against transformers' own (expected.safetensors).
    const dir = join(hfTiny, 'llama');
    if (!existsSync(join(dir, 'expected.safetensors'))) return t.skip(`no ${join(dir, 'expected.safetensors')}: the log-probs example is not checked`);
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { prompts: string[]; prompt_ids: number[][] };
    const ex = SafetensorsFile.open(join(dir, 'expected.safetensors'));
    const mask = ex.load('attention_mask').toArray() as number[][];
    const row = mask.findIndex((r) => r.every((m) => m === 1));
    assert.ok(row >= 0, 'one prompt of the fixture is unpadded');
    const out = JSON.parse(ok(sh('node', ['logprobs.mjs', dir, expected.prompts[row]!], proj), 'logprobs.mjs')) as { ids: number[]; logprobs: number[] };
    assert.deepEqual(out.ids, expected.prompt_ids[row]);
    const want = (ex.load('token_logprobs').toArray() as number[][])[row]!;
    assert.equal(out.logprobs.length, want.length);
    assertClose(out.logprobs, want, 1e-4, 0);
  });

  it('every entry point imports at run time and type-checks through its `types` condition', (t) => {
    if (offline) return t.skip(offline);
    const list = subpaths.map(specifier);
    const loaded = ok(sh('node', ['--input-type=module', '-e', `for (const s of ${JSON.stringify(list)}) console.log(s, Object.keys(await import(s)).length);`], proj), 'importing every entry point');
    for (const s of list) assert.match(loaded, new RegExp(`^${s} [1-9]`, 'm'), `${s} exports something`);

    writeFileSync(join(proj, 'check.ts'), [
      "import { preferenceLoss, runSppo, torch as torchNs, type LossType } from 'sppo';",
      "import * as torch from 'sppo/torch';",
      "import { Module, Linear } from 'sppo/nn';",
      "import { loadModel, loadRewardModel, type CausalLMBase } from 'sppo/models';",
      "import { Tokenizer, ChatTemplate } from 'sppo/text';",
      "import { generate, type Generation } from 'sppo/generate';",
      "import { RewardModelJudge } from 'sppo/judge';",
      "import { exampleLogprobs, frozenCopy, pairLogprobs, winRates } from 'sppo/sppo';",
      "import { lengthControlledWinRate } from 'sppo/eval';",
      "import { sppoExactStep } from 'sppo/game';",
      'const x: torch.Tensor = torch.addmm(torch.zeros([2]), torch.ones([2, 3]), torch.ones([3, 2]));',
      "const kind: LossType = 'sppo';",
      'const m: CausalLMBase | null = null;',
      'const g: Generation[] = [];',
      'export const used = [x.shape, kind, m, g, preferenceLoss, runSppo, torchNs.tidy, Module, Linear, loadModel, loadRewardModel, Tokenizer, ChatTemplate, generate, RewardModelJudge, winRates, pairLogprobs, exampleLogprobs, frozenCopy, lengthControlledWinRate, sppoExactStep];',
      '// @ts-expect-error: a tensor op with a wrong argument is a type error',
      'torch.addmm(1, x, x);',
      '',
    ].join('\n'));
    writeFileSync(join(proj, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: [], lib: ['ES2023', 'ESNext.Disposable'] },
      files: ['check.ts'],
    }));
    ok(sh('node', [join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', proj], proj, 120), 'tsc on an import of every entry point');
  });
});
