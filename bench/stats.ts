// Steady-state statistics of repeated timings, and the bench's table rows: each figure is the median
// of the timed repeats (after warm-up), printed with its spread (min-max), and the ratio is of medians.
export interface Stats {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stats(xs: number[]): Stats {
  if (xs.length === 0) throw new Error('stats: no samples');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

export function median(xs: number[]): number {
  return stats(xs).median;
}

/** Runs fn `warmup` times untimed, then `repeats` times timed; returns the seconds of each timed run. */
export function timeRepeats(fn: () => void, repeats: number, warmup = 1, sync: () => void = () => {}): number[] {
  const times: number[] = [];
  for (let r = 0; r < warmup + repeats; r++) {
    sync();
    const t0 = performance.now();
    fn();
    sync();
    if (r >= warmup) times.push((performance.now() - t0) / 1000);
  }
  return times;
}

const cell = (s: Stats | null, digits: number): string =>
  s ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})` : '-';

/** Header of the bench table. */
export function header(): string {
  return `${'measure'.padEnd(34)} ${'sppo: median (min-max)'.padStart(26)} ${'PyTorch: median (min-max)'.padStart(26)}  ${'unit'.padEnd(8)} sppo/PyTorch`;
}

/** One table row; `ours`/`theirs` are samples in the row's unit (theirs null when the peer is missing). */
export function row(name: string, ours: number[], theirs: number[] | null, unit: string, better: 'lower' | 'higher', digits = 3, goal = ''): string {
  const a = stats(ours);
  const b = theirs && theirs.length ? stats(theirs) : null;
  const ratio = b ? `${(a.median / b.median).toFixed(3)}x` : '-';
  return `${name.padEnd(34)} ${cell(a, digits).padStart(26)} ${cell(b, digits).padStart(26)}  ${unit.padEnd(8)} ${ratio} (${better} is better${goal ? `; goal ${goal}` : ''})`;
}

/** A bench script's `--name value` option (undefined when absent), as its own command line gives it. */
export function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

/** A numeric `--name value` option. */
export function numArg(name: string): number | undefined {
  const v = arg(name);
  return v === undefined ? undefined : Number(v);
}
