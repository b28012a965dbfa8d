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

/** `a.b[2]` from a path of keys and indexes. */
function pathText(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

/** Walks a parsed body (iteratively: nesting depth is the client's) for strings that are not Unicode. */
export function checkWellFormed(value: unknown): void {
  const stack: Array<{ v: unknown; path: (string | number)[] }> = [{ v: value, path: [] }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (typeof v === 'string') {
      if (!wellFormed(v)) throw badRequest(`field "${pathText(path) || 'body'}" holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not Unicode text`);
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push({ v: x, path: [...path, i] }));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (!wellFormed(k)) throw badRequest(`a field name in "${pathText(path) || 'body'}" holds a lone surrogate, which is not Unicode text`);
        stack.push({ v: x, path: [...path, k] });
      }
    }
  }
}
