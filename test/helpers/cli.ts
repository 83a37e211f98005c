import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './shared.js';

/** Runs the built CLI (npm test builds first) and returns its exit code and output. */
export function grerank(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'dist/cli/main.js'), ...args], {
    encoding: 'utf8',
    input: opts.input,
    env: { ...process.env, ...opts.env },
    timeout: 300_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function tempDir(prefix = 'grerank-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A copy of a model directory keeping only the named files (e.g. to force the .bin path). */
export function copyModelDir(src: string, keep: (file: string) => boolean): string {
  const dst = tempDir('grerank-model-');
  for (const f of readdirSync(src)) if (keep(f)) cpSync(join(src, f), join(dst, f));
  return dst;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A port that was free a moment ago (the OS's choice). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(p));
    });
    srv.on('error', reject);
  });
}
