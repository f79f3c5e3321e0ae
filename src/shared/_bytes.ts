/**
 * Byte helpers (internal).
 *
 * @module
 */

/**
 * Joins byte chunks into one array.
 *
 * @param parts The chunks, in order.
 * @param size Their total length, when the caller already counted it.
 * @returns A new array holding every chunk.
 */
export function concatBytes(
  parts: readonly Uint8Array[],
  size: number = parts.reduce((n, p) => n + p.length, 0),
): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
