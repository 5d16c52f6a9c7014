import type { Runtime } from 'webextension-polyfill';
import { MatrixApiError } from '../crypto/http.js';
import { EncryptionStateUnknownError } from '../crypto/room-encryptor.js';
import { SendRefusedError } from '../crypto/sharing-policy.js';
import type { MatrixErrorReply, PageReply, PageRequest } from '../shared/messages.js';
import { AccountUnusableError, type AccountRegistry } from './accounts.js';
import { searchServiceFor } from './search-service.js';
import { getSettings } from './settings.js';

/** The web origin of the page (or about:blank frame) a message came from. */
function senderOrigin(sender: Runtime.MessageSender): string | undefined {
  const origin = (sender as { origin?: string }).origin;
  if (origin && origin !== 'null') return origin;
  try {
    return sender.url ? new URL(sender.url).origin : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the worker serves this message at all: it must come from one of our content
 * scripts in a tab, on a site the user allowed, about a homeserver the user configured.
 * Anything else gets no answer.
 */
export async function isServed(request: PageRequest, sender: Runtime.MessageSender): Promise<boolean> {
  if (!sender.tab) return false;
  const settings = await getSettings();
  const origin = senderOrigin(sender);
  return (
    origin !== undefined &&
    settings.allowedSites.includes(origin) &&
    typeof request?.baseUrl === 'string' &&
    settings.homeservers.includes(request.baseUrl)
  );
}

function matrixError(status: number, errcode: string, error: string): MatrixErrorReply {
  return { ok: false, status, errcode, error };
}

/** Carries out one request of the page hook (see PageRequest). */
export async function handlePageRequest(registry: AccountRegistry, request: PageRequest): Promise<PageReply> {
  switch (request.kind) {
    case 'login':
      await registry.fromLogin(request.baseUrl, request.body);
      return { ok: true };
    case 'sync': {
      const account = await registry.forToken(request.baseUrl, request.token);
      const body = await account.processSync(request.body);
      // The client gets its sync now; keys upload, queries and to-device go out after.
      account
        .flushOutgoingQueued()
        .catch((error) => console.warn('Kirjava: outgoing requests failed', error))
        .then(() => registry.learnRoomEncryption(account))
        .catch((error) => console.warn('Kirjava: looking up rooms failed', error));
      return { ok: true, body };
    }
    case 'events': {
      const account = await registry.forToken(request.baseUrl, request.token);
      return { ok: true, body: await account.processHistory(request.roomId, request.body) };
    }
    case 'notifications': {
      const account = await registry.forToken(request.baseUrl, request.token);
      return { ok: true, body: await account.processNotifications(request.body) };
    }
    case 'send': {
      try {
        const account = await registry.forToken(request.baseUrl, request.token);
        const decision = await account.prepareSend(request.roomId, request.eventType, request.body);
        return { ok: true, send: decision };
      } catch (error) {
        return sendError(error);
      }
    }
    case 'search':
      return searchServiceFor(registry).search(request.baseUrl, request.token, request.body, request.nextBatch);
    case 'media-key': {
      const account = await registry.forToken(request.baseUrl, request.token);
      return { ok: true, media: typeof request.mxc === 'string' ? ((await account.mediaKey(request.mxc)) ?? null) : null };
    }
    case 'warm':
      // Errors (e.g. a token the homeserver refuses) are for the request that follows.
      await registry.forToken(request.baseUrl, request.token).catch(() => undefined);
      return { ok: true };
    case 'logout':
      await registry.logOut(request.baseUrl, request.token, request.all);
      return { ok: true };
  }
}

/** A send that cannot be encrypted fails with a Matrix error; it is never sent in clear. */
function sendError(error: unknown): MatrixErrorReply {
  if (error instanceof EncryptionStateUnknownError) return matrixError(503, 'M_UNKNOWN', error.message);
  // The user's sharing policy said no: their own words, not "could not encrypt".
  if (error instanceof SendRefusedError) return matrixError(error.status, error.errcode, error.serverMessage);
  if (error instanceof AccountUnusableError) return matrixError(403, 'M_FORBIDDEN', `Kirjava: ${error.message}`);
  if (error instanceof MatrixApiError) {
    return matrixError(error.status >= 400 ? error.status : 502, error.errcode, `Kirjava could not encrypt this message: ${error.serverMessage}`);
  }
  return matrixError(500, 'M_UNKNOWN', `Kirjava could not encrypt this message: ${(error as Error)?.message ?? error}`);
}

/**
 * Any other failure: the hook turns it into an error response so the client retries. An
 * account that cannot do encryption (another app's keys on its device) still lets the
 * client read, undecrypted, rather than stopping its sync for good: the popup says why.
 */
export function failure(error: unknown): PageReply {
  if (error instanceof AccountUnusableError) return { ok: true };
  if (error instanceof MatrixApiError) return matrixError(error.status, error.errcode, error.serverMessage);
  return matrixError(503, 'M_UNKNOWN', `Kirjava: ${(error as Error)?.message ?? String(error)}`);
}
