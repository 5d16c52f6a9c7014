/**
 * Does Chromium's IndexedDB give back the disk space of deleted records? A store is kept at a
 * bounded count (20,000 rows of ≈1 KB) while 160,000 more are written and the oldest trimmed,
 * in the shapes Kirjava's stores have or could have; `navigator.storage.estimate()` after
 * every 20,000. No extension, no homeserver: a page on 127.0.0.1 in Debian's Chromium.
 *
 *   scripts/node22 --import tsx bench/idb-churn.ts            # every shape
 *   IDB_SHAPES=id,seq scripts/node22 --import tsx bench/idb-churn.ts
 *
 * Shapes: `id` keyed by a random-looking id, trimmed by an `at` index, one delete per row (the
 * decrypted-event cache until 2026-12-01); `seq` keyed by the order of writing with the id in
 * a unique index, trimmed by one range delete (the cache since); `id-terms` and `seq-terms`
 * the same with a multi-entry index of 20 random terms per row (the search index's shape);
 * `segments` as `id` with a `seg` index (1,000 rows per segment) and the terms in a store of
 * their own keyed by [segment, term, batch], each row the ids of the batch's rows holding the term,
 * trimmed a segment at a time (one range delete for its terms); `databases` rows in databases
 * of 10,000, the oldest database deleted whole.
 */
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM_FLAGS } from '../tests/fixtures/browser.ts';

const SHAPES = ['id', 'seq', 'id-terms', 'seq-terms', 'segments', 'databases'] as const;
type Shape = (typeof SHAPES)[number];

