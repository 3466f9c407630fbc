// The HTTP judge's cache on disk: one JSON line per answered request, {key, template, model, response},
// appended (and flushed) as each answer arrives, so that a rerun pays for nothing twice and an evaluation
// killed half-way resumes where it stopped. The key is the SHA-256 of the template's id, the judge model and
// the whole request (messages, i.e. the texts judged, and sampling). A line cut off by a kill (the last one)
// is dropped when the file is opened; any other bad line is an error naming the file and line.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import type { JudgeRequest, JudgeResponse } from './templates/template.js';

export class VerdictCacheError extends Error {
  override name = 'VerdictCacheError';
}

export function cacheKey(template: string, model: string, request: JudgeRequest): string {
  return createHash('sha256').update(JSON.stringify({ template, model, request })).digest('hex');
}

export class VerdictCache {
  private readonly map = new Map<string, JudgeResponse>();

  /** A cache in `path` (created on the first answer), or in memory only when path is undefined. */
  constructor(readonly path?: string) {
    if (!path || !existsSync(path)) return;
    const text = readFileSync(path, 'utf8');
    const lines = text.split('\n');
    // A file that does not end in a newline was cut off in its last line: that line is dropped (and the file
    // rewritten without it, so the next append starts on a line of its own).
    const torn = text.length > 0 && !text.endsWith('\n');
    let kept = text;
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      const last = i === lines.length - 1;
      let o: { key?: unknown; response?: unknown };
      try {
        o = JSON.parse(line) as typeof o;
      } catch (e) {
        if (last && torn) {
          kept = text.slice(0, text.length - line.length);
          return;
        }
        throw new VerdictCacheError(`${path}:${i + 1}: not a JSON line (${(e as Error).message}); delete the line or the file`);
      }
      if (typeof o.key !== 'string' || !o.response || typeof o.response !== 'object') throw new VerdictCacheError(`${path}:${i + 1}: expected {"key", "response"}`);
      this.map.set(o.key, o.response as JudgeResponse);
    });
    if (kept !== text) writeFileSync(path, kept);
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): JudgeResponse | undefined {
    return this.map.get(key);
  }

  set(key: string, meta: { template: string; model: string }, response: JudgeResponse): void {
    this.map.set(key, response);
    if (!this.path) return;
    mkdirSync(dirname(this.path), { recursive: true });
    appendFileSync(this.path, JSON.stringify({ key, template: meta.template, model: meta.model, response }) + '\n');
  }
}
