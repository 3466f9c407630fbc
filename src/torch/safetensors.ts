// safetensors (https://github.com/huggingface/safetensors): 8 bytes of little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {..}}, then the raw
// little-endian data. npm has no well-kept reader/writer for local files (the packages there parse
// remote headers only, or are abandoned), and the format is this small, so it lives here.
//
// Reading goes straight from the file into each tensor's own memory (pread in the addon): a large
// file is read once, one tensor at a time, and never held in JavaScript memory. Sharded checkpoints
// (model-0000i-of-0000n.safetensors + model.safetensors.index.json) are read and written too.
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { native } from './native.js';
import { ELEMENT_SIZE, type DType } from './dtype.js';
import { Tensor } from './tensor.js';
import { empty } from './creation.js';
import { defaultDevice } from './device.js';

const ST_TO_DTYPE: Record<string, DType> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const DTYPE_TO_ST: Record<DType, string> = Object.fromEntries(Object.entries(ST_TO_DTYPE).map(([k, v]) => [v, k])) as Record<DType, string>;

/** The largest header we accept (the format's own reference implementation caps it at 100 MB). */
const MAX_HEADER = 100_000_000;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Byte offset of the data in the file. */
  offset: number;
  byteLength: number;
}

/** An open safetensors file: its header, read and checked; tensors are loaded on demand. */
export class SafetensorsFile {
  readonly path: string;
  readonly entries: Map<string, TensorEntry>;
  readonly metadata: Record<string, string>;

  private constructor(path: string, entries: Map<string, TensorEntry>, metadata: Record<string, string>) {
    this.path = path;
    this.entries = entries;
    this.metadata = metadata;
  }

  static open(path: string): SafetensorsFile {
    const bad = (msg: string): never => {
      throw new SafetensorsError(`${path}: ${msg}`);
    };
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(`${path}: ${(e as Error).message}`);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8) bad(`not a safetensors file (${size} bytes; the header length alone takes 8)`);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER)) bad(`header length ${n} is implausible (corrupt, or not a safetensors file)`);
      const headerLen = Number(n);
      if (8 + headerLen > size) bad(`header length ${headerLen} runs past the end of the file (${size} bytes): truncated or corrupt`);
      const hb = Buffer.alloc(headerLen);
      readSync(fd, hb, 0, headerLen, 8);
      let header: unknown;
      try {
        header = JSON.parse(hb.toString('utf8'));
      } catch (e) {
        return bad(`header is not valid JSON (${(e as Error).message}): corrupt, or not a safetensors file`);
      }
      if (header === null || typeof header !== 'object' || Array.isArray(header)) bad('header is not a JSON object');
      const dataStart = 8 + headerLen;
      const dataSize = size - dataStart;
      const entries = new Map<string, TensorEntry>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === '__metadata__') {
          if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad('__metadata__ is not an object of strings');
          for (const [k, v] of Object.entries(raw as Record<string, unknown>)) if (typeof v !== 'string') bad(`__metadata__.${k} is not a string`);
          metadata = raw as Record<string, string>;
          continue;
        }
        const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
        if (e === null || typeof e !== 'object') bad(`tensor '${name}': entry is not an object`);
        const dtype = ST_TO_DTYPE[String(e.dtype)];
        if (!dtype) bad(`tensor '${name}': unsupported dtype ${JSON.stringify(e.dtype)} (supported: ${Object.keys(ST_TO_DTYPE).join(', ')})`);
        if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) bad(`tensor '${name}': shape ${JSON.stringify(e.shape)} is not a list of sizes`);
        const offs = e.data_offsets;
        if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0) || offs[1] < offs[0]) {
          bad(`tensor '${name}': data_offsets ${JSON.stringify(offs)} is not [begin, end]`);
        }
        const [b, end] = offs as [number, number];
        const shape = e.shape as number[];
        const need = shape.reduce((a, s) => a * s, 1) * ELEMENT_SIZE[dtype!];
        if (end - b !== need) bad(`tensor '${name}': ${dtype}[${shape.join(',')}] needs ${need} bytes, data_offsets give ${end - b}`);
        if (end > dataSize) bad(`tensor '${name}' ends at byte ${end} of the data, which has ${dataSize}: the file is truncated`);
        entries.set(name, { name, dtype: dtype!, shape, offset: dataStart + b, byteLength: need });
      }
      return new SafetensorsFile(path, entries, metadata);
    } finally {
      closeSync(fd);
    }
  }

  get names(): string[] {
    return [...this.entries.keys()];
  }

  /** Loads one tensor, read from the file straight into its memory; optionally cast and moved. */
  load(name: string, opts: { dtype?: DType; device?: string } = {}): Tensor {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(`${this.path}: no tensor '${name}'`);
    const t = empty(e.shape, { dtype: e.dtype, device: 'cpu' });
    try {
      if (e.byteLength > 0) native.readInto(t.h, this.path, e.offset);
    } catch (err) {
      t.dispose();
      throw new SafetensorsError(`${this.path}: tensor '${name}': ${(err as Error).message}`);
    }
    const wantDtype = opts.dtype && opts.dtype !== e.dtype;
    const device = opts.device ?? defaultDevice();
    const wantDevice = device !== 'cpu';
    if (!wantDtype && !wantDevice) return t;
    let out = wantDtype ? t.to(opts.dtype!) : t;
    if (wantDevice) {
      const moved = out.to(device);
      if (out !== t) out.dispose();
      out = moved;
    }
    t.dispose();
    return out;
  }
}

