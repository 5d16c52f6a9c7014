/**
 * Every user-facing string goes through the browser's i18n: each language has every message
 * English has, with the same `$1`…`$9` substitutions; the manifest's `__MSG_…__` names exist;
 * every message is used; and the extension's pages (Svelte templates and the UI modules that
 * make their text) have no words of their own: text, labels and prose literals all come from
 * `t()` (src/platform/i18n.ts).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'svelte/compiler';
import ts from 'typescript';
import { plural, t } from '../../src/platform/i18n.ts';

const root = resolve(import.meta.dirname, '..', '..');
const localesDir = join(root, 'public', '_locales');

interface Message {
  message: string;
  description?: string;
  placeholders?: unknown;
}
type Catalog = Record<string, Message>;

const catalog = (language: string): Catalog =>
  JSON.parse(readFileSync(join(localesDir, language, 'messages.json'), 'utf8')) as Catalog;
const languages = readdirSync(localesDir).sort();
const english = catalog('en');

/** Every file under `dir` (relative to the repository) whose name ends with one of `endings`. */
function filesUnder(dir: string, endings: string[]): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && endings.some((e) => entry.name.endsWith(e))) out.push(join(entry.parentPath, entry.name));
  }
  return out.sort();
}

/** The `$1`…`$9` a message substitutes, sorted. */
const substitutions = (message: string) => [...new Set(message.match(/\$[1-9]/g) ?? [])].sort();

