// `sppo run CONFIG`: the SPPO loop (src/sppo/loop.ts) from a JSON or YAML config file; rerunning resumes.
import { loadConfigFile } from '../sppo/config.js';
import { runSppo } from '../sppo/loop.js';
import { UsageError } from './usage.js';
import { parseCommand } from './args.js';

export const summary = 'run (or resume) SPPO iterations from a JSON or YAML config file';

const HELP = `usage: sppo run CONFIG [options]

Runs T iterations of Self-Play Preference Optimization as CONFIG (JSON or YAML) describes: each iteration
generates K responses per prompt with the current model, judges every pair, trains the next model on the
chosen / rejected pairs with the current model as reference, evaluates it against the starting model, and
saves it as a Hugging Face folder (runDir/iter-N/checkpoint). Rerunning the same command after a crash
resumes at the first unfinished stage. The fields and the run directory: docs/sppo-loop.md. With
generation.backend, the samples are generated on OpenAI-compatible servers (sppo serve, vLLM): running ones
(urls), or a serverCommand started in the current folder on each iteration's checkpoint.

options:
  --progress / --no-progress   progress bars on stderr (default: when stderr is a terminal)
  -h, --help                   this help
`;

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand('run', argv, { progress: { type: 'boolean' }, 'no-progress': { type: 'boolean' } }, HELP, { positionals: true });
  if (!parsed) return;
  if (parsed.positionals.length !== 1) throw new UsageError(`expected one config file, got ${parsed.positionals.length} arguments\n\n${HELP}`);
  const config = loadConfigFile(parsed.positionals[0]!);
  const progress = parsed.values['no-progress'] ? false : parsed.values.progress ? true : undefined;
  const res = await runSppo(config, { progress });
  console.log(JSON.stringify(res, null, 2));
}
