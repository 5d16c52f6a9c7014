/**
 * VerificationFlows between two real OlmMachines of the same user, through the fake
 * homeserver's to-device queue: the same steps the popup takes, without a browser.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { CryptoAccount } from '../../src/crypto/account.ts';
import type { VerificationView } from '../../src/shared/messages.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

const ALICE = '@alice:example.test';

const opened: CryptoAccount[] = [];
afterEach(() => {
  for (const account of opened.splice(0)) account.close();
});

async function open(hs: FakeHomeserver, deviceId: string): Promise<CryptoAccount> {
  const account = await CryptoAccount.open({
    baseUrl: hs.baseUrl,
    userId: ALICE,
    deviceId,
    accessToken: hs.login(ALICE, deviceId),
    fetchFn: hs.fetchFn,
  });
  opened.push(account);
  await account.claimDevice();
  return account;
}

/** One sync for the account, then its outgoing requests, as the worker does after answering the page. */
async function sync(hs: FakeHomeserver, account: CryptoAccount): Promise<void> {
  await account.processSync(hs.syncFor(ALICE, account.identity.deviceId));
  await account.flushOutgoingQueued();
}

async function only(account: CryptoAccount): Promise<VerificationView> {
  const flows = await account.verifications.list();
  assert.equal(flows.length, 1, JSON.stringify(flows));
  return flows[0]!;
}

/** Two sessions of Alice that know each other's device keys. */
async function twoSessions() {
  const hs = new FakeHomeserver();
  const laptop = await open(hs, 'LAPTOP');
  const phone = await open(hs, 'PHONE');
  for (const account of [laptop, phone, laptop, phone]) await sync(hs, account);
  return { hs, laptop, phone };
}

describe('VerificationFlows (SAS, to-device, own devices)', () => {
  it(
    'request → accept → emoji: both sides show the same seven emoji; ' + 'both confirm and the flow is done on both',
    async () => {
      const { hs, laptop, phone } = await twoSessions();

      const started = await laptop.verifications.start(ALICE, 'PHONE');
      assert.equal(started.stage, 'requested');
      assert.equal(started.otherDeviceId, 'PHONE');
      await sync(hs, phone);
      const incoming = await only(phone);
      assert.equal(incoming.stage, 'incoming');
      assert.equal(incoming.selfVerification, true);
      assert.equal(await phone.verifications.pendingCount(), 1);

      await phone.verifications.act(ALICE, incoming.flowId, 'accept');
      await sync(hs, laptop);
      assert.equal((await only(laptop)).stage, 'ready');
      await laptop.verifications.act(ALICE, started.flowId, 'start-sas');
      await sync(hs, phone); // the phone accepts the emoji start by itself: the user accepted the request
      await sync(hs, laptop); // accept arrives: the laptop sends its key
      await sync(hs, phone); // the phone has both keys (emoji) and sends its own
      await sync(hs, laptop); // now the laptop has both

      const onLaptop = await only(laptop);
      const onPhone = await only(phone);
      assert.equal(onLaptop.stage, 'sas-compare');
      assert.equal(onPhone.stage, 'sas-compare');
      assert.equal(onLaptop.emoji?.length, 7);
      assert.deepEqual(onLaptop.emoji, onPhone.emoji);

      await laptop.verifications.act(ALICE, started.flowId, 'confirm');
      assert.equal((await only(laptop)).stage, 'sas-confirmed');
      await sync(hs, phone);
      await phone.verifications.act(ALICE, started.flowId, 'confirm');
      await sync(hs, laptop);
      await sync(hs, phone);
      assert.equal((await only(laptop)).stage, 'done');
      assert.equal((await only(phone)).stage, 'done');

      // The machine forgets finished requests at its next sync; the popup still shows the outcome.
      await sync(hs, laptop);
      assert.equal((await only(laptop)).stage, 'done');
      const [phoneSeen] = (await laptop.devices.list()).filter((d) => d.deviceId === 'PHONE');
      assert.equal(phoneSeen?.trust, 'verified');
      await laptop.verifications.act(ALICE, started.flowId, 'dismiss');
      assert.deepEqual(await laptop.verifications.list(), []);
    },
  );

  it('"They don\'t match" cancels with m.mismatched_sas on both sides', async () => {
    const { hs, laptop, phone } = await twoSessions();
    const { flowId } = await laptop.verifications.start(ALICE, 'PHONE');
    await sync(hs, phone);
    await phone.verifications.act(ALICE, flowId, 'accept');
    await sync(hs, laptop);
    await laptop.verifications.act(ALICE, flowId, 'start-sas');
    await sync(hs, phone);
    await sync(hs, laptop);
    await sync(hs, phone);

    await phone.verifications.act(ALICE, flowId, 'mismatch');
    await sync(hs, laptop);
    const onLaptop = await only(laptop);
    const onPhone = await only(phone);
    assert.equal(onLaptop.stage, 'cancelled');
    assert.equal(onPhone.stage, 'cancelled');
    assert.match(onLaptop.cancelReason ?? '', /m\.mismatched_sas/);
    assert.equal(onLaptop.cancelledByUs, false);
    assert.equal(onPhone.cancelledByUs, true);
    assert.equal(onLaptop.emoji, null);
  });

  it('an action on a flow the machine does not know says what to do', async () => {
    const { laptop } = await twoSessions();
    await assert.rejects(laptop.verifications.act(ALICE, 'no-such-flow', 'confirm'), /start a new one/);
    await assert.rejects(laptop.verifications.start(ALICE, 'NOSUCH'), /refresh the device list/);
  });
});
