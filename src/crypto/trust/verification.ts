import {
  DeviceId,
  EventId,
  OtherUserIdentity,
  type OlmMachine,
  type OutgoingRequest,
  Qr,
  QrState,
  RoomId,
  Sas,
  UserId,
  VerificationMethod,
  type VerificationRequest,
  VerificationRequestPhase,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import type {
  CrossSigningView,
  VerificationAction,
  VerificationStage,
  VerificationView,
} from '../../shared/messages.ts';
import type { RoomVerificationMessenger } from './room-verification.ts';

/** What a verification needs of its account: the serial queue and the outgoing-request loop. */
export interface VerificationHost {
  run<T>(job: () => Promise<T>): Promise<T>;
  send(request: OutgoingRequest): Promise<void>;
  /** Sends whatever else the machine has queued (e.g. `m.secret.request`). */
  flush(): Promise<void>;
  /** Direct chats and room messages, for in-room verification. */
  rooms: Pick<RoomVerificationMessenger, 'findDirectRoom' | 'sendEvent'>;
}

/** The methods Kirjava offers (spec "Key verification framework"): emoji, and showing a QR code. */
const METHODS = [VerificationMethod.SasV1, VerificationMethod.QrCodeShowV1, VerificationMethod.ReciprocateV1];

const BACKUP_SECRET = 'm.megolm_backup.v1';

/**
 * Interactive key verification for one account (Matrix spec "Key verification", SAS and QR
 * methods), both to-device (the user's own devices) and in-room (another user, inside an
 * encrypted DM). Events reach the machine through sync (to-device) or `receiveRoomEvent`
 * (in-room); the popup reads `list()` and acts through `act()`. After every sync `advance()`
 * takes the steps that need no decision: accepting the other side's emoji start on a request
 * the user accepted, and, once a self-verification is done, asking the now trusted devices
 * for the secrets this device is missing (`m.secret.request`: cross-signing keys, backup key).
 */
export class VerificationFlows {
  /** Flows the user closed in the popup; the machine keeps finished requests for a while. */
  private readonly dismissed = new Set<string>();
  /** Users with an in-room request, besides the tracked ones. */
  private readonly roomPeers = new Set<string>();
  /**
   * The last view of every flow: the machine forgets finished requests at the next sync
   * (garbage collection), but the user must still see how it ended.
   */
  private readonly remembered = new Map<string, VerificationView>();
  private secretsRequested = false;
  private backupKeyReceived = false;

  constructor(
    private readonly machine: OlmMachine,
    private readonly host: VerificationHost,
  ) {
    machine.registerReceiveSecretCallback(async (name) => {
      if (name === BACKUP_SECRET) this.backupKeyReceived = true;
    });
  }

  /** Hands a decrypted `m.key.verification.*` room event (or a request message) to the machine. */
  async receiveRoomEvent(roomId: string, event: Record<string, unknown>): Promise<void> {
    if (typeof event.sender === 'string' && event.sender !== this.machine.userId.toString()) {
      this.roomPeers.add(event.sender);
    }
    await this.machine.receiveVerificationEvent(JSON.stringify(event), new RoomId(roomId));
  }

  /** Every verification the user has not dismissed, newest state of each. */
  async list(): Promise<VerificationView[]> {
    return this.host.run(async () => {
      const live = new Set<string>();
      for (const request of await this.requests()) {
        live.add(request.flowId);
        this.remember(view(request));
      }
      const views: VerificationView[] = [];
      for (const [flowId, last] of this.remembered) {
        if (this.dismissed.has(flowId)) continue;
        if (live.has(flowId) || last.stage === 'done' || last.stage === 'cancelled') {
          views.push(last);
        } else {
          // Gone from the machine before it finished: it timed out.
          views.push({
            ...last,
            stage: 'cancelled',
            emoji: null,
            qr: null,
            qrBytes: null,
            cancelReason: 'The verification timed out',
            cancelledByUs: false,
          });
        }
      }
      return views;
    });
  }

  /** Number of verifications waiting for the user: incoming requests and emoji to compare. */
  async pendingCount(): Promise<number> {
    const views = await this.list();
    return views.filter((v) => v.stage === 'incoming' || v.stage === 'sas-compare' || v.stage === 'qr-scanned').length;
  }

  /** Asks one device (the user's own, or another user's) to verify, to-device. */
  async start(userId: string, deviceId?: string): Promise<VerificationView> {
    return this.host.run(async () => {
      const user = new UserId(userId);
      if (!deviceId) throw new Error('Pick the device to verify');
      const device = await this.machine.getDevice(user, new DeviceId(deviceId));
      if (!device) {
        throw new Error(`Kirjava does not know the device ${deviceId} of ${userId}: refresh the device list`);
      }
      const [request, toDevice] = device.requestVerification(METHODS);
      await this.host.send(toDevice);
      return this.remember({ ...view(request), otherDeviceId: deviceId });
    });
  }

  /**
   * Asks another user to verify in your encrypted direct chat with them, as Element does:
   * an `m.room.message` of msgtype `m.key.verification.request` (MSC2241).
   */
  async startInRoom(userId: string): Promise<VerificationView> {
    return this.host.run(async () => {
      if (userId === this.machine.userId.toString()) {
        throw new Error('Verify your own devices one by one, from the device list');
      }
      const identity = await this.machine.getIdentity(new UserId(userId));
      if (!(identity instanceof OtherUserIdentity)) {
        throw new Error(
          `${userId} has not set up cross-signing, so they cannot be verified as a person: verify their devices ` +
            `one by one`,
        );
      }
      const roomId = await this.host.rooms.findDirectRoom(userId);
      const content = JSON.parse(identity.verificationRequestContent(METHODS)) as Record<string, unknown>;
      // The library leaves out the msgtype (a matrix-rust-sdk bug, matrix-org/matrix-rust-sdk#5643).
      content.msgtype = 'm.key.verification.request';
      const eventId = await this.host.rooms.sendEvent(roomId, 'm.room.message', JSON.stringify(content));
      const request = identity.requestVerification(new RoomId(roomId), new EventId(eventId), METHODS);
      this.roomPeers.add(userId);
      return this.remember(view(request));
    });
  }

  /** The user's decision on one flow. */
  async act(userId: string, flowId: string, action: VerificationAction): Promise<VerificationView | null> {
    if (action === 'dismiss') {
      this.dismissed.add(flowId);
      this.remembered.delete(flowId);
      return null;
    }
    const result = await this.host.run(async () => {
      const request = this.machine.getVerificationRequest(new UserId(userId), flowId);
      if (!request) {
        throw new Error('This verification is over (it timed out or the worker restarted): start a new one');
      }
      await this.perform(request, action);
      return this.remember(view(request));
    });
    await this.advance();
    return result;
  }

  /** Takes the steps that need no decision from the user; runs after every sync. */
  async advance(): Promise<void> {
    const requestSecrets = await this.host.run(async () => {
      let selfVerified = false;
      for (const request of await this.requests()) {
        this.remember(view(request));
        const verification = request.getVerification();
        // The other side started emoji on a request the user accepted (or made): accept it.
        if (
          verification instanceof Sas &&
          verification.startedFromRequest() &&
          !verification.weStarted() &&
          !verification.hasBeenAccepted() &&
          !verification.isCancelled()
        ) {
          await this.sendMaybe(verification.accept());
        }
        if (request.isDone() && request.isSelfVerification()) selfVerified = true;
      }
      if (selfVerified && !this.secretsRequested) {
        this.secretsRequested = true;
        return this.machine.requestMissingSecretsIfNeeded();
      }
      return false;
    });
    if (requestSecrets) await this.host.flush();
  }

  /** The account's cross-signing state, as far as this device knows it. */
  async crossSigning(): Promise<CrossSigningView> {
    return this.host.run(async () => {
      const status = await this.machine.crossSigningStatus();
      const identity = await this.machine.getIdentity(this.machine.userId);
      const own = await this.machine.getDevice(this.machine.userId, this.machine.deviceId);
      if (!this.backupKeyReceived) {
        this.backupKeyReceived = (await this.machine.getSecretsFromInbox(BACKUP_SECRET)).size > 0;
      }
      return {
        identityKnown: identity !== undefined,
        identityVerified: identity?.isVerified() ?? false,
        deviceSignedByOwner: own?.isCrossSignedByOwner() ?? false,
        hasMaster: status.hasMaster,
        hasSelfSigning: status.hasSelfSigning,
        hasUserSigning: status.hasUserSigning,
        hasBackupKey: this.backupKeyReceived,
      };
    });
  }

  private async perform(request: VerificationRequest, action: Exclude<VerificationAction, 'dismiss'>): Promise<void> {
    const verification = request.getVerification();
    switch (action) {
      case 'accept':
        return this.sendMaybe(request.acceptWithMethods(METHODS));
      case 'start-sas': {
        const started = await request.startSas();
        if (!started) throw new Error('The other device does not offer emoji verification');
        return this.host.send(started[1]);
      }
      case 'show-qr': {
        const qr = await request.generateQrCode();
        if (!qr) throw new Error('The other device cannot scan a QR code: use emoji instead');
        return;
      }
      case 'confirm': {
        if (!(verification instanceof Sas)) throw new Error('There are no emoji to confirm in this verification');
        for (const outgoing of await verification.confirm()) await this.host.send(outgoing);
        return;
      }
      case 'mismatch':
        if (!(verification instanceof Sas)) throw new Error('There are no emoji to compare in this verification');
        return this.sendMaybe(verification.cancelWithCode('m.mismatched_sas'));
      case 'confirm-scan':
        if (!(verification instanceof Qr)) throw new Error('No QR code of this verification was scanned');
        return this.sendMaybe(verification.confirmScanning());
      case 'cancel':
        if (verification instanceof Sas || verification instanceof Qr) {
          return this.sendMaybe(verification.cancelWithCode('m.user'));
        }
        return this.sendMaybe(request.cancel());
    }
  }

  /** Keeps the flow's latest view; the other device's id stays once known (the library drops it at the end). */
  private remember(latest: VerificationView): VerificationView {
    const known = this.remembered.get(latest.flowId)?.otherDeviceId ?? null;
    const merged = latest.otherDeviceId === null && known !== null ? { ...latest, otherDeviceId: known } : latest;
    this.remembered.set(latest.flowId, merged);
    return merged;
  }

  private async sendMaybe(request: OutgoingRequest | undefined): Promise<void> {
    if (request) await this.host.send(request);
  }

  private async requests(): Promise<VerificationRequest[]> {
    const users = new Set([this.machine.userId.toString(), ...this.roomPeers]);
    for (const user of await this.machine.trackedUsers()) users.add(user.toString());
    return [...users].flatMap((user) => this.machine.getVerificationRequests(new UserId(user)));
  }
}

function stage(request: VerificationRequest): VerificationStage {
  if (request.isCancelled()) return 'cancelled';
  if (request.isDone()) return 'done';
  const verification = request.getVerification();
  if (verification instanceof Sas) {
    if (verification.isCancelled()) return 'cancelled';
    if (verification.isDone()) return 'done';
    // The emoji are gone from the library once we confirmed: ask that first.
    if (verification.haveWeConfirmed()) return 'sas-confirmed';
    return verification.emoji() ? 'sas-compare' : 'sas-started';
  }
  if (verification instanceof Qr) {
    const state = verification.state();
    if (state === QrState.Cancelled) return 'cancelled';
    if (state === QrState.Done) return 'done';
    if (state === QrState.Scanned) return 'qr-scanned';
    if (state === QrState.Confirmed || state === QrState.Reciprocated) return 'sas-confirmed';
    return 'qr-shown';
  }
  switch (request.phase()) {
    case VerificationRequestPhase.Created:
    case VerificationRequestPhase.Requested:
      return request.weStarted() ? 'requested' : 'incoming';
    case VerificationRequestPhase.Ready:
      return 'ready';
    default:
      return 'sas-started';
  }
}

function view(request: VerificationRequest): VerificationView {
  const verification = request.getVerification();
  const current = stage(request);
  const emoji =
    verification instanceof Sas && current === 'sas-compare'
      ? (verification.emoji() ?? []).map((e) => ({ symbol: e.symbol, name: e.description }))
      : null;
  const qr = verification instanceof Qr && current === 'qr-shown' ? verification : undefined;
  const cancel =
    request.cancelInfo ??
    (verification instanceof Sas || verification instanceof Qr ? verification.cancelInfo() : undefined);
  return {
    flowId: request.flowId,
    otherUserId: request.otherUserId.toString(),
    otherDeviceId: request.otherDeviceId?.toString() ?? null,
    roomId: request.roomId?.toString() ?? null,
    selfVerification: request.isSelfVerification(),
    weStarted: request.weStarted(),
    stage: current,
    emoji,
    qr: qr ? qrModules(qr) : null,
    qrBytes: qr ? base64(qr.toBytes()) : null,
    cancelReason: current === 'cancelled' && cancel ? `${cancel.reason()} (${cancel.cancelCode()})` : null,
    cancelledByUs: current === 'cancelled' && cancel ? cancel.cancelledbyUs() : false,
  };
}

/** The QR code's modules, rendered by the library: row-major, '1' dark, '0' light. */
function qrModules(qr: Qr): { size: number; modules: string } {
  const buffer = qr.toQrCode().renderIntoBuffer();
  return { size: Math.round(Math.sqrt(buffer.length)), modules: Array.from(buffer, (m) => (m ? '1' : '0')).join('') };
}

function base64(bytes: Uint8ClampedArray): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}
