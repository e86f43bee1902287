/**
 * Reads a bundle definition from disk (`<dir>/bundle.json`) together with its labels file, as the CLI
 * and the server's build route need before calling `buildBundle`.
 *
 * @example
 * const { definition, labels } = await loadBundleDefinition('firmware-bundles/image-demo/bundle.json');
 * const built = await buildBundle({ definition, labels, modelBytes });
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { BundleBuildError } from './builder.ts';
import { BundleDefinition } from './definition.ts';
import { issuesLine } from './envelope.ts';

/**
 * Parses a bundle definition file; when `postprocess.labels` names a file, reads it (one label per
 * line, blank lines ignored) from the definition's folder. Paths leaving that folder are refused.
 *
 * @example
 * const { definition, labels } = await loadBundleDefinition('firmware-bundles/tabular-demo/bundle.json');
 * labels // ['low', 'medium', 'high']
 */
export async function loadBundleDefinition(path: string): Promise<{ definition: BundleDefinition; labels?: string[] }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new BundleBuildError('INVALID_DEFINITION', `${path}: ${(err as Error).message}`);
  }
  const parsed = BundleDefinition.safeParse(raw);
  if (!parsed.success) throw new BundleBuildError('INVALID_DEFINITION', `${path}: ${issuesLine(parsed.error)}`);
  const definition = parsed.data;
  const ref = definition.postprocess.labels;
  if (typeof ref !== 'string') return { definition };

  const dir = dirname(resolve(path));
  const file = resolve(dir, ref);
  const rel = relative(dir, file);
  if (isAbsolute(ref) || rel.startsWith('..') || isAbsolute(rel)) throw new BundleBuildError('INVALID_DEFINITION', `labels file "${ref}" must be inside ${dir}`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new BundleBuildError('LABELS_MISSING', `labels file ${file}: ${(err as Error).message}`);
  }
  return { definition, labels: parseLabels(text) };
}

/**
 * Splits a labels file into labels: one per line, trimmed, blank lines dropped.
 *
 * @example
 * parseLabels('low\nmedium\r\nhigh\n') // ['low', 'medium', 'high']
 */
export function parseLabels(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}
