/**
 * "Set up secure backup" in Kirjava's popup, for a user who never opened Element: Kirjava
 * creates the cross-signing identity (confirmed with the account password), a key backup and
 * secret storage under a new recovery key. Then the user's Element (a fresh matrix-js-sdk
 * Rust-crypto session of the same user) verifies with that recovery key and reads what Kirjava
 * sent.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { decodeRecoveryKey } from 'matrix-js-sdk/lib/crypto-api/recovery-key.js';
import { poll } from '../fixtures/net.ts';
import { StoryBed, setUpSecureBackup } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';

for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);

  /** What the homeserver holds for the user: cross-signing master key, key backup, default secret-storage key. */
  async function serverState(accessToken: string, userId: string) {
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${bed.synapse.baseUrl}/_matrix/client/v3${path}`, {
        method,
        headers: { Authorization: `Bearer ${accessToken}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const keys = await (await api('POST', '/keys/query', { device_keys: { [userId]: [] } })).json();
    const backup = await api('GET', '/room_keys/version');
    const defaultKey = await api(
      'GET',
      `/user/${encodeURIComponent(userId)}/account_data/m.secret_storage.default_key`,
    );
    return {
      masterKey: keys.master_keys?.[userId] !== undefined,
      backup: backup.status === 200 ? ((await backup.json()) as { version: string }) : null,
      defaultKey: defaultKey.status === 200 ? ((await defaultKey.json()) as { key: string }) : null,
    };
  }

  async function sessionsInBackup(accessToken: string, roomId: string, version: string): Promise<string[]> {
    const answer = await fetch(`${bed.synapse.baseUrl}/_matrix/client/v3/room_keys/keys?version=${version}`, {
      headers: { Authorization: `Bearer ${accessToken}` },
    });
    return Object.keys((await answer.json()).rooms?.[roomId]?.sessions ?? {});
  }

  /**
   * Element, a fresh matrix-js-sdk session of the user, verifies with the recovery key ("verify with
   * recovery key": the cross-signing keys come from secret storage) and turns the key backup on.
   */
  async function elementVerifiesWith(user: { userId: string; password: string }, recoveryKey: string) {
    const secretStorageKey = decodeRecoveryKey(recoveryKey);
    const element = await bed.givenPeer(user, {
      cryptoCallbacks: {
        getSecretStorageKey: async ({ keys }: { keys: Record<string, unknown> }) => [
          Object.keys(keys)[0]!,
          secretStorageKey,
        ],
      },
    });
    const crypto = element.client.getCrypto()!;
    // The cross-signing keys are imported only once the session has downloaded the identity they must match.
    await poll(
      'Element to download the cross-signing identity',
      async () => (await crypto.userHasCrossSigningKeys(user.userId, true)) || undefined,
      20_000,
    );
    await crypto.bootstrapCrossSigning({});
    return { element, crypto, secretStorageKey };
  }

  /** The public master key the homeserver lists for the user. */
  async function masterKey(accessToken: string, userId: string): Promise<string> {
    const answer = await fetch(`${bed.synapse.baseUrl}/_matrix/client/v3/keys/query`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${accessToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ device_keys: { [userId]: [] } }),
    });
    const keys = (await answer.json()).master_keys?.[userId]?.keys as Record<string, string>;
    return Object.values(keys)[0]!;
  }

  describe(`Kirjava sets up secure backup on its own (${browserName})`, () => {
    before(() => bed.start(), { timeout: 180_000 });
    afterEach(() => bed.cleanUp());
    after(() => bed.stop());

    it(
      'with the password (a wrong one refused, nothing changed), the recovery key shown once; ' +
        "Element verifies with that key, sees the identity as its own and reads Kirjava's history",
      { timeout: 180_000 },
      async () => {
        const alice = await bed.newUser('alice');
        const client = await bed.givenClientTab();
        const { userId, deviceId, accessToken } = await client.login(bed.synapse.baseUrl, alice.userId, alice.password);
        const roomId = await client.createRoom({ encrypted: true, invite: [] });
        const sent = await client.sendText(roomId, 'Kirjava wrote this before any backup existed');

        const popup = bed.track(await bed.browser.openPopup());
        const panel = popup.getByRole('article', { name: userId }).getByRole('region', { name: 'Encryption keys' });
        await panel.getByRole('button', { name: 'Set up secure backup' }).click({ timeout: 20_000 });
        const form = panel.getByRole('form', { name: 'Set up secure backup' });

        // A wrong password is refused, and the server still has nothing.
        await form.getByLabel('Account password').fill('not the password');
        await form.getByRole('button', { name: 'Set up' }).click();
        await form.getByRole('alert').waitFor({ timeout: 30_000 });
        assert.equal(
          await form.getByRole('alert').innerText(),
          'Wrong password: check it and try again (nothing was changed)',
        );
        assert.deepEqual(await serverState(accessToken, userId), { masterKey: false, backup: null, defaultKey: null });

        // The right one: the recovery key is shown, and the dialog stays until the user says it is saved.
        await form.getByLabel('Account password').fill(alice.password);
        await form.getByRole('button', { name: 'Set up' }).click();
        const dialog = panel.getByRole('dialog', { name: 'Save your recovery key' });
        await dialog.waitFor({ timeout: 60_000 });
        const recoveryKey = (await dialog.getByLabel('Recovery key', { exact: true }).innerText()).trim();
        assert.match(recoveryKey, /^(\w{4} ){11}\w{4}$/);
        const copied = await bed.browser.copied(popup, async () => {
          await dialog.getByRole('button', { name: 'Copy' }).click();
          await dialog.getByRole('status').filter({ hasText: 'Copied' }).waitFor();
        });
        assert.equal(copied, recoveryKey);
        const saved = await bed.browser.download(popup, () => dialog.getByRole('button', { name: 'Download' }).click());
        assert.equal(saved.name, 'recovery-key.txt');
        assert.match(saved.text, new RegExp(recoveryKey));
        assert.equal(await dialog.getByRole('button', { name: 'Done' }).isDisabled(), true);

        // Closing the popup before confirming does not lose the key: it is shown again.
        await popup.close();
        const again = bed.track(await bed.browser.openPopup());
        const reopened = again
          .getByRole('article', { name: userId })
          .getByRole('dialog', { name: 'Save your recovery key' });
        assert.equal(
          (await reopened.getByLabel('Recovery key', { exact: true }).innerText({ timeout: 20_000 })).trim(),
          recoveryKey,
        );
        await reopened.getByLabel('I saved my recovery key somewhere safe').check();
        await reopened.getByRole('button', { name: 'Done' }).click();
        await reopened.waitFor({ state: 'detached' });
        const keysPanel = again.getByRole('article', { name: userId }).getByRole('region', { name: 'Encryption keys' });
        await keysPanel.getByText(/^Key backup: on \(version \d+\)/).waitFor();
        assert.equal(await keysPanel.getByRole('button', { name: 'Set up secure backup' }).count(), 0);

        const state = await serverState(accessToken, userId);
        assert.equal(state.masterKey, true);
        assert.ok(state.backup && state.defaultKey, JSON.stringify(state));
        const eventUrl = `/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(sent)}`;
        const sessionId = (
          await (
            await fetch(`${bed.synapse.baseUrl}/_matrix/client/v3${eventUrl}`, {
              headers: { Authorization: `Bearer ${accessToken}` },
            })
          ).json()
        ).content.session_id;
        await poll(
          "Kirjava's room key in the new backup",
          async () =>
            (await sessionsInBackup(accessToken, roomId, state.backup!.version)).includes(sessionId) || undefined,
          30_000,
          500,
        );

        // Element, a fresh session of the same user, verifies with the recovery key.
        const { element, crypto, secretStorageKey } = await elementVerifiesWith(alice, recoveryKey);
        const [keyId, keyInfo] = (await element.client.secretStorage.getKey())!;
        assert.equal(keyId, state.defaultKey!.key);
        assert.equal(await element.client.secretStorage.checkKey(secretStorageKey, keyInfo), true);
        assert.equal(await crypto.isSecretStorageReady(), true);
        const status = await crypto.getCrossSigningStatus();
        assert.deepEqual(status, {
          publicKeysOnDevice: true,
          privateKeysInSecretStorage: true,
          privateKeysCachedLocally: { masterKey: true, selfSigningKey: true, userSigningKey: true },
        });
        assert.equal(await crypto.isCrossSigningReady(), true);
        assert.equal((await crypto.getUserVerificationStatus(userId)).isCrossSigningVerified(), true);
        await poll(
          "Element to see Kirjava's device cross-signed",
          async () => (await crypto.getDeviceVerificationStatus(userId, deviceId))?.crossSigningVerified || undefined,
          20_000,
        );

        // It trusts the backup and reads Kirjava's history from it.
        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        const check = await crypto.checkKeyBackupAndEnable();
        assert.equal(check?.backupInfo.version, state.backup!.version);
        assert.equal(check?.trustInfo.trusted, true);
        assert.equal(check?.trustInfo.matchesDecryptionKey, true);
        const restored = await crypto.restoreKeyBackup();
        assert.ok(restored.imported >= 1, `restored ${JSON.stringify(restored)}`);
        const received = await element.waitForText(roomId, 'Kirjava wrote this before any backup existed', 20_000);
        assert.equal(received.eventId, sent);
        assert.equal(received.decrypted, true);
        bed.assertNoPageErrors();
      },
    );

    it(
      'a lost recovery key: "Reset…" warns, refuses a wrong password (nothing changed), then makes a new identity, ' +
        "recovery key and backup; Element verifies with the new key, sees the new identity and reads Kirjava's " +
        'new messages from the new backup',
      { timeout: 240_000 },
      async () => {
        const bob = await bed.newUser('bob');
        const client = await bed.givenClientTab();
        const { userId, deviceId, accessToken } = await client.login(bed.synapse.baseUrl, bob.userId, bob.password);
        const roomId = await client.createRoom({ encrypted: true, invite: [] });

        // Given secure backup set up in the popup, whose recovery key is then lost.
        const popup = bed.track(await bed.browser.openPopup());
        const card = popup.getByRole('article', { name: userId });
        const panel = card.getByRole('region', { name: 'Encryption keys' });
        await panel.getByRole('button', { name: 'Set up secure backup' }).click({ timeout: 20_000 });
        const lostKey = await setUpSecureBackup(panel, bob.password);
        const dialog = panel.getByRole('dialog', { name: 'Save your recovery key' });
        const before = await serverState(accessToken, userId);
        const masterBefore = await masterKey(accessToken, userId);

        // "Reset…" is offered beside Recover and says what it means before anything happens.
        await panel.getByRole('button', { name: 'Lost your recovery key? Reset…' }).click({ timeout: 20_000 });
        const form = panel.getByRole('form', { name: 'Reset secure backup' });
        const warning = await form.innerText();
        assert.match(warning, /must verify you again/);
        assert.match(warning, /old backup can no longer be opened by a new device/);
        await form.getByLabel('Account password').fill('not the password');
        assert.equal(await form.getByRole('button', { name: 'Reset' }).isDisabled(), true);
        await form.getByLabel('I understand, reset my encryption identity').check();

        // A wrong password: a clear message, and the server still has the old identity and backup.
        await form.getByRole('button', { name: 'Reset' }).click();
        await form.getByRole('alert').waitFor({ timeout: 30_000 });
        assert.equal(
          await form.getByRole('alert').innerText(),
          'Wrong password: check it and try again (nothing was changed)',
        );
        assert.equal(await masterKey(accessToken, userId), masterBefore);
        assert.deepEqual(await serverState(accessToken, userId), before);

        // The right one: a new recovery key, shown once as after a setup.
        await form.getByLabel('Account password').fill(bob.password);
        await form.getByRole('button', { name: 'Reset' }).click();
        const newKey = (await dialog.getByLabel('Recovery key', { exact: true }).innerText({ timeout: 60_000 })).trim();
        assert.match(newKey, /^(\w{4} ){11}\w{4}$/);
        assert.notEqual(newKey, lostKey);
        await dialog.getByLabel('I saved my recovery key somewhere safe').check();
        await dialog.getByRole('button', { name: 'Done' }).click();
        await dialog.waitFor({ state: 'detached' });

        const after = await serverState(accessToken, userId);
        const masterAfter = await masterKey(accessToken, userId);
        assert.notEqual(masterAfter, masterBefore);
        assert.notEqual(after.defaultKey!.key, before.defaultKey!.key);
        assert.notEqual(after.backup!.version, before.backup!.version);
        await panel.getByText(`Key backup: on (version ${after.backup!.version}), new keys are backed up`).waitFor();

        // Kirjava writes after the reset; its room key goes to the new backup.
        const sent = await client.sendText(roomId, 'Kirjava wrote this after the reset');
        const eventUrl = `/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(sent)}`;
        const sessionId = (
          await (
            await fetch(`${bed.synapse.baseUrl}/_matrix/client/v3${eventUrl}`, {
              headers: { Authorization: `Bearer ${accessToken}` },
            })
          ).json()
        ).content.session_id;
        await poll(
          "Kirjava's room key in the new backup",
          async () =>
            (await sessionsInBackup(accessToken, roomId, after.backup!.version)).includes(sessionId) || undefined,
          30_000,
          500,
        );

        // Element, a fresh session, sees the new identity and verifies with the new recovery key.
        const { element, crypto } = await elementVerifiesWith(bob, newKey);
        assert.equal(await crypto.getCrossSigningKeyId(), masterAfter);
        assert.equal(await crypto.isCrossSigningReady(), true);
        assert.equal((await crypto.getUserVerificationStatus(userId)).isCrossSigningVerified(), true);
        await poll(
          "Element to see Kirjava's device cross-signed by the new identity",
          async () => (await crypto.getDeviceVerificationStatus(userId, deviceId))?.crossSigningVerified || undefined,
          20_000,
        );

        // It trusts the new backup and reads Kirjava's new message from it.
        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        const check = await crypto.checkKeyBackupAndEnable();
        assert.equal(check?.backupInfo.version, after.backup!.version);
        assert.equal(check?.trustInfo.trusted, true);
        assert.equal(check?.trustInfo.matchesDecryptionKey, true);
        const restored = await crypto.restoreKeyBackup();
        assert.ok(restored.imported >= 1, `restored ${JSON.stringify(restored)}`);
        const received = await element.waitForText(roomId, 'Kirjava wrote this after the reset', 20_000);
        assert.equal(received.eventId, sent);
        assert.equal(received.decrypted, true);
        bed.assertNoPageErrors();
      },
    );
  });
}
