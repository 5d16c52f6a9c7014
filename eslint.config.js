/**
 * The project's lint rules (run by `npm run lint`, which `npm test` runs first). Prettier
 * owns the layout; ESLint owns correctness, the import style, doc comments and the
 * boundaries between contexts.
 */
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import importX from 'eslint-plugin-import-x';
import jsdoc from 'eslint-plugin-jsdoc';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Relative imports name the file as it is on disk: `./x.ts`, `./X.svelte`, `./x.json`. */
const importStyle = {
  selector:
    'ImportDeclaration[source.value=/^\\.{1,2}\\//][source.value!=/\\.(ts|svelte|json|css|wasm)(\\?[a-z]+)?$/], ' +
    'ExportNamedDeclaration[source.value=/^\\.{1,2}\\//][source.value!=/\\.(ts|svelte|json|css|wasm)$/], ' +
    'ExportAllDeclaration[source.value=/^\\.{1,2}\\//][source.value!=/\\.(ts|svelte|json|css|wasm)$/], ' +
    'ImportExpression[source.value=/^\\.{1,2}\\//][source.value!=/\\.(ts|svelte|json|css|wasm)$/]',
  message: "Import relative files by their real name and extension (`./name.ts`), the project's one import style.",
};

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'tests/client/dist/',
      'node_modules/',
      '.venv-synapse/',
      'demo-output/',
      'test-results/',
      '.tmp/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...svelte.configs['flat/recommended'],
  // Before the project's rules: it turns off layout rules Prettier owns, and max-len is ours.
  prettier,
  ...svelte.configs['flat/prettier'],
  {
    languageOptions: {
      globals: { ...globals.browser, ...globals.node, ...globals.webextensions },
    },
    plugins: { 'import-x': importX },
    rules: {
      'no-restricted-syntax': ['error', importStyle],
      'import-x/first': 'error',
      'import-x/no-duplicates': 'error',
      'import-x/no-self-import': 'error',
      'import-x/no-useless-path-segments': 'error',
      'import-x/newline-after-import': 'error',
      'max-len': ['error', { code: 120 }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-empty-object-type': 'off',
    },
  },
  {
    files: ['**/*.svelte'],
    languageOptions: { parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.svelte'] } },
  },
  {
    // Every exported class, function and interface of the product says what it is for.
    files: ['src/**/*.ts'],
    plugins: { jsdoc },
    rules: {
      'jsdoc/require-jsdoc': [
        'error',
        {
          publicOnly: true,
          require: { ClassDeclaration: true, FunctionDeclaration: true },
          contexts: ['TSInterfaceDeclaration', 'TSTypeAliasDeclaration'],
        },
      ],
      'jsdoc/check-alignment': 'error',
      'jsdoc/no-multi-asterisks': 'error',
      'jsdoc/check-param-names': 'error',
      'jsdoc/empty-tags': 'error',
    },
  },
  {
    // The contracts between contexts: a leaf that imports nothing else of src/.
    files: ['src/shared/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['../*'], message: 'src/shared imports nothing from the rest of src/.' }] },
      ],
    },
  },
  {
    // The product reaches the browser through src/platform/ (webextension-polyfill), never `chrome.*`.
    files: ['src/**/*.ts', 'src/**/*.svelte'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'chrome', message: 'Use the browser APIs of src/platform/ (ext.ts), not the chrome global.' },
      ],
    },
  },
  {
    // Plain TypeScript over the crypto library, tested in Node: no browser extension APIs.
    files: ['src/crypto/**/*.ts', 'src/search/**/*.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'chrome', message: 'src/crypto runs in Node too: take what you need as a parameter.' },
      ],
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'webextension-polyfill', message: 'src/crypto runs in Node too.' }],
          patterns: ['../background/*', '../popup/*', '../options/*', '../content/*'],
        },
      ],
    },
  },
);
