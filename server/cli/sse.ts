// A Server-Sent Events reader for fetch() bodies (EventSource cannot send an Authorization header).
// Yields each message's id/event/data and each comment line (`: keep-alive`), per the WHATWG rules
// that matter here: fields split at the first colon, one optional space stripped, data lines joined.

export type SseItem = { kind: 'message'; id?: string; event?: string; data: string } | { kind: 'comment'; text: string };

/**
 * @example
 * for await (const item of readSse(res.body!)) if (item.kind === 'message') console.log(JSON.parse(item.data));
 */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseItem> {
  const decoder = new TextDecoder();
  let pending = '';
  let msg: { id?: string; event?: string; data: string[] } = { data: [] };
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.search(/\r\n|\n|\r/)) !== -1) {
      const line = pending.slice(0, nl);
      pending = pending.slice(pending[nl] === '\r' && pending[nl + 1] === '\n' ? nl + 2 : nl + 1);
      if (line === '') {
        if (msg.data.length) yield { kind: 'message', id: msg.id, event: msg.event, data: msg.data.join('\n') };
        msg = { data: [] };
        continue;
      }
      if (line.startsWith(':')) {
        yield { kind: 'comment', text: line.slice(1).trim() };
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') msg.data.push(value);
      else if (field === 'id') msg.id = value;
      else if (field === 'event') msg.event = value;
    }
  }
}
