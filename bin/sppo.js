#!/usr/bin/env node
// The `sppo` command. The TypeScript is compiled to dist/ by `npm run build` (scripts/setup.mjs).
import '../dist/src/cli/main.js';
