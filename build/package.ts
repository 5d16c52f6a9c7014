/**
 * `npm run package`: the archives the stores take, in packages/ (gitignored), named after
 * package.json's version:
 *
 * - `kirjava-<version>-chromium.zip`: dist/chromium/, for the Chrome Web Store;
 * - `kirjava-<version>-firefox.zip`: dist/firefox/, for addons.mozilla.org (the files
 *   `web-ext build` would pack; written here because its zip carries the files' mtimes);
 * - `kirjava-<version>-source.zip`: every file `git ls-files` lists, for AMO's source review
 *   (BUILD.md says how it becomes dist/firefox/).
 *
 * Every archive comes from build/zip.ts, so the same commit gives the same bytes.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BROWSERS, distDir } from './browsers.ts';
import { type ZipEntry, deterministicZip } from './zip.ts';

/** One archive written by {@link writePackages}. */
export interface WrittenPackage {
  file: string;
  bytes: number;
}

async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    // As `web-ext build`: no dot files (nor what dot folders hold).
    if (
      relative(dir, resolve(entry.parentPath, entry.name))
        .split(sep)
        .some((part) => part.startsWith('.'))
    )
      continue;
    if (entry.isFile()) found.push(resolve(entry.parentPath, entry.name));
    else if (!entry.isDirectory()) throw new Error(`${resolve(entry.parentPath, entry.name)} is not a plain file`);
  }
  return found;
}

const asZipPath = (path: string) => path.split(sep).join('/');

async function entriesOf(base: string, files: string[]): Promise<ZipEntry[]> {
  return Promise.all(
    files.map(async (file) => ({ path: asZipPath(relative(base, file)), data: await readFile(file) })),
  );
}

/** The files git tracks in the repository at `root` (the working tree's copy of each). */
function trackedFiles(root: string): string[] {
  const listed = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' });
  return listed
    .split('\0')
    .filter(Boolean)
    .map((path) => resolve(root, path));
}

/**
 * Writes the Chromium, Firefox and source archives of the repository at `root` into `outDir`,
 * from its already built dist/ folders; returns what it wrote.
 */
export async function writePackages(root: string, outDir: string): Promise<WrittenPackage[]> {
  const { version } = JSON.parse(await readFile(resolve(root, 'package.json'), 'utf8')) as { version: string };
  await mkdir(outDir, { recursive: true });
  const archives: [string, ZipEntry[]][] = [];
  for (const browser of BROWSERS) {
    const dir = distDir(root, browser);
    archives.push([`kirjava-${version}-${browser}.zip`, await entriesOf(dir, await filesUnder(dir))]);
  }
  archives.push([`kirjava-${version}-source.zip`, await entriesOf(root, trackedFiles(root))]);
  const written: WrittenPackage[] = [];
  for (const [name, entries] of archives) {
    const zip = deterministicZip(entries);
    const file = resolve(outDir, name);
    await writeFile(file, zip);
    written.push({ file, bytes: zip.length });
  }
  return written;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const root = resolve(import.meta.dirname, '..');
  for (const { file, bytes } of await writePackages(root, resolve(root, 'packages'))) {
    console.log(`${relative(root, file)}  ${(bytes / 1024).toFixed(0)} KiB`);
  }
}
