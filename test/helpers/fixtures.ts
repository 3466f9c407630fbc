// Where the shared fixtures are: ../shared/fixtures beside the project root, or SPPO_HF_FIXTURES.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const hfTiny = process.env.SPPO_HF_FIXTURES ?? join(projectRoot, '..', 'shared', 'fixtures', 'hf-tiny');

/** Committed fixtures in hf-tiny's layout for architectures it lacks (Qwen3), written by scripts/hf-extra-fixtures.py. */
export const hfExtra = join(projectRoot, 'test', 'fixtures', 'hf-extra');

/** The model folders of the hf-tiny fixtures (those with a model.safetensors). */
export function fixtureModels(): string[] {
  if (!existsSync(hfTiny)) return [];
  return readdirSync(hfTiny).filter((d) => existsSync(join(hfTiny, d, 'model.safetensors'))).sort();
}

/** A fixture folder to test, with the reason its tests are skipped (a missing file), or false. */
export interface FixtureCase {
  name: string;
  dir: string;
  skip: string | false;
}

/**
 * One case per hf-tiny model folder, chosen with existsSync only (never by calling the code under test):
 * the folders named in the fixtures' MANIFEST.json (so a folder that is missing registers skipped tests,
 * not none), else the folders present. A case whose folder lacks one of `required` is skipped with that
 * reason; with no fixtures at all there is one skipped case, '(none)'.
 */
export function fixtureCases(required: string[], root = hfTiny): FixtureCase[] {
  if (!existsSync(root)) return [{ name: '(none)', dir: root, skip: `no fixtures at ${root} (set SPPO_HF_FIXTURES)` }];
  const manifest = join(root, 'MANIFEST.json');
  const names = existsSync(manifest)
    ? Object.keys((JSON.parse(readFileSync(manifest, 'utf8')) as { models?: Record<string, unknown> }).models ?? {}).sort()
    : readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  if (names.length === 0) return [{ name: '(none)', dir: root, skip: `no model folders at ${root}` }];
  return names.map((name) => {
    const dir = join(root, name);
    const missing = required.filter((f) => !existsSync(join(dir, f)));
    return { name, dir, skip: missing.length ? `${dir} lacks ${missing.join(', ')}` : false };
  });
}
