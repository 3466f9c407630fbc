// What every command shares: option parsing with help, numbers and choices checked with errors that name
// the option, the device and dtype options, and progress bars.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { buildFeatures, cuda, libtorchVersion, ones, tidy } from '../torch/index.js';
import { MODEL_DTYPES, type ModelDType } from '../judge/spec.js';
import { UsageError } from './usage.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type WithHelp<O extends Options> = O & { help: { type: 'boolean'; short: 'h' } };
type Config<O extends Options> = { args: string[]; strict: true; allowPositionals: boolean; options: WithHelp<O> };
export type Parsed<O extends Options> = ReturnType<typeof parseArgs<Config<O>>>;

/**
 * Parses argv against `options` (plus -h/--help). Returns null after printing `help` when asked for it;
 * a bad option, a missing required one or an unexpected argument is a UsageError that shows the help.
 */
export function parseCommand<O extends Options>(
  name: string,
  argv: string[],
  options: O,
  help: string,
  opts: { required?: (keyof O & string)[]; positionals?: boolean } = {},
): Parsed<O> | null {
  let parsed: Parsed<O>;
  try {
    const config: Config<O> = { args: argv, strict: true, allowPositionals: opts.positionals ?? false, options: { ...options, help: { type: 'boolean', short: 'h' } } };
    parsed = parseArgs(config);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${help}`);
  }
  const values = parsed.values as Record<string, unknown>;
  if (values.help) {
    console.log(help);
    return null;
  }
  for (const k of opts.required ?? []) {
    if (values[k] === undefined) throw new UsageError(`--${k} is required (sppo ${name} --help)`);
  }
  return parsed;
}

/**
 * A number option: undefined gives `dflt`; anything else must be a (whole) number in [min, max], or in
 * (min, max] when `open`.
 */
export function num(name: string, v: string | undefined, dflt: number, o: { integer?: boolean; min?: number; max?: number; open?: boolean } = {}): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  const min = o.min ?? -Infinity;
  const max = o.max ?? Infinity;
  if (v.trim() === '' || !Number.isFinite(x) || (o.integer && !Number.isInteger(x)) || x < min || x > max || (o.open && x === min)) {
    const range = max === Infinity ? (min === -Infinity ? 'finite' : `${o.open ? '>' : '>='} ${min}`) : `in ${o.open ? '(' : '['}${min}, ${max}]`;
    throw new UsageError(`--${name} must be ${o.integer ? 'an integer' : 'a number'} ${range}, got '${v}'`);
  }
  return x;
}

/** A number option without a default: undefined when not given. */
export function optNum(name: string, v: string | undefined, o: { integer?: boolean; min?: number; max?: number; open?: boolean } = {}): number | undefined {
  return v === undefined ? undefined : num(name, v, 0, o);
}

/** An option with a fixed set of values. */
export function choice<T extends string>(name: string, v: string | undefined, allowed: readonly T[], dflt: T): T;
export function choice<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined;
export function choice<T extends string>(name: string, v: string | undefined, allowed: readonly T[], dflt?: T): T | undefined {
  if (v === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

/**
 * --dtype: float32, bfloat16 or float16 (undefined: the caller's default). With the device, float16 on a CPU
 * whose libtorch has no float16 matrix product (1.13's) is refused here, not by the first layer's aten error.
 */
export function dtypeOption(v: string | undefined, device?: string): ModelDType | undefined {
  const dtype = choice('dtype', v, MODEL_DTYPES);
  if (dtype === 'float16' && device === 'cpu') {
    try {
      tidy(() => ones([2, 2], { dtype: 'float16' }).matmul(ones([2, 2], { dtype: 'float16' })));
    } catch {
      throw new UsageError(`--dtype float16: this libtorch (${libtorchVersion()}) has no float16 matrix product on the CPU; use bfloat16 or float32 there`);
    }
  }
  return dtype;
}

/** --device: cpu, cuda or cuda:N; by default cuda when available. */
export function deviceOption(v: string | undefined): string {
  const device = v ?? (cuda.isAvailable() ? 'cuda' : 'cpu');
  if (!/^(cpu|cuda(:\d+)?)$/.test(device)) throw new UsageError(`--device must be cpu, cuda or cuda:N, got '${device}'`);
  if (device !== 'cpu') {
    if (!cuda.isAvailable()) throw new UsageError(`--device ${device}: no CUDA device here (this libtorch, ${libtorchVersion()}, ${buildFeatures().cuda ? 'sees no GPU' : 'is built without CUDA'})`);
    const index = device === 'cuda' ? 0 : Number(device.slice(5));
    if (index >= cuda.deviceCount()) throw new UsageError(`--device ${device}: there ${cuda.deviceCount() === 1 ? 'is 1 CUDA device' : `are ${cuda.deviceCount()} CUDA devices`} (cuda:0${cuda.deviceCount() > 1 ? ` to cuda:${cuda.deviceCount() - 1}` : ''})`);
  }
  return device;
}

/** A progress bar on stderr: `label [====] value/total unit | extra | eta`. */
export function progressBar(label: string, unit: string, extra = ''): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} ${unit}${extra ? ` | ${extra}` : ''} | {eta_formatted} left`, stream: process.stderr, hideCursor: false },
    cliProgress.Presets.shades_classic,
  );
}

/** --chat-template-kwargs JSON: variables given to the chat template (e.g. '{"enable_thinking": false}'); a JSON object. */
export function chatTemplateKwargsOption(v: string | undefined): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(v);
  } catch (e) {
    throw new UsageError(`--chat-template-kwargs must be a JSON object, got '${v}' (${(e as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`--chat-template-kwargs must be a JSON object, got '${v}'`);
  return value as Record<string, unknown>;
}

/** The same path for files that exist (links followed), the absolute path for ones that do not. */
function samePath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/**
 * Checks an output option before any work: it must not name one of the command's inputs (`--out` the same
 * file as `--generations` would replace the input), and an output file must not be an existing folder (the
 * write at the end would fail and lose the work). `inputs` maps each input option (`--prompts`) to its path.
 */
export function checkOutput(flag: string, out: string, inputs: Record<string, string | undefined>, kind: 'file' | 'folder' = 'file'): void {
  const target = samePath(out);
  for (const [name, path] of Object.entries(inputs)) {
    if (path !== undefined && samePath(path) === target) {
      throw new UsageError(`${flag} ${out} is the ${name} input: writing it would replace what the command reads; give another path`);
    }
  }
  if (kind === 'file' && existsSync(out) && statSync(out).isDirectory()) throw new UsageError(`${flag} ${out} is a folder; give a file path`);
}
