/**
 * An upstream's server-sent events, rewritten event by event as they arrive: each event's
 * `data:` lines are joined, read as JSON-RPC and passed through `rewrite`; the event goes out
 * as soon as its blank line is read (nothing waits for the stream to end). Other fields (`id:`,
 * `event:`, `retry:`, comments) are kept; data that is not JSON is dropped (MCP events carry
 * JSON-RPC; empty data is kept). Linear in the stream: every byte is scanned once and
 * a line arriving in many small chunks is joined once. An event longer than `maxEvent`
 * characters is an error (the door cuts the stream).
 */
import { StringDecoder } from 'node:string_decoder';
import { Transform, type TransformCallback } from 'node:stream';

export class SseTooLarge extends Error {}

/**
 * The rewriting itself, synchronous (the stream below and the fuzz target drive it): text in,
 * finished events out, each ending in a blank line.
 */
export class SseScanner {
  private partial: string[] = [];
  private partialLen = 0;
  private fields: string[] = [];
  private data: string[] = [];
  private eventLen = 0;
  private out: string[] = [];

  constructor(
    private readonly rewrite: (message: unknown) => unknown,
    private readonly maxEvent = 8 * 1024 * 1024,
  ) {}

  /** Takes more of the stream; returns the events it completed (rewritten). Throws SseTooLarge. */
  push(text: string): string[] {
    this.scan(text);
    return this.take();
  }

  /** The stream ended: a last event without its blank line is completed. */
  end(): string[] {
    if (this.partialLen > 0) {
      const line = this.partial.join('');
      this.partial = [];
      this.partialLen = 0;
      this.line(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
    if (this.fields.length > 0 || this.data.length > 0) this.dispatch();
    return this.take();
  }

  private take(): string[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  private scan(text: string): void {
    let pos = 0;
    for (;;) {
      const nl = text.indexOf('\n', pos);
      if (nl < 0) {
        if (pos < text.length) {
          this.partial.push(text.slice(pos));
          this.partialLen += text.length - pos;
          if (this.eventLen + this.partialLen > this.maxEvent) throw new SseTooLarge('event too large');
        }
        return;
      }
      let line = text.slice(pos, nl);
      if (this.partialLen > 0) {
        this.partial.push(line);
        line = this.partial.join('');
        this.partial = [];
        this.partialLen = 0;
      }
      pos = nl + 1;
      this.line(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    this.eventLen += line.length;
    if (this.eventLen > this.maxEvent) throw new SseTooLarge('event too large');
    if (line.startsWith('data:')) this.data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5));
    else this.fields.push(line);
  }

  private dispatch(): void {
    const fields = this.fields;
    const data = this.data;
    this.fields = [];
    this.data = [];
    this.eventLen = 0;
    if (fields.length === 0 && data.length === 0) return;
    let out = fields.length > 0 ? `${fields.join('\n')}\n` : '';
    if (data.length > 0) {
      const text = data.join('\n');
      let json: unknown;
      let parsed = true;
      try {
        json = JSON.parse(text);
      } catch {
        parsed = false;
      }
      // Data that is not JSON is not MCP: dropped (a second data line could otherwise carry a
      // tools list past the filter unread). Empty data (a server's priming event) is kept.
      if (!parsed) {
        if (text === '') out += 'data: \n';
      } else {
        const rewritten = this.rewrite(json);
        if (rewritten !== null) out += `data: ${JSON.stringify(rewritten)}\n`;
      }
    }
    if (out !== '') this.out.push(`${out}\n`);
  }
}

/** SseScanner as a stream: bytes in (UTF-8, split anywhere), rewritten events out as each completes. */
export class SseRewriter extends Transform {
  private readonly decoder = new StringDecoder('utf8');
  private readonly scanner: SseScanner;

  constructor(rewrite: (message: unknown) => unknown, maxEvent?: number) {
    super();
    this.scanner = new SseScanner(rewrite, maxEvent);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      for (const e of this.scanner.push(this.decoder.write(chunk))) this.push(e);
      done();
    } catch (e) {
      done(e as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      for (const e of this.scanner.push(this.decoder.end())) this.push(e);
      for (const e of this.scanner.end()) this.push(e);
      done();
    } catch (e) {
      done(e as Error);
    }
  }
}
