// One colour language for states across pages: green healthy, blue in progress, amber attention, red failed, grey idle/unknown.
const TONE: Record<string, 'ok' | 'busy' | 'warn' | 'bad' | 'idle'> = {
  online: 'ok',
  active: 'ok',
  approved: 'ok',
  ready: 'ok',
  succeeded: 'ok',
  running: 'busy',
  downloading: 'busy',
  verifying: 'busy',
  staging: 'busy',
  activating: 'busy',
  probation: 'busy',
  queued: 'busy',
  waiting: 'busy',
  pending: 'warn',
  paused: 'warn',
  open: 'warn',
  rolled_back: 'warn',
  failed: 'bad',
  rejected: 'bad',
  revoked: 'bad',
  aborted: 'bad',
  cancelled: 'idle',
  offline: 'idle',
  idle: 'idle',
  closed: 'idle',
};

export function toneOf(state: string | null | undefined): string {
  return TONE[state ?? ''] ?? 'idle';
}

/** `text` overrides the shown word where the state's name is not the reader's (e.g. drift verdicts). */
export function Status({ state, title, text }: { state: string | null | undefined; title?: string; text?: string }) {
  const s = state ?? 'no report';
  return (
    <span class={`badge tone-${toneOf(s)}`} title={title}>
      {text ?? s.replace('_', ' ')}
    </span>
  );
}

export function OnlineDot({ online }: { online: boolean }) {
  return (
    <span class={`dot ${online ? 'tone-ok' : 'tone-idle'}`} role="img" aria-label={online ? 'online' : 'offline'} title={online ? 'online' : 'offline'} />
  );
}
