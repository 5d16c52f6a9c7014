/**
 * Dispatches requests from the popup and options pages to the feature that handles them.
 * Each feature module registers its handlers with `onUiRequest`; a handler that throws
 * answers `{ error }` with the error's message, which the UI shows as is.
 */
import { type Runtime, browser, fromThisExtension, senderOrigin } from '../platform/ext.ts';
import { UI_CHANNEL, type UiKind, type UiReply, type UiRequest, type UiRequests } from '../shared/messages.ts';

type Handler<K extends UiKind> = (request: UiRequest<K>) => Promise<UiRequests[K]['reply']>;

const handlers = new Map<UiKind, Handler<UiKind>>();

/** Registers the handler of the UI requests of `kind` (one handler per kind). */
export function onUiRequest<K extends UiKind>(kind: K, handler: Handler<K>): void {
  handlers.set(kind, handler as unknown as Handler<UiKind>);
}

/**
 * The extension's own origin (`chrome-extension://<id>`, `moz-extension://<uuid>`), from its base
 * URL as text: `new URL(…).origin` of a scheme the URL standard does not know is "null" in places.
 */
const extensionOrigin = () => browser.runtime.getURL('').replace(/\/+$/, '');

/**
 * Whether a message comes from the popup or options page (also when opened in a tab), never a
 * content script: from this extension, and the browser's own word on the sending document's
 * origin (MessageSender.origin) is the extension's. `sender.url` decides nothing: a sender
 * without an origin is refused.
 */
export const isOwnPage = (sender: Runtime.MessageSender): boolean =>
  fromThisExtension(sender) && senderOrigin(sender) === extensionOrigin();

/** Answers the extension's own pages on UI_CHANNEL; anything else is not this listener's. */
export function registerUiRouter(): void {
  browser.runtime.onMessage.addListener((message: unknown, sender: Runtime.MessageSender) => {
    if (!fromThisExtension(sender)) return undefined;
    const channel = (message as { channel?: unknown } | null)?.channel;
    if (channel === UI_CHANNEL && isOwnPage(sender)) return handleUiRequest(message as UiRequest);
    return undefined;
  });
}

async function handleUiRequest(request: UiRequest): Promise<UiReply | undefined> {
  const handler = handlers.get(request.kind);
  if (!handler) return undefined;
  try {
    return await handler(request);
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}
