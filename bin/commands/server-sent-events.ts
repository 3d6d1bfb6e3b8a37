/** Reading a text/event-stream answer as the HTML standard parses one (event, data, id; comments skipped). */

export interface ServerSentEvent {
  /** "message" when the event names no type. */
  event: string;
  data: string;
  /** The id this event set, if it set one. */
  id?: string;
  /** The id the event set, or the last one before it (what a reconnect sends as Last-Event-ID). */
  lastEventId: string;
}

export async function* readServerSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder();
  let buffered = '';
  let event = '';
  let data: string[] = [];
  let lastEventId = '';
  let id: string | undefined;
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffered.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + (buffered.startsWith('\r\n', end) ? 2 : 1));
      if (line === '') {
        if (data.length) yield { event: event || 'message', data: data.join('\n'), ...(id === undefined ? {} : { id }), lastEventId };
        event = '';
        data = [];
        id = undefined;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) lastEventId = id = value;
    }
  }
}
