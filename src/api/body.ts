/**
 * Request bodies: JSON in UTF-8 only. A body that is not valid UTF-8, or whose strings
 * hold lone surrogates (a `\ud800` escape is valid JSON but not Unicode text), is refused
 * rather than stored with U+FFFD replacements or as text no other system reads back alike.
 */
import { ApiError, badRequest } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** The body as text; a 400 when its bytes are not UTF-8. */
export function decodeUtf8(body: Buffer): string {
  try {
    return utf8.decode(body);
  } catch {
    throw badRequest('request body is not valid UTF-8');
  }
}

/** A 415 unless the media type's charset (when given) is UTF-8. */
export function checkCharset(contentType: string | undefined): void {
  const m = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(contentType ?? '');
  if (m && !/^utf-?8$/i.test(m[1]!)) {
    throw new ApiError(415, 'unsupported_media_type', `request body must be JSON in UTF-8 (got charset ${JSON.stringify(m[1])})`);
  }
}

const wellFormed = (s: string) => (s as string & { isWellFormed(): boolean }).isWellFormed();

/** Where a value sits in the body: its key or index and its parent (the path is built only for an error). */
interface Place {
  key: string | number | null;
  parent: Place | null;
}

/** `a.b[2]` for a place. */
function pathText(at: Place | null): string {
  const keys: (string | number)[] = [];
  for (let p = at; p !== null && p.key !== null; p = p.parent) keys.push(p.key);
  let out = '';
  for (const k of keys.reverse()) out += typeof k === 'number' ? `[${k}]` : out === '' ? k : `.${k}`;
  return out;
}

/**
 * Walks a parsed body for strings that are not Unicode: iteratively, since nesting depth is the
 * client's, and in time linear in the body (a place points at its parent; no path is copied per level).
 */
export function checkWellFormed(value: unknown): void {
  const stack: Array<{ v: unknown; at: Place }> = [{ v: value, at: { key: null, parent: null } }];
  while (stack.length > 0) {
    const { v, at } = stack.pop()!;
    if (typeof v === 'string') {
      if (!wellFormed(v)) throw badRequest(`field "${pathText(at) || 'body'}" holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not Unicode text`);
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push({ v: v[i], at: { key: i, parent: at } });
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (!wellFormed(k)) throw badRequest(`a field name in "${pathText(at) || 'body'}" holds a lone surrogate, which is not Unicode text`);
        stack.push({ v: x, at: { key: k, parent: at } });
      }
    }
  }
}
