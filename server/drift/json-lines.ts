// JSON lines, as datasets and reference uploads accept them: one value per line, blank lines skipped.
import { Invalid } from '../errors.ts';

/**
 * The parsed value of every non-blank line with its 1-based line number; a line that is not JSON is
 * refused with its number, so the caller's own checks can name the line too.
 *
 * @example
 * parseJsonLines('{"a":1}\n\n{"a":2}\n') // [{ line: 1, value: { a: 1 } }, { line: 3, value: { a: 2 } }]
 */
export function parseJsonLines(text: string): Array<{ line: number; value: unknown }> {
  const out: Array<{ line: number; value: unknown }> = [];
  text.split('\n').forEach((raw, i) => {
    if (!raw.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      throw Invalid(`line ${i + 1} is not JSON`);
    }
    out.push({ line: i + 1, value });
  });
  return out;
}
