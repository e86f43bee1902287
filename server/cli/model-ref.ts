// `name@ref` (ref: a version number or an alias) → its parts; a bare name means the latest version.
export function splitModelRef(text: string): { name: string; ref: string } {
  const at = text.indexOf('@');
  return at === -1 ? { name: text, ref: 'latest' } : { name: text.slice(0, at), ref: text.slice(at + 1) };
}
