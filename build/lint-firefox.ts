/**
 * Reads `web-ext lint --output json` of dist/firefox/ (addons.mozilla.org's own checks) from
 * stdin (`npm run lint:firefox` pipes it), failing on any error and on
 * any warning except the one the README explains: Svelte builds its static templates with
 * `template.innerHTML = <compiled markup>` (no page or user text goes there; Kirjava's pages
 * never use `{@html}`).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { text } from 'node:stream/consumers';
import { distDir } from './browsers.ts';

interface Finding {
  code: string;
  message: string;
  file?: string;
  line?: number;
}

const root = resolve(import.meta.dirname, '..');
const sourceDir = distDir(root, 'firefox');

/** Svelte's template cloning, the one innerHTML assignment in the bundle. */
async function isSvelteTemplate(finding: Finding): Promise<boolean> {
  if (finding.code !== 'UNSAFE_VAR_ASSIGNMENT' || !finding.file || !finding.line) return false;
  const lines = (await readFile(resolve(sourceDir, finding.file), 'utf8')).split('\n');
  return /^\s*elem\.innerHTML = create_trusted_html\(/.test(lines[finding.line - 1] ?? '');
}

const report = JSON.parse(await text(process.stdin)) as { errors: Finding[]; warnings: Finding[]; notices: Finding[] };
const unexplained = [...report.errors];
for (const warning of report.warnings) if (!(await isSvelteTemplate(warning))) unexplained.push(warning);
const where = (f: Finding) => (f.file ? ` (${f.file}${f.line ? `:${f.line}` : ''})` : '');
console.log(
  `web-ext lint dist/firefox: ${report.errors.length} error(s), ${report.warnings.length} warning(s), ` +
    `${report.notices.length} notice(s); ${unexplained.length} not explained in the README`,
);
for (const finding of unexplained) console.error(`  ${finding.code}: ${finding.message}${where(finding)}`);
process.exitCode = unexplained.length > 0 ? 1 : 0;
