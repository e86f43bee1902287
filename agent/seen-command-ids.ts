// The ids of commands already accepted, each kept until its command expires: a command id is
// accepted once. Expiries are bounded (MAX_COMMAND_TTL_MS), so remembering an id until its expiry is
// enough — after that the command is refused as expired anyway. The memory is bounded too: when it is
// full of unexpired ids, new commands are refused (they are harmless ones; refusing is safe) rather
// than forgetting an id early. Persisted beside state.json so a restart does not reopen the window.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { writeJsonAtomic } from './fs-atomic.ts';

export const SEEN_COMMANDS_FILE = 'seen-commands.json';
export const MAX_SEEN_COMMANDS = 1024;

const Persisted = z.object({ v: z.literal(1), ids: z.array(z.tuple([z.string(), z.number()])) });

export type SeenVerdict = 'fresh' | 'replay' | 'full';

export class SeenCommandIds {
  private readonly ids = new Map<string, number>();

  constructor(private readonly max = MAX_SEEN_COMMANDS) {}

  get size(): number {
    return this.ids.size;
  }

  /** Whether `id` may run now; a fresh id is remembered until `expiresAtMs`. */
  admit(id: string, expiresAtMs: number, nowMs: number): SeenVerdict {
    this.prune(nowMs);
    if (this.ids.has(id)) return 'replay';
    if (this.ids.size >= this.max) return 'full';
    this.ids.set(id, expiresAtMs);
    return 'fresh';
  }

  private prune(nowMs: number): void {
    for (const [id, exp] of this.ids) if (exp <= nowMs) this.ids.delete(id);
  }

  async load(file: string, nowMs = Date.now()): Promise<void> {
    try {
      const parsed = Persisted.safeParse(JSON.parse(await readFile(file, 'utf8')));
      // An unreadable file only shortens the memory; expiries still bound what a replay can do.
      if (parsed.success) for (const [id, exp] of parsed.data.ids.slice(-this.max)) this.ids.set(id, exp);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
    this.prune(nowMs);
  }

  async save(file: string): Promise<void> {
    await writeJsonAtomic(file, { v: 1, ids: [...this.ids] });
  }
}
