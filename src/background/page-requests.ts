import { MatrixApiError } from '../crypto/core/http.ts';
import { EncryptionStateUnknownError } from '../crypto/send/room-encryptor.ts';
import { SendRefusedError } from '../crypto/send/sharing-policy.ts';
import type { MatrixErrorReply, PageReply, PageRequest } from '../shared/messages.ts';
import { AccountUnusableError, SiteNotBoundError, UnconfirmedLoginError } from './account-errors.ts';
import type { AccountRegistry } from './accounts.ts';
import { searchServiceFor } from './search-service.ts';
import { type Runtime, senderOrigin } from '../platform/ext.ts';
import { getSettings } from '../platform/storage.ts';
import { log, requestLog } from './log.ts';
import { errorText } from '../crypto/core/log.ts';
import { storageQuota } from './storage-health.ts';

/**
 * The origin the worker serves this message for, or undefined when it serves it not at all:
 * it must come from one of our content scripts in a tab, on a site the user allowed, about a
 * homeserver the user configured. Anything else gets no answer.
 */
export async function servedOrigin(request: PageRequest, sender: Runtime.MessageSender): Promise<string | undefined> {
  if (!sender.tab) return undefined;
  const settings = await getSettings();
  const origin = senderOrigin(sender);
  const served =
    origin !== undefined &&
    settings.allowedSites.includes(origin) &&
    typeof request?.baseUrl === 'string' &&
    settings.homeservers.includes(request.baseUrl);
  return served ? origin : undefined;
}

function matrixError(status: number, errcode: string, error: string): MatrixErrorReply {
  return { ok: false, status, errcode, error };
}

/**
 * Carries out one request of the page hook (see PageRequest) for a page of `origin`. The
 * request's fields are the page's word; every account it reaches is the one the homeserver
 * says its token belongs to, and one that `origin` may use.
 */
export async function handlePageRequest(
  registry: AccountRegistry,
  request: PageRequest,
  origin: string,
): Promise<PageReply> {
  if (typeof request.baseUrl !== 'string' || (request.kind !== 'login' && typeof request.token !== 'string')) {
    return matrixError(400, 'M_BAD_JSON', 'Kirjava: malformed request');
  }
  switch (request.kind) {
    case 'login':
      if (typeof request.body !== 'string') return matrixError(400, 'M_BAD_JSON', 'Kirjava: malformed request');
      await registry.fromLogin(request.baseUrl, request.body, origin);
      return { ok: true };
    case 'sync': {
      const account = await registry.forToken(request.baseUrl, request.token, origin);
      const body = await account.processSync(request.body);
      // The client gets its sync now; keys upload, queries and to-device go out after.
      account
        .flushOutgoingQueued()
        .catch((error) => log.warn('outgoing requests failed', { error: errorText(error) }))
        .then(() => registry.learnRoomEncryption(account))
        .catch((error) => log.warn('looking up rooms failed', { error: errorText(error) }));
      return { ok: true, body };
    }
    case 'events': {
      const account = await registry.forToken(request.baseUrl, request.token, origin);
      return { ok: true, body: await account.processHistory(request.roomId, request.body) };
    }
    case 'notifications': {
      const account = await registry.forToken(request.baseUrl, request.token, origin);
      return { ok: true, body: await account.processNotifications(request.body, request.onlyHighlight === true) };
    }
    case 'send': {
      // One id follows the send through key sharing and encryption in the log.
      const sendLog = requestLog('send').with({ room: request.roomId, type: request.eventType });
      try {
        const account = await registry.forToken(request.baseUrl, request.token, origin);
        const decision = await account.prepareSend(request.roomId, request.eventType, request.body, sendLog);
        sendLog.info(decision === 'passthrough' ? 'send passed as it is' : 'send encrypted');
        return { ok: true, send: decision };
      } catch (error) {
        storageQuota.refused(error, 'crypto store'); // the popup says so when it was the quota
        const reply = sendError(error);
        sendLog.warn('send refused', { status: reply.status, errcode: reply.errcode, error: errorText(error) });
        return reply;
      }
    }
    case 'search':
      return searchServiceFor(registry).search(request.baseUrl, request.token, origin, request.body, request.nextBatch);
    case 'media-key': {
      const account = await registry.forToken(request.baseUrl, request.token, origin);
      return {
        ok: true,
        media: typeof request.mxc === 'string' ? ((await account.mediaKey(request.mxc)) ?? null) : null,
      };
    }
    case 'warm':
      // Errors (e.g. a token the homeserver refuses) are for the request that follows.
      await registry.forToken(request.baseUrl, request.token, origin).catch(() => undefined);
      return { ok: true };
    case 'logout-prepare':
      await registry.beforeLogout(request.baseUrl, request.token, origin);
      return { ok: true };
    case 'logout':
      await registry.logOut(request.baseUrl, request.token, request.all === true, origin);
      return { ok: true };
  }
}

/** A send that cannot be encrypted fails with a Matrix error; it is never sent in clear. */
function sendError(error: unknown): MatrixErrorReply {
  if (error instanceof EncryptionStateUnknownError) return matrixError(503, 'M_UNKNOWN', error.message);
  // The user's sharing policy said no: their own words, not "could not encrypt".
  if (error instanceof SendRefusedError) return matrixError(error.status, error.errcode, error.serverMessage);
  if (error instanceof AccountUnusableError || error instanceof SiteNotBoundError) {
    return matrixError(403, 'M_FORBIDDEN', `Kirjava: ${error.message}`);
  }
  if (error instanceof MatrixApiError) {
    return matrixError(
      error.status >= 400 ? error.status : 502,
      error.errcode,
      `Kirjava could not encrypt this message: ${error.serverMessage}`,
    );
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
  // Not passed through: a sync handed over undecrypted would lose its room keys for good.
  if (error instanceof SiteNotBoundError) return matrixError(403, 'M_FORBIDDEN', `Kirjava: ${error.message}`);
  if (error instanceof UnconfirmedLoginError) return matrixError(401, 'M_UNKNOWN_TOKEN', `Kirjava: ${error.message}`);
  if (error instanceof MatrixApiError) return matrixError(error.status, error.errcode, error.serverMessage);
  return matrixError(503, 'M_UNKNOWN', `Kirjava: ${(error as Error)?.message ?? String(error)}`);
}
