/**
 * The stores' archives are reproducible: packing the same built extension and the same
 * tracked files twice gives the same bytes, and each archive holds what its store expects
 * (the manifest at the top, the source's build instructions).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { writePackages } from '../../build/package.ts';
import { deterministicZip } from '../../build/zip.ts';

const root = resolve(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'chromium', 'manifest.json'));
const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };

/** The names in a zip's central directory, in order. */
function namesIn(zip: Buffer): string[] {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const length = zip.readUInt16LE(at + 28);
    const extra = zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
    names.push(zip.toString('utf8', at + 46, at + 46 + length));
    at += 46 + length + extra;
  }
  return names;
}

describe('Store archives', () => {
  it('do not depend on the order files are listed in', () => {
    const a = { path: 'b/x.txt', data: Buffer.from('hello hello hello hello') };
    const b = { path: 'a.txt', data: Buffer.from('x') };
    assert.deepEqual(deterministicZip([a, b]), deterministicZip([b, a]));
    assert.deepEqual(namesIn(deterministicZip([a, b])), ['a.txt', 'b/x.txt']);
  });

  it('are the same bytes when packed twice from the same build', async () => {
    assert.ok(built, 'no dist/: run vite build first (npm test builds before the unit tests)');
    const first = await mkdtemp(join(tmpdir(), 'kirjava-package-'));
    const second = await mkdtemp(join(tmpdir(), 'kirjava-package-'));
    try {
      const once = await writePackages(root, first);
      const twice = await writePackages(root, second);
      assert.deepEqual(
        once.map(({ file }) => basename(file)),
        ['chromium', 'firefox', 'source'].map((kind) => `kirjava-${version}-${kind}.zip`),
      );
      for (const [i, { file }] of once.entries()) {
        const bytes = await readFile(file);
        assert.ok(bytes.equals(await readFile(twice[i].file)), `${basename(file)} differs between two runs`);
        const names = namesIn(bytes);
        if (file.endsWith('-source.zip')) {
          for (const name of ['BUILD.md', 'package.json', 'package-lock.json', 'manifest.json']) {
            assert.ok(names.includes(name), `${name} missing from the source archive`);
          }
          assert.ok(!names.some((name) => name.startsWith('node_modules/') || name.startsWith('dist/')));
        } else {
          assert.ok(names.includes('manifest.json') && names.includes('icons/kirjava-16.png'), file);
        }
      }
    } finally {
      await rm(first, { recursive: true, force: true });
      await rm(second, { recursive: true, force: true });
    }
  });
});
