// Where the time goes: libtorch's operator profiler around a function, as a table of operators (and
// autograd nodes) with their call counts, self time (time not spent in a nested operator) and total time.
//   const { result, rows } = profile(() => step());
//   console.log(formatProfile(rows));
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

interface TraceEvent {
  name: string;
  ph: string;
  ts: number;
  dur: number;
  tid: number | string;
}

/** Runs fn with libtorch's profiler recording; returns fn's result, the rows (most self time first) and the Chrome trace. */
export function profile<T>(fn: () => T): { result: T; rows: ProfileRow[]; trace: string } {
  native.profilerStart();
  let trace = '';
  let result: T;
  try {
    result = fn();
  } finally {
    trace = native.profilerStop();
  }
  return { result, rows: profileRows(JSON.parse(trace) as TraceEvent[]), trace };
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
