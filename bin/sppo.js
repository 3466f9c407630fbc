#!/usr/bin/env node
// The `sppo` command. The TypeScript is compiled to dist/ by `npm run build` (scripts/setup.mjs).
// `sppo setup` builds the native addon against libtorch (scripts/setup.mjs; in a project that installed
// sppo as a dependency: into node_modules/sppo/build/native), before anything loads it.
if (process.argv[2] === 'setup') {
  const { spawnSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const script = fileURLToPath(new URL('../scripts/setup.mjs', import.meta.url));
  const r = spawnSync(process.execPath, [script, ...process.argv.slice(3)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
await import('../dist/src/cli/main.js');