/** Runs in the page: writes and trims, returns the storage in MiB after the fill and every 20,000 more. */
async function churn({ shape, kept, more }: { shape: Shape; kept: number; more: number }): Promise<number[]> {
  const bySeq = shape.startsWith('seq');
  const terms = shape.endsWith('terms');
  const request = <T>(req: IDBRequest<T>) =>
    new Promise<T>((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  const finished = (tx: IDBTransaction) =>
    new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  const open = (name: string) => {
    const req = indexedDB.open(name, 1);
    req.onupgradeneeded = () => {
      const store = req.result.createObjectStore(
        'rows',
        bySeq ? { keyPath: 'seq', autoIncrement: true } : { keyPath: 'id' },
      );
      store.createIndex(bySeq ? 'id' : 'at', bySeq ? 'id' : 'at', { unique: bySeq });
      if (terms) store.createIndex('terms', 'terms', { multiEntry: true });
    };
    return request(req);
  };
  const usage = async () => Math.round(((await navigator.storage.estimate()).usage ?? 0) / 104857.6) / 10;
  let written = 0;
  const write = async (db: IDBDatabase, n: number) => {
    for (let batch = 0; batch < n; batch += 500) {
      const tx = db.transaction('rows', 'readwrite');
      for (let i = 0; i < 500; i++, written++) {
        const row: Record<string, unknown> = { id: `$${crypto.randomUUID()}`, at: written };
        row.data = crypto.getRandomValues(new Uint8Array(terms ? 600 : 900));
        if (terms) row.terms = Array.from(crypto.getRandomValues(new Uint32Array(20)));
        tx.objectStore('rows').add(row);
      }
      await finished(tx);
    }
  };
  const trim = async (db: IDBDatabase, n: number) => {
    const tx = db.transaction('rows', 'readwrite');
    const store = tx.objectStore('rows');
    if (bySeq) {
      const oldest = await request(store.getAllKeys(null, n));
      store.delete(IDBKeyRange.upperBound(oldest.at(-1)!));
    } else {
      for (const key of await request(store.index('at').getAllKeys(null, n))) store.delete(key);
    }
    await finished(tx);
  };
  const figures: number[] = [];
  if (shape === 'segments') {
    const req = indexedDB.open('segments', 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore('rows', { keyPath: 'id' }).createIndex('seg', 'seg');
      req.result.createObjectStore('postings');
    };
    const db = await request(req);
    let seg = 0;
    let inSeg = 0;
    let oldest = 0;
    const writeSegmented = async (n: number) => {
      for (let batch = 0; batch < n; batch += 500) {
        const tx = db.transaction(['rows', 'postings'], 'readwrite');
        const rows = tx.objectStore('rows');
        const postings = tx.objectStore('postings');
        const byTerm = new Map<number, string[]>();
        for (let i = 0; i < 500; i++, written++) {
          const row = { id: `$${crypto.randomUUID()}`, seg, data: crypto.getRandomValues(new Uint8Array(600)) };
          rows.add(row);
          for (const term of crypto.getRandomValues(new Uint32Array(20))) {
            byTerm.set(term, [...(byTerm.get(term) ?? []), row.id]);
          }
        }
        // Written once per batch, keyed [segment, term, batch]: no read before the write.
        for (const [term, ids] of byTerm) postings.put(ids, [seg, term, written]);
        await finished(tx);
        inSeg += 500;
        if (inSeg >= 1_000) {
          seg++;
          inSeg = 0;
        }
      }
    };
    const trimSegments = async (n: number) => {
      const cut = oldest + Math.ceil(n / 1_000);
      const tx = db.transaction(['rows', 'postings'], 'readwrite');
      const rows = tx.objectStore('rows');
      for (const key of await request(rows.index('seg').getAllKeys(IDBKeyRange.upperBound(cut, true))))
        rows.delete(key);
      tx.objectStore('postings').delete(IDBKeyRange.upperBound([cut], true));
      await finished(tx);
      oldest = cut;
    };
    await writeSegmented(kept);
    figures.push(await usage());
    for (let done = 0; done < more; done += 5_000) {
      await writeSegmented(5_000);
      await trimSegments(5_000);
      if ((done + 5_000) % 20_000 === 0) figures.push(await usage());
    }
    return figures;
  }
  if (shape === 'databases') {
    const names: string[] = [];
    let db: IDBDatabase | undefined;
    let inDb = 0;
    const step = async (n: number) => {
      for (let done = 0; done < n; done += 500, inDb += 500) {
        if (!db || inDb >= kept / 2) {
          db?.close();
          names.push(`rows-${names.length}`);
          db = await open(names.at(-1)!);
          inDb = 0;
          if (names.length > 2) await request(indexedDB.deleteDatabase(names.at(-3)!));
        }
        await write(db, 500);
      }
    };
    await step(kept);
    figures.push(await usage());
    for (let done = 0; done < more; done += 20_000) {
      await step(20_000);
      figures.push(await usage());
    }
    return figures;
  }
  const db = await open('rows');
  await write(db, kept);
  figures.push(await usage());
  for (let done = 0; done < more; done += 5_000) {
    await write(db, 5_000);
    await trim(db, 5_000);
    if ((done + 5_000) % 20_000 === 0) figures.push(await usage());
  }
  return figures;
}

const shapes = (process.env.IDB_SHAPES?.split(',') ?? SHAPES) as Shape[];
const server = createServer((_, response) => {
  response.setHeader('content-type', 'text/html');
  response.end('<!doctype html><title>churn</title>');
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as { port: number };
const kept = 20_000;
const more = 160_000;
console.log(`| shape | MiB after ${kept.toLocaleString('en')} rows, then after each 20,000 more written and trimmed |`);
console.log('|---|---|');
for (const shape of shapes) {
  const profile = await mkdtemp(join(tmpdir(), 'kirjava-idb-churn-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
  });
  try {
    const page = await context.newPage();
    // tsx names functions with a `__name` helper the page does not have.
    await page.addInitScript('self.__name = (f) => f;');
    await page.goto(`http://127.0.0.1:${port}/`);
    const figures = await page.evaluate(churn, { shape, kept, more });
    console.log(`| ${shape} | ${figures.join(' → ')} |`);
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}
server.close();
