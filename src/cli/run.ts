// `sppo run CONFIG`: the SPPO loop (src/sppo/loop.ts) from a JSON or YAML config file; rerunning resumes.
// With --nproc N it starts N local ranks (src/cli/launch.ts); under a launcher that set WORLD_SIZE (the ranks
// started here, torchrun, srun) it joins the c10d group the variables describe and runs data parallel.
import { loadConfigFile } from '../sppo/config.js';
import { runSppo } from '../sppo/loop.js';
import { prefetchHubNames } from '../sppo/hub_names.js';
import { distEnv, distributedAvailable, initProcessGroup, type Backend, type ProcessGroup } from '../torch/index.js';
import { UsageError } from './usage.js';
import { optNum, parseCommand } from './args.js';
import { launchRanks } from './launch.js';
import { REPORT_TO_OPTIONS, reportTargets } from './report_to.js';

export const summary = 'run (or resume) SPPO iterations from a JSON or YAML config file';

const HELP = `usage: sppo run CONFIG [options]

Runs T iterations of Self-Play Preference Optimization as CONFIG (JSON or YAML) describes: each iteration
generates K responses per prompt with the current model, judges every pair, trains the next model on the
chosen / rejected pairs with the current model as reference, evaluates it against the starting model, and
saves it as a Hugging Face folder (runDir/iter-N/checkpoint). Rerunning the same command after a crash
resumes at the first unfinished stage. The fields and the run directory: docs/sppo-loop.md. With
generation.backend, the samples are generated on OpenAI-compatible servers (sppo serve, vLLM): running ones
(urls), or a serverCommand started in the current folder on each iteration's checkpoint.

Data parallel (docs/distributed.md): --nproc N starts N ranks here; under torchrun or srun (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT set) the command joins their c10d group as it is. Generation and
judging are shared out by chunks, training is DDP (the same global batch), rank 0 writes the run's files.

options:
  --nproc N                    start N local ranks (default 1: this process alone)
  --backend gloo|nccl          c10d backend (default: nccl on CUDA, gloo on CPUs)
  --timeout SECONDS            limit on each collective and on the start (default 1800)
  --zero1                      shard the optimizer state across the ranks (ZeRO stage 1; the same result)
  --progress / --no-progress   progress bars on stderr (default: when stderr is a terminal)
  --report-to T                tensorboard | wandb | none: overrides the config's report (TensorBoard event files
                               under runDir/tensorboard/; wandb: the same, synced with wandb sync --sync-tensorboard)
  -h, --help                   this help
`;

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand('run', argv, {
    progress: { type: 'boolean' }, 'no-progress': { type: 'boolean' }, nproc: { type: 'string' }, backend: { type: 'string' }, timeout: { type: 'string' }, zero1: { type: 'boolean' }, 'report-to': REPORT_TO_OPTIONS['report-to'],
  }, HELP, { positionals: true });
  if (!parsed) return;
  if (parsed.positionals.length !== 1) throw new UsageError(`expected one config file, got ${parsed.positionals.length} arguments\n\n${HELP}`);
  const nproc = optNum('nproc', parsed.values.nproc, { integer: true, min: 1 }) ?? 1;
  const timeoutS = optNum('timeout', parsed.values.timeout, { min: 0, open: true }) ?? 1800;
  const backend = parsed.values.backend;
  if (backend !== undefined && backend !== 'gloo' && backend !== 'nccl') throw new UsageError(`--backend: expected gloo or nccl, got '${backend}'`);
  const env = distEnv();
  if (nproc > 1) {
    if (env) throw new UsageError(`--nproc ${nproc}, but WORLD_SIZE=${env.worldSize} is already set by a launcher: leave --nproc out under torchrun or srun`);
    // The same command in each rank, without --nproc.
    const rest: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === '--nproc') i++;
      else if (!argv[i]!.startsWith('--nproc=')) rest.push(argv[i]!);
    }
    // A bad config fails here, once; what it names on the Hub is downloaded here, once, not by every rank at once.
    await prefetchHubNames(loadConfigFile(parsed.positionals[0]!));
    const avail = distributedAvailable();
    if (!avail.available) throw new Error(`sppo run --nproc ${nproc}: ${avail.reason}`);
    process.exitCode = await launchRanks(nproc, process.argv[1]!, ['run', ...rest]);
    return;
  }
  const config = loadConfigFile(parsed.positionals[0]!);
  const report = reportTargets(parsed.values['report-to']);
  if (report) config.report = report;
  const progress = parsed.values['no-progress'] ? false : parsed.values.progress ? true : undefined;
  let pg: ProcessGroup | undefined;
  if (env && env.worldSize > 1) pg = await initProcessGroup({ env, timeoutMs: timeoutS * 1000, ...(backend ? { backend: backend as Backend } : {}) });
  const res = await runSppo(config, { progress, processGroup: pg, zero1: parsed.values.zero1 === true });
  if (!pg || pg.rank === 0) console.log(JSON.stringify(res, null, 2));
  if (pg) {
    await pg.barrier();
    pg.destroy();
  }
}
