/**
 * Item 3p: pantalaimon (PyPI, in .venv-pantalaimon, installed on first use by
 * scripts/pantalaimon-venv.sh) decrypting the very /sync bodies the page gets, with the
 * same megolm sessions (the Node receiver's key export imported into its store) and the
 * senders' devices known and unverified. One Python process for the whole item
 * (bench/pan_sync_decrypt.py): it times each body in-process and answers one line per body.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { CryptoAccount } from '../src/crypto/account.ts';

const repoRoot = resolve(import.meta.dirname, '..');

interface PantalaimonResult {
  ms: number;
  events: number;
  decrypted: number;
}

interface Pantalaimon {
  sessions: number;
  version: string;
  /** Decrypts one /sync body in pantalaimon: json.loads + PanClient.decrypt_sync_body + json.dumps. */
  decrypt(body: string): Promise<PantalaimonResult>;
  close(): void;
}

export async function startPantalaimon(options: {
  receiver: CryptoAccount;
  senders: CryptoAccount[];
  rooms: string[];
}): Promise<Pantalaimon> {
  execFileSync('bash', [resolve(repoRoot, 'scripts/pantalaimon-venv.sh')], { stdio: 'inherit' });
  const python = resolve(repoRoot, '.venv-pantalaimon/bin/python');
  const version = execFileSync(python, [
    '-c',
    'import importlib.metadata as m; print(" ".join(f"{p} {m.version(p)}" for p in ' +
      '("pantalaimon", "matrix-nio", "python-olm")))',
  ])
    .toString()
    .trim();
  const dir = mkdtempSync(join(tmpdir(), 'kirjava-bench-pan-'));
  const { receiver, senders, rooms } = options;
  writeFileSync(
    join(dir, 'setup.json'),
    JSON.stringify({
      user_id: receiver.identity.userId,
      device_id: 'PANDEV',
      room_keys: JSON.parse(await receiver.machine.exportRoomKeys(() => true)),
      devices: senders.map((s) => ({
        user_id: s.identity.userId,
        device_id: s.identity.deviceId,
        curve25519: s.machine.identityKeys.curve25519.toBase64(),
        ed25519: s.machine.identityKeys.ed25519.toBase64(),
      })),
      rooms,
    }),
  );
  const child = spawn(python, [resolve(repoRoot, 'bench/pan_sync_decrypt.py'), join(dir, 'setup.json')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await lines.next();
    if (line.done) throw new Error('bench: pantalaimon exited');
    return JSON.parse(line.value);
  };
  const ready = await next();
  let n = 0;
  return {
    sessions: ready.sessions,
    version,
    decrypt: async (body) => {
      const path = join(dir, `body${n++}.json`);
      writeFileSync(path, body);
      child.stdin.write(`${path}\n`);
      return (await next()) as PantalaimonResult;
    },
    close: () => {
      child.stdin.end();
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
