/**
 * The worker's side of the bridges: page requests on PAGE_CHANNEL, answered only for a
 * page the user allowed (page-requests.ts servedOrigin), and the watch ports that tell a
 * bridge whether the worker runs.
 *
 * A page that is not served gets no reply at all, not even an empty one: the listener
 * keeps the channel open and never calls sendResponse (onMessageAnsweredLater), so the
 * sender sees the port close.
 */
import { KeyringLockedError } from '../crypto/keyring/keyring.ts';
import { type Runtime, browser, fromThisExtension, onMessageAnsweredLater } from '../platform/ext.ts';
import {
  type BridgeMessage,
  type MatrixErrorReply,
  PAGE_CHANNEL,
  type PageReply,
  WATCH_PORT,
} from '../shared/messages.ts';
import type { AccountRegistry } from './accounts.ts';
import type { ClientCoverage } from './coverage.ts';
import { keyring } from './keyring.ts';
import { SiteNotBoundError } from './account-errors.ts';
import { failure, handlePageRequest, servedOrigin } from './page-requests.ts';

/** What the client gets while Kirjava is locked: an error it retries, never plaintext. */
const lockedReply = (error: KeyringLockedError): MatrixErrorReply => ({
  ok: false,
  status: 503,
  errcode: 'M_UNKNOWN',
  error: error.message,
});

/**
 * The bridges' watch ports (they tell the page hook whether the worker runs; see
 * bridge.iife.ts). Closed after WATCH_IDLE_MS without page requests, before Chromium would
 * stop an idle worker (30 s): an open port must never be what keeps the worker running.
 * The page's next request then wakes it (or finds it still running) and reconnects.
 */
const WATCH_IDLE_MS = 20_000;

/**
 * Answers the bridges' page requests for allowed pages with the accounts of `registry`,
 * reports the hook's syncs to `coverage`, and holds the bridges' watch ports.
 */
export function registerPageService(registry: AccountRegistry, coverage: ClientCoverage): void {
  const watchPorts = new Set<Runtime.Port>();
  let watchIdle: ReturnType<typeof setTimeout> | undefined;
  function pageActivity(): void {
    clearTimeout(watchIdle);
    watchIdle = setTimeout(() => {
      for (const port of watchPorts) port.disconnect();
      watchPorts.clear();
    }, WATCH_IDLE_MS);
  }

  browser.runtime.onConnect.addListener((port) => {
    if (port.name !== WATCH_PORT || port.sender?.id !== browser.runtime.id) {
      port.disconnect();
      return;
    }
    watchPorts.add(port);
    port.onDisconnect.addListener(() => watchPorts.delete(port));
    pageActivity();
  });

  onMessageAnsweredLater((message, sender, sendResponse: (reply: PageReply) => void) => {
    if (!fromThisExtension(sender) || (message as { channel?: unknown } | null)?.channel !== PAGE_CHANNEL) return false;
    const { request } = message as BridgeMessage;
    pageActivity();
    servedOrigin(request, sender).then(
      (origin) => {
        if (!origin) return;
        // Locked, every account stays closed (a logout still wipes: it needs no secret).
        const opened = request.kind === 'logout' ? Promise.resolve() : keyring.unlocked();
        const handled = opened.then(() => handlePageRequest(registry, request, origin));
        // A sync covers its site only once its token is the account's as the homeserver confirmed: served,
        // or refused only because the site waits for the user's allow (checked after the token).
        coverage.hookReported(
          request,
          sender,
          handled.then(
            (reply) => reply.ok,
            (error: unknown) => error instanceof SiteNotBoundError,
          ),
        );
        void handled
          .catch((error) => (error instanceof KeyringLockedError ? lockedReply(error) : failure(error)))
          .then(sendResponse);
      },
      () => undefined,
    );
    return true;
  });
}
