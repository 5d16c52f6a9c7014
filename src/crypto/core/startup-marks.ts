/**
 * Marks on the Performance timeline for the first time a worker reaches each step of its start
 * (script loaded, first page request, account record read, store key, caches, WASM loaded,
 * machine open, first sync answered). The benchmark's cold-start breakdown reads them in the
 * worker (`performance.getEntriesByType('mark')`, times since the worker started). Each step is
 * marked once per worker, so a long-running worker keeps no more than these few entries.
 */
const marked = new Set<string>();

/** Marks `step` as `kirjava:<step>`, the first time only. */
export function startupMark(step: string): void {
  if (marked.has(step)) return;
  marked.add(step);
  globalThis.performance?.mark?.(`kirjava:${step}`);
}