/** A string literal in code that reads as words for a person, not a name, key, class or path. */
function isProse(text: string): boolean {
  const trimmed = text.trim();
  if (!/\p{L}{2}/u.test(trimmed)) return false;
  if (/^\p{Lu}/u.test(trimmed) && /\s/.test(trimmed)) return true; // "Storage is full"
  if (/\p{L}[.…!?]$/u.test(trimmed) && /\s/.test(trimmed)) return true; // "…failed."
  return /\p{L}{2,}\s+\p{L}{2,}\s+\p{L}{2,}/u.test(trimmed) && !/[-_/:=#]/.test(trimmed); // "keys restored from"
}

/** Attributes a person reads (or a screen reader says). */
const READ_ATTRIBUTES = new Set([
  'alt',
  'aria-description',
  'aria-label',
  'aria-placeholder',
  'aria-roledescription',
  'aria-valuetext',
  'label',
  'placeholder',
  'title',
]);

/** Calls whose string arguments are for developers (the console), not for the person. */
const DEVELOPER_CALLS = /^(console\.\w+|log\.\w+|\w+Log\.\w+)$/;

type Finding = string;

/** Words written into a Svelte page: template text, read attributes, prose literals in its code. */
function svelteFindings(file: string): Finding[] {
  const source = readFileSync(file, 'utf8');
  const lineOf = (offset: number) => source.slice(0, offset).split('\n').length;
  const where = (offset: number) => `${relative(root, file)}:${lineOf(offset)}`;
  const findings: Finding[] = [];
  const ast = parse(source, { modern: true }) as unknown as Record<string, unknown>;
  const visit = (node: unknown, inDeveloperCall: boolean): void => {
    if (Array.isArray(node)) {
      for (const child of node) visit(child, inDeveloperCall);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const n = node as Record<string, any>;
    if (n.type === 'Text' && typeof n.data === 'string' && /\p{L}/u.test(n.data)) {
      findings.push(`${where(n.start)}: text "${n.data.trim()}"`);
    }
    if (n.type === 'Attribute' && READ_ATTRIBUTES.has(n.name) && Array.isArray(n.value)) {
      for (const part of n.value) {
        if (part.type === 'Text' && /\p{L}/u.test(part.data))
          findings.push(`${where(part.start)}: ${n.name}="${part.data}"`);
      }
      return;
    }
    if (n.type === 'Attribute') {
      // Other attributes' static text (class, id, href, role…) is not read; expressions still are.
      if (Array.isArray(n.value))
        visit(
          n.value.filter((part: any) => part.type !== 'Text'),
          inDeveloperCall,
        );
      else visit(n.value, inDeveloperCall);
      return;
    }
    if (n.type === 'CallExpression') {
      const callee = source.slice(n.callee.start, n.callee.end);
      const developer = DEVELOPER_CALLS.test(callee);
      visit(n.callee, inDeveloperCall);
      visit(n.arguments, inDeveloperCall || developer);
      return;
    }
    if (!inDeveloperCall && n.type === 'Literal' && typeof n.value === 'string' && isProse(n.value)) {
      findings.push(`${where(n.start)}: "${n.value}"`);
    }
    if (!inDeveloperCall && n.type === 'TemplateLiteral') {
      const words = n.quasis.map((q: any) => q.value.cooked ?? '').join(' ');
      if (isProse(words)) findings.push(`${where(n.start)}: \`${source.slice(n.start + 1, n.end - 1)}\``);
    }
    if (n.type === 'StyleSheet' || n.type === 'Style') return;
    for (const [key, value] of Object.entries(n)) {
      if (key === 'parent' || key === 'metadata' || key === 'loc') continue;
      if (value && typeof value === 'object') visit(value, inDeveloperCall);
    }
  };
  visit(ast.instance, false);
  visit(ast.module, false);
  visit(ast.fragment, false);
  return findings;
}

/** Prose literals in a TypeScript module that makes page text. */
function moduleFindings(file: string): Finding[] {
  const source = readFileSync(file, 'utf8');
  const tree = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true);
  const findings: Finding[] = [];
  const where = (node: ts.Node) =>
    `${relative(root, file)}:${tree.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
  const visit = (node: ts.Node, inDeveloperCall: boolean): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) return;
    if (ts.isCallExpression(node) && DEVELOPER_CALLS.test(node.expression.getText(tree))) inDeveloperCall = true;
    if (
      !inDeveloperCall &&
      (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) &&
      isProse(node.text)
    )
      findings.push(`${where(node)}: "${node.text}"`);
    if (!inDeveloperCall && ts.isTemplateExpression(node)) {
      const words = [node.head.text, ...node.templateSpans.map((span) => span.literal.text)].join(' ');
      if (isProse(words)) findings.push(`${where(node)}: ${node.getText(tree)}`);
    }
    ts.forEachChild(node, (child) => visit(child, inDeveloperCall));
  };
  visit(tree, false);
  return findings;
}

/** The pages and the modules whose strings end up on them. */
const PAGE_DIRS = ['src/popup', 'src/options', 'src/diagnostics', 'src/ui'];
const svelteFiles = PAGE_DIRS.flatMap((dir) => filesUnder(dir, ['.svelte']));
const pageModules = [
  ...PAGE_DIRS.flatMap((dir) => filesUnder(dir, ['.ts'])),
  join(root, 'src/background/tab-status.ts'),
  join(root, 'src/background/badge.ts'),
];

describe('Languages', () => {
  it('English names every message and says what it is for', () => {
    assert.ok(Object.keys(english).length > 0);
    for (const [name, entry] of Object.entries(english)) {
      assert.match(name, /^[A-Za-z0-9_]+$/, `message name ${name}`);
      assert.ok(entry.message.trim().length > 0, `${name} is empty`);
      assert.ok(entry.description?.trim(), `${name} has no description for translators`);
      assert.equal(entry.placeholders, undefined, `${name}: use $1…$9, not named placeholders`);
    }
    assert.deepEqual(Object.keys(english), Object.keys(english).sort(), 'en/messages.json is not sorted by name');
  });

  it('has English and at least one more language', () => {
    assert.ok(languages.includes('en'));
    assert.ok(languages.length >= 2, `only ${languages.join(', ')}`);
  });

  for (const language of languages.filter((l) => l !== 'en')) {
    it(`${language} has every English message, no other, with the same substitutions`, () => {
      const other = catalog(language);
      const missing = Object.keys(english).filter((name) => !(name in other));
      const extra = Object.keys(other).filter((name) => !(name in english));
      assert.deepEqual(missing, [], `${language} lacks these messages`);
      assert.deepEqual(extra, [], `${language} has messages English does not`);
      for (const [name, entry] of Object.entries(other)) {
        assert.ok(entry.message.trim().length > 0, `${language}: ${name} is empty`);
        assert.deepEqual(
          substitutions(entry.message),
          substitutions(english[name]!.message),
          `${language}: ${name} substitutes other values than English`,
        );
      }
      assert.equal(other.meta_language?.message, language, `${language}: meta_language names another language`);
    });
  }

  it("the manifest's __MSG_…__ names are messages, and its name and description are translated", () => {
    const manifest = readFileSync(join(root, 'manifest.json'), 'utf8');
    const used = [...manifest.matchAll(/__MSG_(\w+)__/g)].map((m) => m[1]!);
    const parsed = JSON.parse(manifest) as Record<string, any>;
    assert.equal(parsed.default_locale, 'en');
    assert.match(parsed.name, /^__MSG_\w+__$/);
    assert.match(parsed.description, /^__MSG_\w+__$/);
    for (const name of used) assert.ok(name in english, `manifest.json names a missing message ${name}`);
  });

  it('every message is used by the code or the manifest', () => {
    const code = [
      readFileSync(join(root, 'manifest.json'), 'utf8'),
      ...filesUnder('src', ['.ts', '.svelte']).map((file) => readFileSync(file, 'utf8')),
    ].join('\n');
    const unused = Object.keys(english).filter(
      (name) => !code.includes(`'${name}'`) && !code.includes(`__MSG_${name}__`),
    );
    assert.deepEqual(unused, [], 'messages nothing uses (name them in quotes where they are used)');
  });

  it('t() substitutes $1… in order and $$ as a dollar sign, in English without a browser', () => {
    assert.equal(t('meta_language'), 'en');
    const withSubstitution = Object.entries(english).find(([, e]) => /\$1/.test(e.message));
    if (withSubstitution) {
      const [name, entry] = withSubstitution;
      const shown = t(name as Parameters<typeof t>[0], 'SUBSTITUTED', 'SECOND', 'THIRD', 'FOURTH');
      assert.ok(shown.includes('SUBSTITUTED'), shown);
      assert.ok(!/\$[1-9]/.test(shown), `${entry.message} → ${shown}`);
    }
  });

  it('plural() picks the message by the count', () => {
    assert.equal(plural(1, 'meta_language', 'page_popupTitle'), 'en');
    assert.equal(plural(2, 'meta_language', 'page_popupTitle'), t('page_popupTitle'));
  });
});

describe('No page has words of its own', () => {
  it('the heuristic finds words in a template, a label and a literal, and passes keys and class names', () => {
    assert.equal(isProse('Storage is full'), true);
    assert.equal(isProse('keys restored from backup'), true);
    assert.equal(isProse('Failed.'), false); // one word: caught as template text, not here
    assert.equal(isProse('storage-status'), false);
    assert.equal(isProse('button primary'), false);
    assert.equal(isProse('page_popupTitle'), false);
  });

  for (const file of svelteFiles) {
    it(relative(root, file), () => {
      assert.deepEqual(svelteFindings(file), [], 'hard-coded text: put it in _locales and use t()');
    });
  }

  for (const file of pageModules) {
    it(relative(root, file), () => {
      assert.deepEqual(moduleFindings(file), [], 'hard-coded text: put it in _locales and use t()');
    });
  }
});
