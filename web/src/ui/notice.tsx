// Errors and empty states, written for a person: what happened, what to do.
import type { ComponentChildren } from 'preact';

export function ErrorBox({ error, title = 'Something went wrong' }: { error: string | null | undefined; title?: string }) {
  if (!error) return null;
  return (
    <div class="notice notice-error" role="alert">
      <strong>{title}</strong>
      <div>{error}</div>
    </div>
  );
}

export function Info({ children }: { children: ComponentChildren }) {
  return <div class="notice notice-info">{children}</div>;
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}
