import { CollectStrategy, type OlmMachine, type UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import type { DeviceView, SharingPolicy } from '../../shared/messages.ts';
import { deviceView, trustState } from '../trust/device-trust.ts';
import { MatrixApiError } from '../core/http.ts';
import { type Logger, silentLog } from '../core/log.ts';

/** Where the user's key sharing choices come from, and how to ask them (the worker provides it). */
export interface SharingDecisions {
  /** The policy for this room: the room's own, else the account's (default 'all'). */
  policyFor(roomId: string): Promise<SharingPolicy>;
  /**
   * Asks the user whether to send although these devices are unverified; resolves with
   * their answer or 'timeout' after the bounded wait.
   */
  ask(roomId: string, devices: DeviceView[]): Promise<'send' | 'cancel' | 'timeout'>;
}

/** The user cancelled the send, or did not answer in time: the client gets this Matrix error. */
export class SendRefusedError extends MatrixApiError {
  constructor(message: string) {
    super(403, 'M_FORBIDDEN', message, 'send');
  }
}

/**
 * Decides with whom a room key may be shared before a send (the key sharing policy):
 * 'all' shares with every device that is not blacklisted (as Element does); 'cross-signed'
 * only with devices their owner cross-signed (CollectStrategy.identityBasedStrategy); 'ask'
 * shares with all, but first asks the user about unverified devices they have not approved
 * for this room yet. The question is asked outside the account's queue, so syncs (and
 * verifying the device meanwhile) go on while the send waits. Without the user's decisions
 * (Node tests, an account opened for a key export) every send shares under 'all'.
 */
export class SendPolicy {
  /** room id → devices (user|device) the user chose to send to anyway. */
  private readonly approved = new Map<string, Set<string>>();
  /** Questions on screen, by room and devices: concurrent sends share one question. */
  private readonly asking = new Map<string, Promise<'send' | 'cancel' | 'timeout'>>();

  /**
   * @param machine the account's OlmMachine, which knows the devices and their trust.
   * @param recipientsOf who a room key of the room would go to, devices tracked and queried;
   *   no one when the room is not encrypted. Called inside `run`.
   * @param run runs a lookup on the account's serial queue.
   * @param decisions the user's choices, and how to ask them.
   */
  constructor(
    private readonly machine: OlmMachine,
    private readonly recipientsOf: (roomId: string) => Promise<UserId[]>,
    private readonly run: <T>(job: () => Promise<T>) => Promise<T>,
    private readonly decisions?: SharingDecisions,
  ) {}

  /**
   * Resolves with the policy to encrypt under, or throws SendRefusedError; `log` is the send's
   * own (its lines carry the request id).
   */
  async approve(roomId: string, log: Logger = silentLog): Promise<SharingPolicy> {
    const policy = (await this.decisions?.policyFor(roomId)) ?? 'all';
    log.debug('key sharing policy', { room: roomId, policy });
    if (policy === 'cross-signed') {
      // The library can only tell cross-signed devices once the account's own identity is known.
      const identity = await this.run(() => this.machine.getIdentity(this.machine.userId));
      if (!identity) {
        log.info('send refused: cross-signed only, and the account has no cross-signing', { room: roomId });
        throw new SendRefusedError(
          'Kirjava: this room shares keys with cross-signed devices only, but your account has no cross-signing ' +
            'yet. Set it up in Element (or another full client) and verify this session from the Kirjava popup, or ' +
            'choose another key sharing policy in Kirjava’s options.',
        );
      }
    }
    if (policy !== 'ask') return policy;
    const unverified = await this.run(async () => this.unverifiedDevices(await this.recipientsOf(roomId)));
    const approved = this.approved.get(roomId) ?? new Set<string>();
    const fresh = unverified.filter((d) => !approved.has(`${d.userId}|${d.deviceId}`));
    if (fresh.length === 0) return policy;
    log.info('asking the user about unverified devices', { room: roomId, devices: fresh.length });
    const key = `${roomId} ${fresh
      .map((d) => `${d.userId}|${d.deviceId}`)
      .sort()
      .join(' ')}`;
    let question = this.asking.get(key);
    if (!question) {
      question = this.decisions!.ask(roomId, fresh).finally(() => this.asking.delete(key));
      this.asking.set(key, question);
    }
    const answer = await question;
    log.info('the user answered', { room: roomId, answer });
    if (answer === 'cancel') {
      throw new SendRefusedError(
        'Kirjava: you cancelled this message because the room has unverified devices. Verify or blacklist them ' +
          'in Kirjava, then send again.',
      );
    }
    if (answer === 'timeout') {
      throw new SendRefusedError(
        'Kirjava: nobody answered whether to send to the unverified devices in this room, so the message was not ' +
          'sent. Open Kirjava and send again.',
      );
    }
    for (const device of fresh) approved.add(`${device.userId}|${device.deviceId}`);
    this.approved.set(roomId, approved);
    return policy;
  }

  private async unverifiedDevices(users: UserId[]): Promise<DeviceView[]> {
    const ownUser = this.machine.userId.toString();
    const ownDevice = this.machine.deviceId.toString();
    const found: DeviceView[] = [];
    for (const user of users) {
      const own = user.toString() === ownUser;
      const devices = await this.machine.getUserDevices(user, 0);
      for (const device of devices.devices()) {
        if (device.isDeleted() || (own && device.deviceId.toString() === ownDevice)) continue;
        // Cross-signed by its owner counts as known, as in Element; locally trusted was the user's call.
        if (trustState(device) === 'unverified') found.push(deviceView(device, own));
      }
    }
    return found;
  }
}

/** The library's collect strategy for a policy ('ask' shares like 'all' once approved). */
export function collectStrategy(policy: SharingPolicy): CollectStrategy {
  return policy === 'cross-signed'
    ? CollectStrategy.identityBasedStrategy()
    : CollectStrategy.deviceBasedStrategy(false, false);
}
