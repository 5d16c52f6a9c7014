/**
 * The passphrase rule of exported key files: a short or monotonous passphrase is refused with
 * words that say what to change; four unrelated words pass.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exportPassphraseProblem, exportPassphraseRule } from '../../src/ui/passphrase-rule.ts';

describe('Key file passphrase rule', () => {
  it('refuses fewer than 12 characters, counting what is typed, not surrounding spaces', () => {
    assert.match(exportPassphraseProblem('export')!, /too short: use at least 12 characters/);
    assert.match(exportPassphraseProblem('   elevenchars   ')!, /too short/);
    assert.match(exportPassphraseProblem('🔑🔑🔑🔑🔑🔑')!, /too short/, 'emoji count as one character each');
  });

  it('refuses a long passphrase made of too few different characters', () => {
    assert.match(exportPassphraseProblem('aaaaaaaaaaaaaaaa')!, /at least 6 different/);
    assert.match(exportPassphraseProblem('abcABCabcABCabc')!, /at least 6 different/, 'case does not add variety');
  });

  it('accepts four unrelated words and 12 varied characters', () => {
    assert.equal(exportPassphraseProblem('cargo violet lantern pebble'), null);
    assert.equal(exportPassphraseProblem('Tr0ub4dor&3x'), null);
  });

  it('states the rule the checks apply', () => {
    assert.match(exportPassphraseRule(), /12 characters/);
    assert.match(exportPassphraseRule(), /6 different/);
  });
});
