/**
 * Appends received chunks to what a reader holds so far in amortised O(1) per byte.
 * `Buffer.concat([held, chunk])` on every chunk copies everything held each time: a
 * message trickled one byte per packet costs O(n²) (a 64 KB ClientHello: ~2 GB copied).
 * Here the bytes go into a store whose capacity doubles; each call returns a view of the
 * store. Views handed out earlier are never overwritten (only bytes past the end of what
 * was written are), so callers may keep and slice them freely.
 */
export class ByteAppender {
  private store: Buffer | null = null;
  /** Offset in `store` just past the last byte written. */
  private end = 0;

  /**
   * `held` followed by `chunk`. With nothing held the chunk itself comes back (no copy:
   * the common case of a whole message in one read). `held` should be the previous
   * result of this call, or a tail of it.
   */
  append(held: Buffer | null, chunk: Buffer): Buffer {
    if (held === null || held.length === 0) return chunk;
    if (chunk.length === 0) return held;
    const s = this.store;
    if (s !== null && held.buffer === s.buffer && held.byteOffset + held.length === s.byteOffset + this.end && this.end + chunk.length <= s.length) {
      chunk.copy(s, this.end);
      this.end += chunk.length;
      return s.subarray(held.byteOffset - s.byteOffset, this.end);
    }
    const need = held.length + chunk.length;
    const next = Buffer.allocUnsafe(Math.max(need * 2, 1024));
    held.copy(next, 0);
    chunk.copy(next, held.length);
    this.store = next;
    this.end = need;
    return next.subarray(0, need);
  }
}
