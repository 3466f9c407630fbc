// What every command shares: option parsing with help, numbers and choices checked with errors that name
// the option, the device and dtype options, and progress bars.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import cliProgress from 'cli-progress';
import { cuda } from '../torch/index.js';
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

/** --dtype: float32, bfloat16 or float16 (undefined: the caller's default). */
export function dtypeOption(v: string | undefined): ModelDType | undefined {
  return choice('dtype', v, MODEL_DTYPES);
}

/** --device: cpu, cuda or cuda:N; by default cuda when available. */
export function deviceOption(v: string | undefined): string {
  const device = v ?? (cuda.isAvailable() ? 'cuda' : 'cpu');
  if (!/^(cpu|cuda(:\d+)?)$/.test(device)) throw new UsageError(`--device must be cpu, cuda or cuda:N, got '${device}'`);
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
