/**
 * Helpers for work that can wait: timers that do not keep a Node process alive, and work
 * done a chunk at a time with a pause between chunks (to yield to work that cannot wait).
 */

/** Lets a Node process exit while `timer` is pending (no-op in the browser). */
export function unref(timer: ReturnType<typeof setTimeout>): void {
  (timer as { unref?: () => void }).unref?.();
}

/**
 * `map` over `items`, `size` at a time concurrently; before each chunk after the first it
 * awaits `between()` (e.g. until the account answers nothing), whose failure is ignored.
 */
export async function mapInChunks<T, R>(
  items: T[],
  size: number,
  between: () => Promise<unknown>,
  map: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) {
    if (i > 0) await between().catch(() => undefined);
    out.push(...(await Promise.all(items.slice(i, i + size).map(map))));
  }
  return out;
}
