// The import structure of src/: no import cycle between files, and no layer importing a layer above it.
// Layers, lowest first (the README's layout table; the real imports decide where it was silent):
//   torch < nn, models < text < generate, judge < eval < sppo < demo, game < cli, serve
// eval sits below sppo because the SPPO loop's evaluation stage calls it (eval itself needs only judges'
// shape); src/util is a leaf any layer may use; src/serve (the server) is at the level of the CLI; src/index.ts
// (the package entry) re-exports every layer. Files of one level may import each other (models uses nn).
// Every import counts: static, type-only, re-exports and dynamic import() with a literal specifier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { tsFiles } from './helpers/source.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const srcDir = join(root, 'src');

const LEVELS: string[][] = [['torch', 'hub'], ['nn', 'models'], ['text'], ['generate', 'judge'], ['eval'], ['sppo'], ['demo', 'game'], ['cli', 'serve']];
const UTIL = 'util';

/** The level of a file of src/ (by its first folder); src/util is below everything, src/index.ts above. */
function levelOf(rel: string): number {
  const parts = rel.split('/');
  if (parts.length === 1) return LEVELS.length; // src/index.ts
  if (parts[0] === UTIL) return -1;
  const i = LEVELS.findIndex((l) => l.includes(parts[0]!));
  if (i < 0) throw new Error(`src/${rel}: folder '${parts[0]}' has no layer; add it to LEVELS in test/imports.test.ts`);
  return i;
}


/** The relative imports of one source text, as src-relative paths of .ts files ('./a.js' -> 'dir/a.ts'). */
function importsOf(rel: string, text: string): string[] {
  const sf = ts.createSourceFile(rel, text, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const add = (spec: ts.Expression | undefined): void => {
    if (!spec || !ts.isStringLiteralLike(spec) || !spec.text.startsWith('.')) return;
    const target = join(dirname(rel), spec.text).split(sep).join('/').replace(/\.js$/, '.ts');
    out.push(target);
  };
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) add(n.moduleSpecifier);
    else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) add(n.arguments[0]);
    else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) add(n.argument.literal as ts.Expression);
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** Cycles (each as the list of files around it, one per strongly connected component) and layer violations. */
export function checkGraph(graph: Map<string, string[]>): { cycles: string[][]; upward: string[] } {
  // Tarjan's strongly connected components; a component of more than one file, or a file importing itself, is a cycle.
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>(), stack: string[] = [];
  const cycles: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(comp.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) strong(v);
  const upward: string[] = [];
  for (const [from, tos] of graph) {
    for (const to of tos) if (levelOf(to) > levelOf(from)) upward.push(`src/${from} imports src/${to}`);
  }
  return { cycles, upward };
}

function srcGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of tsFiles(srcDir)) {
    const rel = relative(srcDir, f).split(sep).join('/');
    graph.set(rel, importsOf(rel, readFileSync(f, 'utf8')));
  }
  return graph;
}

test('imports: src/ has no import cycle and no layer imports a layer above it', () => {
  const graph = srcGraph();
  assert.ok(graph.size > 50, `only ${graph.size} files found under ${srcDir}`);
  for (const [from, tos] of graph) for (const to of tos) assert.ok(graph.has(to), `src/${from} imports src/${to}, which does not exist`);
  const { cycles, upward } = checkGraph(graph);
  assert.deepEqual(cycles.map((c) => c.join(' <-> ')), [], 'import cycles');
  assert.deepEqual(upward, [], `imports against the layer order ${LEVELS.map((l) => l.join(',')).join(' < ')}`);
});

test('imports: the check finds a cycle, a self-import and an upward import, and only those', () => {
  const g = new Map<string, string[]>([
    ['judge/a.ts', ['judge/b.ts', 'torch/t.ts', 'util/files.ts']],
    ['judge/b.ts', ['judge/c.ts']],
    ['judge/c.ts', ['judge/a.ts', 'sppo/s.ts']],
    ['sppo/s.ts', ['judge/a.ts', 'eval/e.ts']],
    ['eval/e.ts', ['eval/e.ts']],
    ['torch/t.ts', []],
    ['util/files.ts', []],
  ]);
  const { cycles, upward } = checkGraph(g);
  assert.deepEqual(cycles.map((c) => c.join(' ')).sort(), ['eval/e.ts', 'judge/a.ts judge/b.ts judge/c.ts sppo/s.ts']);
  assert.deepEqual(upward, ['src/judge/c.ts imports src/sppo/s.ts']);
  assert.deepEqual(importsOf('judge/x.ts', "import a from './y.js';\nexport * from '../sppo/z.js';\nimport type { T } from '../text/t.js';\nconst m = await import('../eval/e.js');\nlet u: import('./w.js').W;\nimport 'node:fs';"),
    ['judge/y.ts', 'sppo/z.ts', 'text/t.ts', 'eval/e.ts', 'judge/w.ts']);
  assert.ok(existsSync(join(srcDir, 'judge')) && existsSync(join(srcDir, 'sppo')), `src/ not found at ${srcDir}`);
});
