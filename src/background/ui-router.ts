/**
 * Dispatches requests from the popup and options pages to the feature that handles them.
 * Each feature module registers its handlers with `onUiRequest`; a handler that throws
 * answers `{ error }` with the error's message, which the UI shows as is.
 */
import type { UiKind, UiReply, UiRequest, UiRequests } from '../shared/messages.js';

type Handler<K extends UiKind> = (request: UiRequest<K>) => Promise<UiRequests[K]['reply']>;

const handlers = new Map<UiKind, Handler<UiKind>>();

export function onUiRequest<K extends UiKind>(kind: K, handler: Handler<K>): void {
  handlers.set(kind, handler as unknown as Handler<UiKind>);
}

export async function handleUiRequest(request: UiRequest): Promise<UiReply | undefined> {
  const handler = handlers.get(request.kind);
  if (!handler) return undefined;
  try {
    return await handler(request);
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}
