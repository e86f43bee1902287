// Reads a live SSE response in the background for tests: collected events and comments, waitFor().
import { waitFor } from '../../agent/testing/harness.ts';
import { readSse } from '../../server/cli/sse.ts';

export interface StreamEvent {
  id: number;
  kind: string;
  type: string;
  at: string;
  subject: string;
  data: any;
}

export class SseStream {
  readonly events: StreamEvent[] = [];
  /** The SSE `id:` and `event:` fields next to each event's JSON, to check they agree. */
  readonly fields: Array<{ id?: string; event?: string }> = [];
  readonly comments: string[] = [];
  /** The JSON error body when the stream was refused. */
  body: any;
  private done?: Promise<void>;

  private constructor(
    readonly status: number,
    private readonly abort: AbortController,
  ) {}

  static async open(url: string, token: string | null, headers: Record<string, string> = {}): Promise<SseStream> {
    const abort = new AbortController();
    const res = await fetch(url, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers }, signal: abort.signal });
    const s = new SseStream(res.status, abort);
    if (res.status !== 200 || !res.body) {
      s.body = await res.json().catch(() => null);
      return s;
    }
    s.done = (async () => {
      try {
        for await (const item of readSse(res.body!)) {
          if (item.kind === 'comment') s.comments.push(item.text);
          else {
            s.events.push(JSON.parse(item.data));
            s.fields.push({ id: item.id, event: item.event });
          }
        }
      } catch {
        /* aborted */
      }
    })();
    return s;
  }

  waitFor<T>(pick: (events: StreamEvent[]) => T | undefined | null | false, what: string, timeoutMs = 30_000): Promise<NonNullable<T>> {
    return waitFor(() => pick(this.events) || undefined, what, timeoutMs) as Promise<NonNullable<T>>;
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}
