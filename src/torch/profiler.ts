// Where the time goes: libtorch's operator profiler around a function, as a table of operators (and
// autograd nodes) with their call counts, self time (time not spent in a nested operator) and total time.
//   const { result, rows } = profile(() => step());
//   console.log(formatProfile(rows));
import { writeFileSync } from 'node:fs';
import { native } from './native.js';

export interface ProfileRow {
  /** Operator (`aten::mm`) or autograd node (`MmBackward0`). */
  name: string;
  calls: number;
  /** Milliseconds inside this operator, less the operators it called. */
  selfMs: number;
  /** Milliseconds inside this operator, nested operators included (recursive calls counted once). */
  totalMs: number;
}

export interface TraceEvent {
  name: string;
  ph: string;
  /** Start and duration, microseconds. */
  ts: number;
  dur: number;
  tid: number | string;
}

/**
 * Runs fn with libtorch's profiler recording; returns fn's result, the rows (most self time first) and the
 * trace's events. `tracePath` also writes the Chrome trace (chrome://tracing, Perfetto) there.
 */
export function profile<T>(fn: () => T, opts: { tracePath?: string } = {}): { result: T; rows: ProfileRow[]; events: TraceEvent[] } {
  native.profilerStart();
  let trace: Buffer = Buffer.alloc(0);
  let result: T;
  try {
    result = fn();
  } finally {
    trace = native.profilerStop();
  }
  if (opts.tracePath) writeFileSync(opts.tracePath, trace);
  const events = traceEvents(trace);
  return { result, rows: profileRows(events), events };
}

// libtorch writes one event per object, with the fields in this order.
const EVENT = /"name": "((?:[^"\\]|\\.)*)",\s*"ph": "(\w)",\s*"ts": ([\d.e+-]+),\s*"dur": ([\d.e+-]+),\s*"tid": ("?[\w-]+"?)/g;

/** The events of a Chrome trace as libtorch writes it, read in slices (a long recording outgrows one string). */
export function traceEvents(trace: Buffer): TraceEvent[] {
  const out: TraceEvent[] = [];
  const slice = 32 << 20;
  let carry = '';
  for (let at = 0; at < trace.length; at += slice) {
    const text = carry + trace.toString('utf8', at, Math.min(trace.length, at + slice));
    const end = at + slice >= trace.length ? text.length : text.lastIndexOf('}') + 1;
    EVENT.lastIndex = 0;
    for (let m = EVENT.exec(text); m && m.index < end; m = EVENT.exec(text)) {
      out.push({ name: JSON.parse(`"${m[1]}"`) as string, ph: m[2]!, ts: Number(m[3]), dur: Number(m[4]), tid: m[5]!.replace(/"/g, '') });
    }
    carry = text.slice(end);
  }
  return out;
}

/** Self and total time per name from complete ('X') events, nesting found per thread from the time spans. */
export function profileRows(events: TraceEvent[]): ProfileRow[] {
  const rows = new Map<string, ProfileRow>();
  const byThread = new Map<string, TraceEvent[]>();
  for (const e of events) {
    if (e.ph !== 'X') continue;
    const k = String(e.tid);
    if (!byThread.has(k)) byThread.set(k, []);
    byThread.get(k)!.push(e);
  }
  for (const list of byThread.values()) {
    // Parents start no later and last longer than their children: sort by start, longest first.
    list.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
    const stack: { e: TraceEvent; child: number }[] = [];
    const close = (until: number): void => {
      while (stack.length && stack[stack.length - 1]!.e.ts + stack[stack.length - 1]!.e.dur <= until) {
        const { e, child } = stack.pop()!;
        const r = rows.get(e.name) ?? { name: e.name, calls: 0, selfMs: 0, totalMs: 0 };
        r.calls++;
        r.selfMs += Math.max(0, e.dur - child) / 1000;
        if (!stack.some((s) => s.e.name === e.name)) r.totalMs += e.dur / 1000;
        rows.set(e.name, r);
        if (stack.length) stack[stack.length - 1]!.child += e.dur;
      }
    };
    for (const e of list) {
      close(e.ts);
      stack.push({ e, child: 0 });
    }
    close(Infinity);
  }
  return [...rows.values()].sort((a, b) => b.selfMs - a.selfMs);
}

/** The top rows as a fixed-width table. */
export function formatProfile(rows: ProfileRow[], top = 25): string {
  const total = rows.reduce((s, r) => s + r.selfMs, 0);
  const lines = [`${'operator'.padEnd(40)} ${'calls'.padStart(7)} ${'self ms'.padStart(9)} ${'self %'.padStart(7)} ${'total ms'.padStart(9)}`];
  for (const r of rows.slice(0, top)) {
    lines.push(`${r.name.slice(0, 40).padEnd(40)} ${String(r.calls).padStart(7)} ${r.selfMs.toFixed(2).padStart(9)} ${((100 * r.selfMs) / total).toFixed(1).padStart(6)}% ${r.totalMs.toFixed(2).padStart(9)}`);
  }
  lines.push(`${'all'.padEnd(40)} ${''.padStart(7)} ${total.toFixed(2).padStart(9)}`);
  return lines.join('\n');
}