/** Loads every tensor of a file. */
export function loadSafetensors(path: string, opts: { dtype?: DType; device?: string } = {}): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const f = SafetensorsFile.open(path);
  const tensors = new Map<string, Tensor>();
  try {
    for (const name of f.names) tensors.set(name, f.load(name, opts));
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return { tensors, metadata: f.metadata };
}

type Named = Map<string, Tensor> | Record<string, Tensor>;
const entriesOf = (ts: Named): [string, Tensor][] => (ts instanceof Map ? [...ts.entries()] : Object.entries(ts));

/** Writes tensors to `path` atomically (a temporary file renamed into place). */
export function saveSafetensors(path: string, tensors: Named, metadata: Record<string, string> = {}): void {
  const list = entriesOf(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  const sizes: number[] = [];
  for (const [name, t] of list) {
    const dtype = t.dtype;
    const n = t.numel * ELEMENT_SIZE[dtype];
    header[name] = { dtype: DTYPE_TO_ST[dtype], shape: t.shape, data_offsets: [off, off + n] };
    sizes.push(n);
    off += n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len);
    writeSync(fd, json);
    for (const [, t] of list) {
      const bytes = new Uint8Array(native.toBytes(t.h));
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    }
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  renameSync(tmp, path);
}

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** The weights of a model folder: model.safetensors, or shards listed in model.safetensors.index.json. */
export class WeightFolder {
  readonly dir: string;
  readonly files: SafetensorsFile[];
  readonly #where = new Map<string, SafetensorsFile>();

  constructor(dir: string) {
    this.dir = dir;
    const indexPath = join(dir, INDEX_FILE);
    if (existsSync(indexPath)) {
      let index: { weight_map?: Record<string, string> };
      try {
        index = JSON.parse(readFileSync(indexPath, 'utf8'));
      } catch (e) {
        throw new SafetensorsError(`${indexPath}: not valid JSON (${(e as Error).message})`);
      }
      if (!index.weight_map || typeof index.weight_map !== 'object') throw new SafetensorsError(`${indexPath}: no weight_map`);
      const opened = new Map<string, SafetensorsFile>();
      for (const [name, file] of Object.entries(index.weight_map)) {
        let f = opened.get(file);
        if (!f) {
          f = SafetensorsFile.open(join(dir, file));
          opened.set(file, f);
        }
        if (!f.entries.has(name)) throw new SafetensorsError(`${indexPath}: weight_map puts '${name}' in ${file}, which has no such tensor`);
        this.#where.set(name, f);
      }
      this.files = [...opened.values()];
    } else if (existsSync(join(dir, SINGLE_FILE))) {
      const f = SafetensorsFile.open(join(dir, SINGLE_FILE));
      this.files = [f];
      for (const n of f.names) this.#where.set(n, f);
    } else {
      throw new SafetensorsError(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE}`);
    }
  }

  get names(): string[] {
    return [...this.#where.keys()];
  }
  has(name: string): boolean {
    return this.#where.has(name);
  }
  entry(name: string): TensorEntry | undefined {
    return this.#where.get(name)?.entries.get(name);
  }
  load(name: string, opts: { dtype?: DType; device?: string } = {}): Tensor {
    const f = this.#where.get(name);
    if (!f) throw new SafetensorsError(`${this.dir}: no tensor '${name}' in the checkpoint`);
    return f.load(name, opts);
  }
}

/**
 * Writes tensors as a model folder's weights: one model.safetensors, or shards of at most
 * maxShardBytes with an index (as transformers' save_pretrained), each file written atomically.
 */
export function saveWeights(dir: string, tensors: Named, opts: { maxShardBytes?: number; metadata?: Record<string, string> } = {}): string[] {
  mkdirSync(dir, { recursive: true });
  const list = entriesOf(tensors);
  const max = opts.maxShardBytes ?? 5 * 1024 ** 3;
  const metadata = { format: 'pt', ...opts.metadata };
  const shards: [string, Tensor][][] = [[]];
  let cur = 0;
  let total = 0;
  for (const e of list) {
    const n = e[1].numel * ELEMENT_SIZE[e[1].dtype];
    total += n;
    if (cur > 0 && cur + n > max) {
      shards.push([]);
      cur = 0;
    }
    shards[shards.length - 1]!.push(e);
    cur += n;
  }
  for (const stale of [SINGLE_FILE, INDEX_FILE]) rmSync(join(dir, stale), { force: true });
  if (shards.length === 1) {
    saveSafetensors(join(dir, SINGLE_FILE), new Map(shards[0]), metadata);
    return [SINGLE_FILE];
  }
  const pad = (i: number): string => String(i).padStart(5, '0');
  const names = shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  shards.forEach((s, i) => {
    saveSafetensors(join(dir, names[i]!), new Map(s), metadata);
    for (const [n] of s) weightMap[n] = names[i]!;
  });
  const tmp = join(dir, `${INDEX_FILE}.tmp`);
  writeFileSync(tmp, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
  renameSync(tmp, join(dir, INDEX_FILE));
  return [...names, INDEX_FILE];
}

