// Loads data for a page and reloads on demand; the error is kept readable for the page to show.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { readable } from '../api.ts';
import { type FlotillaEvent, onEvent } from '../events.ts';
import { oneAtATime } from './one-at-a-time.ts';
import { ReloadThrottle } from './reload-throttle.ts';

export interface Loaded<T> {
  data: T | undefined;
  error: string | null;
  loading: boolean;
  reload(): Promise<void>;
}

export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  // One load at a time (one-at-a-time.ts): a poll or an event while a load is in flight asks for one more
  // after it. Before, each started a load that discarded the one in flight, so a page whose answer took
  // longer than its poll interval (3 s, 5 s; the fleet took 3.4 s at 10,000 devices on a loaded server)
  // showed nothing until one load happened to finish before the next poll, its loads all competing for
  // the same server. New deps still win at once.
  const reload = useMemo(
    () =>
      oneAtATime(async () => {
        const mine = ++seq.current;
        try {
          const v = await load();
          if (mine !== seq.current) return; // loads for newer deps won
          setData(v);
          setError(null);
        } catch (err) {
          if (mine === seq.current) setError(readable(err));
        } finally {
          if (mine === seq.current) setLoading(false);
        }
      }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    deps,
  );
  useEffect(() => {
    setLoading(true);
    void reload();
  }, [reload]);
  return { data, error, loading, reload };
}

/**
 * Whether pages poll at all: `sessionStorage['flotilla.poll'] = 'off'` leaves updates to the event
 * stream alone (the browser tests use it to prove a page follows the stream without polling).
 */
export function pollingEnabled(): boolean {
  return sessionStorage.getItem('flotilla.poll') !== 'off';
}

/** Runs `fn` every `ms` while mounted (polling where no event covers a change). */
export function useInterval(fn: () => void, ms: number | null): void {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (ms === null || !pollingEnabled()) return;
    const t = setInterval(() => saved.current(), ms);
    return () => clearInterval(t);
  }, [ms]);
}

/**
 * Reloads on events of these kinds (those `accept` lets through): at least `ms` after an event, so a burst of
 * device events during a fleet-wide deployment becomes one refresh, and never sooner than twice the last
 * reload's time after it (reload-throttle.ts), so a slow page does not reload back to back while events stream.
 */
export function useEventReload(kinds: FlotillaEvent['kind'][], reload: () => Promise<void>, accept: (e: FlotillaEvent) => boolean = () => true, ms = 500): void {
  const saved = useRef({ reload, accept });
  saved.current = { reload, accept };
  useEffect(() => {
    const throttle = new ReloadThrottle(() => saved.current.reload(), ms);
    const off = onEvent((e) => {
      if (saved.current.accept(e)) throttle.event();
    }, kinds);
    return () => {
      off();
      throttle.stop();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [kinds.join(','), ms]);
}
