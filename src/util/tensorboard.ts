// TensorBoard event files (events.out.tfevents.*), written and read here: npm has no well-kept writer (the one
// maintained TensorFlow package, @tensorflow/tfjs-node, brings the whole native TensorFlow along), and the format
// is small. A file is a sequence of TFRecords:
//   uint64 length (little-endian) | uint32 masked CRC32C of the length | data | uint32 masked CRC32C of the data
// (mask: rotate right by 15, plus 0xa282ead8), each data an `Event` protocol buffer (tensorflow/core/util/event.proto):
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
// The first event of a file carries file_version "brain.Event:2". TensorBoard, tensorboardX and torch's
// SummaryWriter write scalars the same way; `wandb sync --sync-tensorboard` reads them.
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@aws-crypto/crc32c';

function masked(data: Uint8Array): number {
  const c = crc32c(data);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

// ---- protocol buffers: the few wire types an Event needs ----

function varint(out: number[], v: bigint): void {
  let x = BigInt.asUintN(64, v);
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
}
const key = (out: number[], field: number, wire: number) => varint(out, BigInt((field << 3) | wire));
function bytesField(out: number[], field: number, b: Uint8Array): void {
  key(out, field, 2);
  varint(out, BigInt(b.length));
  for (const x of b) out.push(x);
}

function encodeValue(tag: string, value: number): Uint8Array {
  const out: number[] = [];
  bytesField(out, 1, Buffer.from(tag, 'utf8'));
  key(out, 2, 5);
  const f = Buffer.alloc(4);
  f.writeFloatLE(value);
  out.push(...f);
  return Uint8Array.from(out);
}

/** One Event: wall time, step, and either the file version or a summary of scalars. */
export function encodeEvent(e: { wallTime: number; step: number; fileVersion?: string; scalars?: Record<string, number> }): Uint8Array {
  const out: number[] = [];
  key(out, 1, 1);
  const d = Buffer.alloc(8);
  d.writeDoubleLE(e.wallTime);
  out.push(...d);
  key(out, 2, 0);
  varint(out, BigInt(e.step));
  if (e.fileVersion !== undefined) bytesField(out, 3, Buffer.from(e.fileVersion, 'utf8'));
  if (e.scalars) {
    const summary: number[] = [];
    for (const [tag, v] of Object.entries(e.scalars)) bytesField(summary, 1, encodeValue(tag, v));
    bytesField(out, 5, Uint8Array.from(summary));
  }
  return Uint8Array.from(out);
}

/** A TFRecord around `data`. */
export function record(data: Uint8Array): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(data.length));
  const c1 = Buffer.alloc(4);
  c1.writeUInt32LE(masked(len));
  const c2 = Buffer.alloc(4);
  c2.writeUInt32LE(masked(data));
  return Buffer.concat([len, c1, Buffer.from(data), c2]);
}

export interface ScalarEvent {
  tag: string;
  step: number;
  value: number;
  wallTime: number;
}

class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array) {}
  varint(): bigint {
    let x = 0n;
    let shift = 0n;
    for (;;) {
      const byte = this.b[this.pos++]!;
      x |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return x;
      shift += 7n;
    }
  }
  /** Each field: its number, wire type and value (a number, bigint or bytes). */
  *fields(): Generator<[number, number, bigint | number | Uint8Array]> {
    while (this.pos < this.b.length) {
      const k = Number(this.varint());
      const field = k >> 3;
      const wire = k & 7;
      const view = Buffer.from(this.b.buffer, this.b.byteOffset, this.b.byteLength);
      if (wire === 0) yield [field, wire, this.varint()];
      else if (wire === 1) {
        yield [field, wire, view.readDoubleLE(this.pos)];
        this.pos += 8;
      } else if (wire === 5) {
        yield [field, wire, view.readFloatLE(this.pos)];
        this.pos += 4;
      } else if (wire === 2) {
        const n = Number(this.varint());
        yield [field, wire, this.b.subarray(this.pos, this.pos + n)];
        this.pos += n;
      } else throw new Error(`protobuf wire type ${wire} not expected in an Event`);
    }
  }
}

