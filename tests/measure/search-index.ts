/**
 * One-off measurement, not a test: how big the search index gets per message and how fast
 * a search over many matches is, with the real extension, Synapse and an E2EE peer.
 * Run: scripts/node22 --import tsx tests/measure/search-index.ts [messages]
 */
import { StoryBed, givenEncryptedRoom } from '../fixtures/stories.ts';

const N = Number(process.argv[2] ?? 500);
const bed = new StoryBed();
await bed.start();
try {
  const user = await bed.newUser('alice');
  const client = await bed.givenClientTab();
  const { userId, deviceId, accessToken } = await client.login(bed.synapse.baseUrl, user.userId, user.password);
  const peer = await bed.givenPeer();
  const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
  await client.close();
  const words = ['apple', 'banana', 'cherry', 'damson', 'elder', 'fig', 'grape', 'honeydew', 'kiwi', 'lemon'];
  let t = Date.now();
  for (let i = 0; i < N; i++) {
    const body =
      `Message ${i}: shall we buy ${words[i % 10]} and ${words[(i * 7) % 10]} jam for the weekend, ` +
      `or is that too much?`;
    await peer.sendText(roomId, body);
  }
  await peer.sendText(roomId, 'done');
  console.log(`peer sent ${N} messages in ${Date.now() - t} ms`);

  const returning = await bed.givenClientTab();
  await returning.startWithToken(bed.synapse.baseUrl, userId, accessToken, deviceId, { initialSyncLimit: 1 });
  await returning.waitForBody(roomId, 'done');
  const popup = await bed.browser.openPopup();
  const panel = popup.getByRole('article', { name: userId }).getByRole('region', { name: 'Search index' });
  t = Date.now();
  await panel.getByRole('button', { name: 'Index history for search' }).click();
  await popup.getByText(/History indexed/).waitFor({ timeout: 600_000 });
  console.log(
    `history of ${N} messages indexed in ${Date.now() - t} ms (incl. ${Math.ceil(N / 100)} pauses of 500 ms)`,
  );

  const worker = bed.browser.context.serviceWorkers().find((w) => w.url().startsWith('chrome-extension://'))!;
  const sizes = await worker.evaluate(async () => {
    const names = (await indexedDB.databases()).map((d) => d.name!).filter((n) => n.startsWith('kirjava-search-'));
    let records = 0,
      data = 0,
      terms = 0,
      clear = 0;
    for (const name of names) {
      const db = await new Promise<IDBDatabase>((ok, no) => {
        const r = indexedDB.open(name);
        r.onsuccess = () => ok(r.result);
        r.onerror = () => no(r.error);
      });
      const all = await new Promise<any[]>((ok) => {
        const r = db.transaction('events').objectStore('events').getAll();
        r.onsuccess = () => ok(r.result);
      });
      for (const rec of all) {
        records++;
        data += rec.data.byteLength + rec.iv.byteLength;
        terms += rec.terms.reduce((s: number, x: string) => s + x.length, 0);
        clear += rec.id.length + rec.room.length + rec.sender.length + rec.type.length + 8;
      }
      db.close();
    }
    const estimate = await navigator.storage.estimate();
    return { records, data, terms, clear, usage: estimate.usage };
  });
  console.log(
    'index',
    sizes,
    `≈ ${Math.round((sizes.data + sizes.terms + sizes.clear) / sizes.records)} bytes of values per message`,
  );

  for (const [term, extra] of [
    ['jam', {}],
    ['jam', { order_by: 'recent' }],
    ['banana cherry', {}],
    ['jam', { event_context: { before_limit: 3, after_limit: 3 } }],
  ] as const) {
    const body = { search_categories: { room_events: { search_term: term, ...extra } } };
    const times: number[] = [];
    let count = 0;
    for (let i = 0; i < 5; i++) {
      const start = Date.now();
      const answer = await returning.rawFetch('POST', '/_matrix/client/v3/search', body);
      times.push(Date.now() - start);
      count = answer.json.search_categories.room_events.count;
    }
    console.log(
      `search ${JSON.stringify(term)} ${JSON.stringify(extra)}: ${count} matches, ms per page: ${times.join(', ')}`,
    );
  }
} finally {
  await bed.cleanUp();
  await bed.stop();
}
process.exit(0);
