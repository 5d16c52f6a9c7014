import {
  KeysBackupRequest,
  KeysClaimRequest,
  KeysQueryRequest,
  KeysUploadRequest,
  type OlmMachine,
  type OutgoingRequest,
  RoomMessageRequest,
  SignatureUploadRequest,
  ToDeviceRequest,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import { type MatrixHttp, seg } from './http.ts';
import { DEFAULT_RETRY, type RetryPolicy, type Sleep, sleep, withRetries } from './retry.ts';
import { uploadKeys } from './keys-upload.ts';
import { type Logger, defaultLog } from './log.ts';

/**
 * Turns the machine's outgoing requests into client-server API calls (paths as in the
 * Matrix spec, "End-to-end encryption" and "Send-to-Device messaging") and reports each
 * answer back with `markRequestAsSent`, which is how the machine learns of uploaded keys,
 * queried devices and claimed one-time keys. A request that fails for a reason that may
 * pass (rate limit, server error, no answer) is tried again under the retry policy; only a
 * successful answer is reported, and when the policy gives up the Matrix error is thrown.
 * Keys uploads keep the server's one-time keys within its limit (uploadKeys).
 */
export class OutgoingRequestProcessor {
  private readonly retry: RetryPolicy;

  /**
   * @param machine the account's OlmMachine, whose outgoing requests these are.
   * @param http the homeserver, called with the account's access token.
   * @param devicesChanged told after the answer of a request that changes what the machine
   *   knows about devices, identities or Olm sessions (keys query and claim, signatures).
   * @param retry overrides of DEFAULT_RETRY.
   * @param wait how a retry waits (tests pass a quicker or recording one).
   * @param log where a keys upload that had to leave its one-time keys out says so.
   */
  constructor(
    private readonly machine: OlmMachine,
    private readonly http: MatrixHttp,
    private readonly devicesChanged: () => void = () => {},
    retry: Partial<RetryPolicy> = {},
    private readonly wait: Sleep = sleep,
    private readonly log: Logger = defaultLog,
  ) {
    this.retry = { ...DEFAULT_RETRY, ...retry };
  }

  async send(request: OutgoingRequest): Promise<void> {
    const [method, path] = this.route(request);
    const exchange = (body: string) =>
      withRetries((timeoutMs) => this.http.requestText(method, path, body, timeoutMs), this.retry, this.wait);
    const response =
      request instanceof KeysUploadRequest
        ? await uploadKeys(request.body, exchange, this.log)
        : await exchange(request.body);
    // The SignatureUploadRequest of bootstrapCrossSigning has no id: nothing to report.
    if (request.id) await this.machine.markRequestAsSent(request.id, request.type, response);
    if (
      request instanceof KeysQueryRequest ||
      request instanceof KeysClaimRequest ||
      request instanceof SignatureUploadRequest
    ) {
      this.devicesChanged();
    }
  }

  /** The method and path (below `/_matrix/client/v3`) of a request. */
  private route(request: OutgoingRequest): [method: string, path: string] {
    if (request instanceof KeysUploadRequest) return ['POST', '/keys/upload'];
    if (request instanceof KeysQueryRequest) return ['POST', '/keys/query'];
    if (request instanceof KeysClaimRequest) return ['POST', '/keys/claim'];
    if (request instanceof SignatureUploadRequest) return ['POST', '/keys/signatures/upload'];
    if (request instanceof ToDeviceRequest) {
      return ['PUT', `/sendToDevice/${seg(request.event_type)}/${seg(request.txn_id)}`];
    }
    if (request instanceof RoomMessageRequest) {
      return ['PUT', `/rooms/${seg(request.room_id)}/send/${seg(request.event_type)}/${seg(request.txn_id)}`];
    }
    if (request instanceof KeysBackupRequest) return ['PUT', `/room_keys/keys?version=${seg(request.version)}`];
    throw new Error(`Unknown outgoing request type ${(request as { type: unknown }).type}`);
  }
}
