import {
  type Device,
  DeviceId,
  LocalTrust,
  type OlmMachine,
  type SignatureUploadRequest,
  UserId,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import type { DeviceTrustAction, DeviceTrustState, DeviceView } from '../../shared/messages.ts';

/**
 * The devices an account knows (its own and those of everyone it shares encrypted rooms with,
 * i.e. the machine's tracked users) and the user's trust decisions about them: verify by hand,
 * unverify, blacklist (never receives a room key again) and trust locally ("ignore" in
 * pantalaimon: no longer counts as unverified, without claiming it was verified). Marking one
 * of the account's own devices verified cross-signs it when this device holds the
 * self-signing key.
 */
export class DeviceTrust {
  constructor(
    private readonly machine: OlmMachine,
    private readonly run: <T>(job: () => Promise<T>) => Promise<T>,
    /** Tracks (and queries the devices of) the members of every encrypted room the account is in. */
    private readonly discoverMembers: () => Promise<void>,
    private readonly send: (request: SignatureUploadRequest) => Promise<void>,
  ) {}

  /**
   * Every known device of every tracked user, own user first, this device excluded. With
   * `discover`, first looks up the members of the account's encrypted rooms: a room the client
   * never sent in has not made its members tracked yet.
   */
  async list(discover = false): Promise<DeviceView[]> {
    return this.run(async () => {
      if (discover) await this.discoverMembers();
      const own = this.machine.userId.toString();
      const users = [...(await this.machine.trackedUsers())].map((u) => u.toString());
      if (!users.includes(own)) users.push(own);
      users.sort((a, b) => (a === own ? -1 : b === own ? 1 : a.localeCompare(b)));
      const views: DeviceView[] = [];
      for (const userId of users) {
        const devices = await this.machine.getUserDevices(new UserId(userId), 0);
        for (const device of devices.devices()) {
          if (device.isDeleted()) continue;
          if (userId === own && device.deviceId.toString() === this.machine.deviceId.toString()) continue;
          views.push(deviceView(device, userId === own));
        }
      }
      return views;
    });
  }

  /** Applies the user's decision about one device; returns the device as it is now. */
  async apply(userId: string, deviceId: string, action: DeviceTrustAction): Promise<DeviceView> {
    return this.run(async () => {
      const device = await this.machine.getDevice(new UserId(userId), new DeviceId(deviceId));
      if (!device) {
        throw new Error(`Kirjava does not know the device ${deviceId} of ${userId} (any more): refresh the list`);
      }
      const own = userId === this.machine.userId.toString();
      if (action === 'verify' && own && (await this.machine.crossSigningStatus()).hasSelfSigning) {
        // Holding the self-signing key (received after self-verification), Kirjava signs the
        // device as its owner: every client of the account's contacts then trusts it too.
        await this.send(await device.verify());
      }
      await device.setLocalTrust(LOCAL_TRUST[action]);
      const changed = await this.machine.getDevice(new UserId(userId), new DeviceId(deviceId));
      return deviceView(changed ?? device, own);
    });
  }
}

const LOCAL_TRUST: Record<DeviceTrustAction, LocalTrust> = {
  verify: LocalTrust.Verified,
  unverify: LocalTrust.Unset,
  blacklist: LocalTrust.BlackListed,
  unblacklist: LocalTrust.Unset,
  'trust-locally': LocalTrust.Ignored,
};

/** How far the account trusts `device`, the most decisive state first. */
export function trustState(device: Device): DeviceTrustState {
  if (device.isBlacklisted()) return 'blacklisted';
  if (device.isCrossSigningTrusted() || device.localTrustState === LocalTrust.Verified) return 'verified';
  if (device.isCrossSignedByOwner()) return 'cross-signed';
  if (device.localTrustState === LocalTrust.Ignored) return 'trusted-locally';
  return 'unverified';
}

/** A device as the popup shows it; `own` when it is one of the account's own devices. */
export function deviceView(device: Device, own: boolean): DeviceView {
  return {
    userId: device.userId.toString(),
    deviceId: device.deviceId.toString(),
    displayName: device.displayName ?? null,
    ed25519: device.ed25519Key?.toBase64() ?? null,
    trust: trustState(device),
    crossSigningVerified: device.isCrossSigningTrusted(),
    own,
  };
}
