import {
  KeysBackupRequest,
  KeysClaimRequest,
  KeysQueryRequest,
  KeysUploadRequest,
  type OlmMachine,
  RoomMessageRequest,
  SignatureUploadRequest,
  ToDeviceRequest,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import { type MatrixHttp, seg } from './http.js';

export type OutgoingRequest =
  | KeysUploadRequest
  | KeysQueryRequest
  | KeysClaimRequest
  | ToDeviceRequest
  | SignatureUploadRequest
  | RoomMessageRequest
  | KeysBackupRequest;

/**
 * Turns the machine's outgoing requests into client-server API calls (paths as in the
 * Matrix spec, "End-to-end encryption" and "Send-to-Device messaging") and reports each
 * answer back with `markRequestAsSent`, which is how the machine learns of uploaded keys,
 * queried devices and claimed one-time keys.
 */
export class OutgoingRequestProcessor {
  /**
   * @param devicesChanged told after the answer of a request that changes what the machine
   *   knows about devices, identities or Olm sessions (keys query and claim, signatures).
   */
  constructor(
    private readonly machine: OlmMachine,
    private readonly http: MatrixHttp,
    private readonly devicesChanged: () => void = () => {},
  ) {}

  async send(request: OutgoingRequest): Promise<void> {
    const response = await this.call(request);
    // SignatureUploadRequest from bootstrapCrossSigning has no id (DESIGN.md §4).
    if (request.id) await this.machine.markRequestAsSent(request.id, request.type, response);
    if (request instanceof KeysQueryRequest || request instanceof KeysClaimRequest || request instanceof SignatureUploadRequest) {
      this.devicesChanged();
    }
  }

  private call(request: OutgoingRequest): Promise<string> {
    if (request instanceof KeysUploadRequest) {
      return this.http.requestText('POST', '/keys/upload', request.body);
    }
    if (request instanceof KeysQueryRequest) {
      return this.http.requestText('POST', '/keys/query', request.body);
    }
    if (request instanceof KeysClaimRequest) {
      return this.http.requestText('POST', '/keys/claim', request.body);
    }
    if (request instanceof ToDeviceRequest) {
      return this.http.requestText(
        'PUT',
        `/sendToDevice/${seg(request.event_type)}/${seg(request.txn_id)}`,
        request.body,
      );
    }
    if (request instanceof SignatureUploadRequest) {
      return this.http.requestText('POST', '/keys/signatures/upload', request.body);
    }
    if (request instanceof RoomMessageRequest) {
      return this.http.requestText(
        'PUT',
        `/rooms/${seg(request.room_id)}/send/${seg(request.event_type)}/${seg(request.txn_id)}`,
        request.body,
      );
    }
    if (request instanceof KeysBackupRequest) {
      return this.http.requestText(
        'PUT',
        `/room_keys/keys?version=${seg(request.version)}`,
        request.body,
      );
    }
    throw new Error(`Unknown outgoing request type ${(request as { type: unknown }).type}`);
  }
}
