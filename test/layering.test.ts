// The layering rule of the README: above src/torch, code reaches libtorch only through the Tensor API.
// No file outside src/torch may call an operator by its name (callT, callTs, opId, hasOp, opSchema),
// read a tensor's native handle (t.h, or any of Tensor's internal `_` members), or use the addon
// (anything declared in src/torch/native.ts). Checked with the TypeScript compiler's own symbol
// resolution, so comments, strings and unrelated members named `h` (GPT-2's `transformer.h`) do not count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { tsFiles } from './helpers/source.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const srcDir = join(root, 'src');
const torchDir = join(srcDir, 'torch') + sep;
const tensorFile = join(srcDir, 'torch', 'tensor.ts');
const nativeFile = join(srcDir, 'torch', 'native.ts');
const BY_NAME = new Set(['callT', 'callTs', 'opId', 'hasOp', 'opSchema']);


interface Violation {
  file: string;
  line: number;
  what: string;
}

/** The violations in every file of `files` outside src/torch; `extra` adds in-memory files (the probe below). */
function check(files: string[], extra: Record<string, string> = {}): Violation[] {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'],
    types: ['node'],
    strict: true,
    skipLibCheck: true,
    noEmit: true,
  };
  const host = ts.createCompilerHost(options, true);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) => (name in extra ? ts.createSourceFile(name, extra[name]!, lang, true) : getSourceFile.call(host, name, lang, ...rest));
  host.fileExists = (name) => name in extra || fileExists.call(host, name);
  host.readFile = (name) => (name in extra ? extra[name] : readFile.call(host, name));
  const program = ts.createProgram([...files, ...Object.keys(extra)], options, host);
  const checker = program.getTypeChecker();

  const declaredIn = (sym: ts.Symbol | undefined): string[] => {
    if (!sym) return [];
    if (sym.flags & ts.SymbolFlags.Alias) sym = checker.getAliasedSymbol(sym);
    return (sym.declarations ?? []).map((d) => resolve(d.getSourceFile().fileName));
  };
  const violations: Violation[] = [];
  for (const sf of program.getSourceFiles()) {
    const file = resolve(sf.fileName);
    if (!file.startsWith(srcDir + sep) || file.startsWith(torchDir)) continue;
    const report = (node: ts.Node, what: string) =>
      violations.push({ file: relative(root, file), line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1, what });
    const visit = (node: ts.Node): void => {
      if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        const target = ts.resolveModuleName(node.moduleSpecifier.text, sf.fileName, options, host).resolvedModule?.resolvedFileName;
        if (target && resolve(target) === nativeFile) report(node, `imports the addon (${node.moduleSpecifier.text})`);
      } else if (ts.isCallExpression(node)) {
        const callee = ts.isPropertyAccessExpression(node.expression) ? node.expression.name : node.expression;
        if (ts.isIdentifier(callee) && BY_NAME.has(callee.text) && declaredIn(checker.getSymbolAtLocation(callee)).includes(tensorFile)) {
          report(node, `calls an operator by name: ${callee.text}(...)`);
        }
      } else if (ts.isPropertyAccessExpression(node) || ts.isElementAccessExpression(node)) {
        const name = ts.isPropertyAccessExpression(node) ? node.name.text : ts.isStringLiteral(node.argumentExpression) ? node.argumentExpression.text : null;
        if (name === 'h' || name?.startsWith('_')) {
          const sym = ts.isPropertyAccessExpression(node) ? checker.getSymbolAtLocation(node.name) : checker.getSymbolAtLocation(node.argumentExpression);
          if (declaredIn(sym).includes(tensorFile)) report(node, `reads a tensor's ${name === 'h' ? 'native handle' : 'internal member'}: ${node.getText(sf)}`);
        }
      } else if (ts.isIdentifier(node) && !ts.isImportSpecifier(node.parent) && !(ts.isPropertyAccessExpression(node.parent) && node.parent.name === node) && declaredIn(checker.getSymbolAtLocation(node)).includes(nativeFile)) {
        report(node, `uses the addon's ${node.text}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return violations;
}

test('layering: nothing outside src/torch calls operators by name, reads tensor handles or uses the addon', () => {
  const violations = check(tsFiles(srcDir));
  assert.deepEqual(violations.map((v) => `${v.file}:${v.line}: ${v.what}`), []);
});

test('layering: the check finds each kind of violation, and only real ones', () => {
  const probe = join(srcDir, 'nn', '__layering_probe__.ts');
  const text = [
    "import { callT, hasOp, Tensor, tensor } from '../torch/index.js';", // 1
    "import * as torch from '../torch/index.js';", // 2
    "import { native } from '../torch/native.js';", // 3
    'export const a = (x: Tensor) => callT(\'neg\', x.h);', // 4: callT and x.h
    "export const b = () => hasOp('mm') && native.liveTensors() > 0;", // 5: hasOp and native
    "export const c = (x: Tensor) => torch.callTs('chunk', x['h'], 2, 0).length + (x._h === null ? 1 : 0);", // 6: callTs, x['h'], x._h
    'class GPT2 { h = [1]; transformer = { h: [2] }; _cache = 0; }', // 7
    'export const d = (m: GPT2) => m.h[0]! + m.transformer.h[0]! + m._cache; // x.h callT(native.call) in a comment', // 8
    "export const e = 'x.h callT( native.call';", // 9
    'export function f() { const callT = (s: string) => s.length; return callT(\'not an op\'); }', // 10: a local callT
    'export const g = tensor([1]).neg();', // 11
  ].join('\n');
  const found = check([], { [probe]: text }).map((v) => `${v.line}: ${v.what}`);
  assert.deepEqual(found.sort(), [
    "3: imports the addon (../torch/native.js)",
    "4: calls an operator by name: callT(...)",
    "4: reads a tensor's native handle: x.h",
    '5: calls an operator by name: hasOp(...)',
    "5: uses the addon's native",
    '6: calls an operator by name: callTs(...)',
    "6: reads a tensor's internal member: x._h",
    "6: reads a tensor's native handle: x['h']",
  ].sort());
});

test('layering: the source scanned is the source of the build (src/ is found and has the layers)', () => {
  const files = tsFiles(srcDir).map((f) => relative(srcDir, f).split(sep)[0]);
  for (const layer of ['torch', 'nn', 'models', 'generate', 'sppo']) assert.ok(files.includes(layer), `src/${layer} missing`);
  assert.ok(readFileSync(tensorFile, 'utf8').includes('get h(): Handle'), 'Tensor.h is where the check expects it');
});
