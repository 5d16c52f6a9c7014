/**
 * Item 5 on the test Synapse: sends from the page through Kirjava into an encrypted room
 * (sessions exist) vs plaintext sends into an unencrypted room, same page, same server;
 * and the first send into a room with 50 devices of other users (keys query, claim of 50
 * one-time keys, room key shared in 50 Olm messages). The other devices are real
 * OlmMachines in Node that uploaded their keys to Synapse.
 */
import type { Page } from 'playwright-core';
import { CryptoAccount } from '../src/crypto/account.ts';
import type { ExtensionBrowser } from '../tests/fixtures/browser.ts';
import { startSynapse, type RegisteredUser } from '../tests/fixtures/synapse.ts';
import { timedFetch } from './browser.ts';
import { paired } from './stats.ts';

async function api<T = any>(baseUrl: string, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${baseUrl}/_matrix/client/v3${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`bench: ${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json as T;
}

const encryption = { type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } };

/** Adds a homeserver to Kirjava's settings (the allowed site stays the bench page's). */
async function addHomeserver(kirjava: ExtensionBrowser, baseUrl: string): Promise<void> {
  const options = await kirjava.openOptions();
  await options.evaluate(async (url) => {
    const stored = ((await chrome.storage.local.get('settings')).settings ?? { homeservers: [], allowedSites: [] }) as {
      homeservers: string[];
      allowedSites: string[];
    };
    await chrome.storage.local.set({ settings: { ...stored, homeservers: [...stored.homeservers, url] } });
  }, baseUrl);
  await options.close();
  await new Promise((r) => setTimeout(r, 300)); // the bridge passes the new list to the hook
}

export async function benchSynapseSends(kirjava: ExtensionBrowser, page: Page, runs: number, crowd = 50) {
  const synapse = await startSynapse();
  const machines: CryptoAccount[] = [];
  try {
    const me = await synapse.register('bench', 'bench-password-1');
    const device = async (user: RegisteredUser) => {
      const account = await CryptoAccount.open({
        baseUrl: synapse.baseUrl,
        userId: user.userId,
        deviceId: user.deviceId,
        accessToken: user.accessToken,
      });
      await account.claimDevice();
      machines.push(account);
    };
    const peer = await synapse.register('peer', 'bench-password-2');
    await device(peer);
    const room = async (encrypted: boolean) =>
      (
        await api<{ room_id: string }>(synapse.baseUrl, me.accessToken, 'POST', '/createRoom', {
          preset: 'public_chat',
          initial_state: encrypted ? [encryption] : [],
        })
      ).room_id;
    const secret = await room(true);
    const plain = await room(false);
    for (const id of [secret, plain])
      await api(synapse.baseUrl, peer.accessToken, 'POST', `/join/${encodeURIComponent(id)}`, {});
    await addHomeserver(kirjava, synapse.baseUrl);

    let txn = 0;
    const send = async (roomId: string) => {
      const url =
        `${synapse.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}` +
        `/send/m.room.message/bench${txn++}`;
      const timed = await timedFetch(page, url, me.accessToken, {
        method: 'PUT',
        body: JSON.stringify({ msgtype: 'm.text', body: 'Lunch at noon?' }),
      });
      if (timed.status !== 200) throw new Error(`bench: Synapse send into ${roomId} answered ${timed.status}`);
      return timed.ms;
    };
    await send(plain); // account discovery and device keys upload
    await send(secret); // key claim and share for the peer
    const steady = await paired(
      runs,
      () => send(plain),
      () => send(secret),
      2,
    );
    const stored = await api<{ type: string }>(
      synapse.baseUrl,
      me.accessToken,
      'GET',
      `/rooms/${encodeURIComponent(secret)}/messages?dir=b&limit=1`,
    );
    if ((stored as any).chunk?.[0]?.type !== 'm.room.encrypted')
      throw new Error('bench: the send into the encrypted room was not encrypted');

    const crowded = await room(true);
    const users = Math.ceil(crowd / 5);
    for (let u = 0; u < users; u++) {
      const user = await synapse.register(`crowd${u}`, 'bench-password-3');
      await api(synapse.baseUrl, user.accessToken, 'POST', `/join/${encodeURIComponent(crowded)}`, {});
      await device(user);
      for (let d = 1; d < 5; d++) {
        const login = await (
          await fetch(`${synapse.baseUrl}/_matrix/client/v3/login`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({
              type: 'm.login.password',
              identifier: { type: 'm.id.user', user: user.userId },
              password: 'bench-password-3',
            }),
          })
        ).json();
        await device({ ...user, accessToken: login.access_token, deviceId: login.device_id });
      }
    }
    const firstCrowded = await send(crowded);
    const nextCrowded = [await send(crowded), await send(crowded), await send(crowded)];
    return { steady, firstCrowded, nextCrowded, devices: users * 5 };
  } finally {
    for (const machine of machines) machine.close();
    await synapse.stop();
  }
}
