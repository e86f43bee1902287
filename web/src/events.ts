// Live updates: GET /api/v1/events read with fetch() (bearer header) and SseParser, reconnecting
// with Last-Event-ID after a drop. Pages subscribe by kind; `status` says whether the stream is live,
// so a page can fall back to polling while the server has no event stream (404) or it is down.
import { signal } from '@preact/signals';
import { session } from './session.ts';
import { SseParser } from './sse-parser.ts';

export interface FlotillaEvent {
  id: number;
  kind: 'device' | 'deployment' | 'rollout' | 'alert' | 'job';
  type: string;
  at: string;
  subject?: string;
  data: Record<string, unknown>;
}

export type StreamStatus = 'connecting' | 'live' | 'unavailable' | 'reconnecting';
export const streamStatus = signal<StreamStatus>('connecting');

type Listener = (e: FlotillaEvent) => void;
const listeners = new Set<Listener>();
let controller: AbortController | null = null;
let lastId: string | null = null;

/** Calls `fn` for each event (of `kinds`, or all); returns the unsubscribe function. */
export function onEvent(fn: Listener, kinds?: FlotillaEvent['kind'][]): () => void {
  const l: Listener = (e) => {
    if (!kinds || kinds.includes(e.kind)) fn(e);
  };
  listeners.add(l);
  return () => listeners.delete(l);
}

export function startEvents(): void {
  if (controller) return;
  controller = new AbortController();
  void run(controller.signal);
}

export function stopEvents(): void {
  controller?.abort();
  controller = null;
  streamStatus.value = 'connecting';
}

async function run(signal: AbortSignal): Promise<void> {
  let delay = 1000;
  while (!signal.aborted) {
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream', authorization: `Bearer ${session.token() ?? ''}` };
      if (lastId) headers['last-event-id'] = lastId;
      const res = await fetch('/api/v1/events', { headers, signal });
      if (res.status === 404) {
        // This control plane has no event stream: pages poll instead; look again later.
        streamStatus.value = 'unavailable';
        await sleep(30_000, signal);
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
      streamStatus.value = 'live';
      delay = 1000;
      const parser = new SseParser((m) => {
        if (m.id) lastId = m.id;
        let e: FlotillaEvent;
        try {
          e = JSON.parse(m.data) as FlotillaEvent;
        } catch {
          return; // not ours: ignore rather than break the stream
        }
        for (const l of listeners) l(e);
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
      streamStatus.value = 'reconnecting';
    } catch {
      if (signal.aborted) return;
      streamStatus.value = streamStatus.value === 'unavailable' ? 'unavailable' : 'reconnecting';
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 15_000);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}