/**
 * The scalars of one event file (simple_value summaries), in file order. A record whose CRC does not match, or
 * a truncated last record (a run killed mid-write), ends the reading there, as TensorBoard's reader does.
 */
export function readEventFile(path: string): ScalarEvent[] {
  const buf = readFileSync(path);
  const out: ScalarEvent[] = [];
  let pos = 0;
  while (pos + 12 <= buf.length) {
    const lenBytes = buf.subarray(pos, pos + 8);
    if (buf.readUInt32LE(pos + 8) !== masked(lenBytes)) break;
    const n = Number(buf.readBigUInt64LE(pos));
    if (pos + 12 + n + 4 > buf.length) break;
    const data = buf.subarray(pos + 12, pos + 12 + n);
    if (buf.readUInt32LE(pos + 12 + n) !== masked(data)) break;
    pos += 12 + n + 4;
    let wallTime = 0;
    let step = 0;
    for (const [f, , v] of new Reader(data).fields()) {
      if (f === 1) wallTime = v as number;
      else if (f === 2) step = Number(BigInt.asIntN(64, v as bigint));
      else if (f === 5) {
        for (const [sf, , sv] of new Reader(v as Uint8Array).fields()) {
          if (sf !== 1) continue;
          let tag = '';
          let value: number | undefined;
          for (const [vf, , vv] of new Reader(sv as Uint8Array).fields()) {
            if (vf === 1) tag = Buffer.from(vv as Uint8Array).toString('utf8');
            else if (vf === 2) value = vv as number;
          }
          if (value !== undefined) out.push({ tag, step, value, wallTime });
        }
      }
    }
  }
  return out;
}

/** The event files of a folder, oldest first (their names start with the creation time). */
export function eventFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.startsWith('events.out.tfevents.'))
    .sort((a, b) => Number(a.split('.')[3]) - Number(b.split('.')[3]) || a.localeCompare(b))
    .map((f) => join(dir, f));
}

/**
 * Writes scalars to a new event file in `dir` (events.out.tfevents.<seconds>.<host>.<pid>.<n>), each event
 * appended and flushed as it is written, so TensorBoard shows it at once and a killed run loses nothing written.
 * `lastStep` says, per tag, the highest step already in the folder's files (a resumed run): scalar() skips a step
 * at or below it, so curves continue without duplicate steps.
 */
export class EventWriter {
  readonly path: string;
  private readonly last = new Map<string, number>();
  private static count = 0;

  /**
   * `continueRun` (default true: a resumed `sppo run` continues its curves): steps the folder's event files already
   * hold for a tag are not written again. False: a new run's steps are all written (as TensorBoard's own writers do).
   */
  constructor(readonly dir: string, opts: { continueRun?: boolean } = {}) {
    mkdirSync(dir, { recursive: true });
    if (opts.continueRun ?? true) for (const f of eventFiles(dir)) for (const e of readEventFile(f)) this.last.set(e.tag, Math.max(this.last.get(e.tag) ?? -Infinity, e.step));
    const now = Date.now() / 1000;
    this.path = join(dir, `events.out.tfevents.${Math.floor(now)}.${hostname()}.${process.pid}.${EventWriter.count++}`);
    appendFileSync(this.path, record(encodeEvent({ wallTime: now, step: 0, fileVersion: 'brain.Event:2' })));
  }

  /** The highest step written for `tag` (in this or an earlier file), or undefined. */
  lastStep(tag: string): number | undefined {
    return this.last.get(tag);
  }

  /** Writes the scalars of one step (those with a finite value whose tag has not reached `step`); returns how many. */
  scalars(step: number, values: Record<string, number | null | undefined>, wallTime = Date.now() / 1000): number {
    const fresh: Record<string, number> = {};
    for (const [tag, v] of Object.entries(values)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      if ((this.last.get(tag) ?? -Infinity) >= step) continue;
      fresh[tag] = v;
      this.last.set(tag, step);
    }
    const n = Object.keys(fresh).length;
    if (n > 0) appendFileSync(this.path, record(encodeEvent({ wallTime, step, scalars: fresh })));
    return n;
  }
}
