// The `sppo` command line: one file per command in src/cli/, each exporting `summary` and `run(argv)`.
import { UsageError } from './usage.js';

interface Command {
  summary: string;
  run(argv: string[]): Promise<void>;
}

const commands: Record<string, () => Promise<Command>> = {
  game: () => import('./game.js'),
  generate: () => import('./generate.js'),
  judge: () => import('./judge.js'),
  train: () => import('./train.js'),
  run: () => import('./run.js'),
  eval: () => import('./eval.js'),
  sft: () => import('./sft.js'),
  merge: () => import('./merge.js'),
  push: () => import('./push.js'),
  demo: () => import('./demo.js'),
  'train-judge': () => import('./train_judge.js'),
  bench: () => import('./bench.js'),
  report: () => import('./report.js'),
  serve: () => import('./serve.js'),
};

// In the order of an SPPO run, then the tools around it.
const ORDER = ['run', 'generate', 'judge', 'train', 'eval', 'bench', 'report', 'merge', 'push', 'sft', 'train-judge', 'serve', 'demo', 'game'];

async function help(): Promise<string> {
  const names = [...ORDER.filter((n) => n in commands), ...Object.keys(commands).filter((n) => !ORDER.includes(n)).sort()];
  const rows = await Promise.all(names.map(async (n) => `  ${n.padEnd(12)} ${(await commands[n]!()).summary}`));
  // `sppo setup` is bin/sppo.js's own (it builds the addon, before anything here can load).
  rows.push(`  ${'setup'.padEnd(12)} build the native addon against libtorch, and the TypeScript (scripts/setup.mjs)`);
  return ['usage: sppo <command> [options]', '', 'commands:', ...rows, '', "'sppo <command> --help' for a command's options"].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(await help());
    return;
  }
  const load = commands[name];
  if (!load) throw new UsageError(`unknown command '${name}'\n\n${await help()}`);
  const cmd = await load();
  await cmd.run(rest);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err);
  console.error(`sppo: ${msg}`);
  if (process.env.SPPO_DEBUG && err instanceof Error) console.error(err.stack);
  process.exit(err instanceof UsageError ? 2 : 1);
});
