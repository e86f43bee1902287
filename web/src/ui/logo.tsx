// The mark: a hull with a sail (inline SVG, so it renders without emoji fonts).
export function Logo() {
  return (
    <svg width="20" height="20" viewBox="0 0 20 20" aria-hidden="true" focusable="false">
      <path d="M2 13h16l-3 4H5z" fill="#60a5fa" />
      <path d="M10 2v10M10 3l6 8h-6z" stroke="#93c5fd" stroke-width="1.5" fill="#93c5fd" />
    </svg>
  );
}
