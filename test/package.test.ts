/**
 * The package as npm would publish it (`npm pack` of the built tree; `prepack` builds it from a
 * clean clone) and as a consumer installs it:
 * - it holds dist/index.js, dist/node.js, the CLI, LICENSE; every source map points at a file in
 *   the package; every relative link in its Markdown resolves to a shipped file;
 * - its runtime dependencies are exactly the packages dist/ imports (ws: optional peer);
 * - installed into a fresh project: both entries import and work, the CLI prints its version,
 *   WebSocket transports say how to install ws until it is there and work once it is;
 * - its declarations compile with lib ES2022, types node, strict and no skipLibCheck.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string; dependencies?: Record<string, string>; peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
};
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let work: string;
let tarball: string;
let files: Set<string>;
let consumer: string;

function npm(args: string[], cwd: string): string {
  return execFileSync(NPM, args, { cwd, encoding: 'utf8', timeout: 120_000, env: { ...process.env, npm_config_update_notifier: 'false' } });
}

function node(code: string, cwd: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'pagewire-pack-'));
  // npm test built dist/ already (pretest); prepack would build it again.
  const packed = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT)) as
    { filename: string; files: { path: string }[] }[];
  tarball = join(work, packed[0]!.filename);
  files = new Set(packed[0]!.files.map((f) => f.path));
  consumer = join(work, 'consumer');
  mkdirSync(consumer);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
  npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], consumer);
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships the entries, the CLI, the licence and the readme', () => {
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/node.js', 'dist/node.d.ts', 'dist/sim/index.js', 'dist/sim/index.d.ts',
      'dist/cli/main.js', 'bin/pagewire.js', 'dist/migration/channel-worker-web.js', 'dist/migration/target-channel-worker-web.js',
      'LICENSE', 'README.md', 'package.json']) {
      expect(files.has(f), f).toBe(true);
    }
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
    expect([...files].filter((f) => f.startsWith('test/') || f.startsWith('node_modules/'))).toEqual([]);
  });

  it('every source map points only at files in the package', () => {
    const maps = [...files].filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(10);
    const missing: string[] = [];
    for (const m of maps) {
      const map = JSON.parse(readFileSync(join(ROOT, m), 'utf8')) as { sources: string[]; sourceRoot?: string };
      for (const s of map.sources) {
        const target = posix.normalize(posix.join(posix.dirname(m), map.sourceRoot ?? '', s));
        if (!files.has(target)) missing.push(`${m} -> ${target}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every relative link and image in the shipped Markdown resolves to a shipped file', () => {
    const broken: string[] = [];
    for (const md of [...files].filter((f) => f.endsWith('.md'))) {
      const text = readFileSync(join(ROOT, md), 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1]!.split('#')[0]!;
        if (link === '' || /^[a-z]+:/i.test(link)) continue;
        const target = normalize(join(dirname(md), link)).split('\\').join('/');
        if (!files.has(target) && ![...files].some((f) => f.startsWith(`${target}/`))) broken.push(`${md}: ${m[1]}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('runtime dependencies are exactly what dist/ imports; ws is an optional peer', () => {
    const imported = new Set<string>();
    for (const f of [...files].filter((p) => p.startsWith('dist/') && p.endsWith('.js'))) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      const statics = text.matchAll(/^(?:import|export)\s(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]/gm);
      const dynamics = text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g);
      for (const m of [...statics, ...dynamics]) {
        const spec = m[1]!;
        if (spec.startsWith('node:') || spec.startsWith('.')) continue;
        imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    const deps = Object.keys(PKG.dependencies ?? {});
    const peers = Object.keys(PKG.peerDependencies ?? {});
    expect(deps.filter((d) => !imported.has(d)), 'declared but never imported').toEqual([]);
    expect([...imported].filter((d) => !deps.includes(d) && !peers.includes(d)), 'imported but not declared').toEqual([]);
    expect(peers).toEqual(['ws']);
    expect(PKG.peerDependenciesMeta?.['ws']?.optional).toBe(true);
    expect(deps).not.toContain('lz4-wasm');
    expect(deps).not.toContain('lz4-wasm-nodejs');
  });
});

describe('installed in a consumer project', () => {
  it('imports both entries and runs the core, LZ4 and the CLI', () => {
    const r = node(`
      import { ready, xxh64, lz4Compress, lz4Decompress } from 'pagewire';
      import * as nodeEntry from 'pagewire/node';
      import { SimulatedGuest, Prng, createWorkload, simulateMigration } from 'pagewire/sim';
      await ready();
      const page = new Uint8Array(4096).fill(7);
      const back = lz4Decompress(lz4Compress(page), 4096);
      // the subpath's workload is the simulator's: the same seed gives the same pages
      const pick = (seed) => { const w = createWorkload('hotset', 1000, new Prng(seed)); return Array.from({ length: 8 }, () => w.next()); };
      console.log(JSON.stringify({ h: xxh64(new TextEncoder().encode('pagewire')).toString(16), lz4: back.every((b) => b === 7),
        node: typeof nodeEntry.listenTcp, same: nodeEntry.xxh64 === xxh64,
        sim: [typeof SimulatedGuest, typeof simulateMigration], simInRoot: 'SimulatedGuest' in nodeEntry,
        workload: JSON.stringify(pick(5)) === JSON.stringify(pick(5)) && pick(5).every((p) => p >= 0 && p < 1000) }));
    `, consumer);
    expect(r.status, r.out).toBe(0);
    const got = JSON.parse(r.out.trim()) as { h: string; lz4: boolean; node: string; same: boolean };
    expect(got).toEqual({ h: got.h, lz4: true, node: 'function', same: true, sim: ['function', 'function'], simInRoot: false, workload: true });
    expect(got.h).toMatch(/^[0-9a-f]{1,16}$/);
    const v = spawnSync(process.execPath, [join(consumer, 'node_modules', 'pagewire', 'bin', 'pagewire.js'), '--version'], { encoding: 'utf8' });
    expect(v.stdout.trim()).toBe(PKG.version);
  });

  it('resolves the Web Worker entries of parallel channels for browsers only', () => {
    const resolve = (conditions: string[]): { status: number | null; out: string } => {
      const r = spawnSync(process.execPath, [...conditions, '--input-type=module', '-e', `
        const at = (s) => { try { return new URL(import.meta.resolve(s)).pathname.split('/node_modules/pagewire/')[1]; } catch (e) { return e.code; } };
        console.log(JSON.stringify([at('pagewire/workers/channel'), at('pagewire/workers/target-channel'), typeof (await import('pagewire')).webTargetChannelSpawner]));
      `], { cwd: consumer, encoding: 'utf8', timeout: 60_000 });
      return { status: r.status, out: r.stdout + r.stderr };
    };
    const browser = resolve(['--conditions=browser']);
    expect(browser.status, browser.out).toBe(0);
    expect(JSON.parse(browser.out.trim())).toEqual(['dist/migration/channel-worker-web.js', 'dist/migration/target-channel-worker-web.js', 'function']);
    // in Node they are not entries (a Web Worker script has no use there: nodeChannelSpawner, nodeTargetChannelSpawner)
    const plain = resolve([]);
    expect(plain.status, plain.out).toBe(0);
    expect(JSON.parse(plain.out.trim())).toEqual(['ERR_PACKAGE_PATH_NOT_EXPORTED', 'ERR_PACKAGE_PATH_NOT_EXPORTED', 'function']);
  });

  it('installs no runtime dependency it does not use (ws not installed)', () => {
    const lock = JSON.parse(readFileSync(join(consumer, 'package-lock.json'), 'utf8')) as
      { packages: Record<string, { dependencies?: Record<string, string> }> };
    const installed = Object.keys(lock.packages).filter((p) => p !== '').map((p) => p.replace(/^node_modules\//, ''));
    expect(installed).not.toContain('ws');
    expect(installed).not.toContain('lz4-wasm');
    expect(installed).not.toContain('lz4-wasm-nodejs');
    // everything installed is pagewire or reachable from its declared dependencies
    const reachable = new Set<string>(['pagewire']);
    const queue = ['pagewire'];
    while (queue.length > 0) {
      const name = queue.pop()!;
      for (const dep of Object.keys(lock.packages[`node_modules/${name}`]?.dependencies ?? {})) {
        if (!reachable.has(dep)) { reachable.add(dep); queue.push(dep); }
      }
    }
    expect(installed.filter((p) => !reachable.has(p.split('/node_modules/').pop()!))).toEqual([]);
    expect(Object.keys(lock.packages['node_modules/pagewire']?.dependencies ?? {})).toEqual(Object.keys(PKG.dependencies ?? {}));
  });

  it('WebSocket transports: NOT_READY naming ws until it is installed, then a working listener', () => {
    const code = `
      import { listenWebSocket, connectWebSocket } from 'pagewire/node';
      try { await connectWebSocket('ws://127.0.0.1:1/'); console.log('connected?'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
    `;
    const before = node(code, consumer);
    expect(before.status, before.out).toBe(0);
    const err = JSON.parse(before.out.trim()) as { code: string; message: string };
    expect(err.code).toBe('NOT_READY');
    expect(err.message).toMatch(/npm install ws/);

    symlinkSync(join(ROOT, 'node_modules', 'ws'), join(consumer, 'node_modules', 'ws'), 'dir');
    const after = node(`
      import { listenWebSocket, connectWebSocket } from 'pagewire/node';
      const l = await listenWebSocket({ host: '127.0.0.1', port: 0 });
      const [server, client] = await Promise.all([l.accept(), connectWebSocket(l.url)]);
      await client.write(new Uint8Array([1, 2, 3]));
      const got = await server.read();
      console.log(JSON.stringify([...got]));
      client.destroy(); server.destroy(); await l.close();
    `, consumer);
    expect(after.status, after.out).toBe(0);
    expect(after.out.trim()).toBe('[1,2,3]');
  });

  it('the declarations compile with lib ES2022, types node, strict, no skipLibCheck', () => {
    mkdirSync(join(consumer, 'node_modules', '@types'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', '@types', 'node'), join(consumer, 'node_modules', '@types', 'node'), 'dir');
    symlinkSync(join(ROOT, 'node_modules', 'undici-types'), join(consumer, 'node_modules', 'undici-types'), 'dir');
    writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], types: ['node'],
        strict: true, noEmit: true, skipLibCheck: false },
      files: ['main.ts'],
    }));
    writeFileSync(join(consumer, 'main.ts'), [
      "import { ready, xxh64, MigrationSource, MigrationTarget, GuestMemory, memoryPair, type Transport } from 'pagewire';",
      "import { listenTcp, connectTcp, listenWebSocket } from 'pagewire/node';",
      "import { SimulatedGuest, shapeTransport, type VirtualRunResult } from 'pagewire/sim';",
      'await ready();',
      'const h: bigint = xxh64(new Uint8Array(8));',
      'const t: Transport | null = null;',
      'const v: VirtualRunResult | null = null;',
      'export const used = [h, t, v, MigrationSource, MigrationTarget, GuestMemory, memoryPair, listenTcp, connectTcp, listenWebSocket, SimulatedGuest, shapeTransport];',
      '',
    ].join('\n'));
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', consumer], { cwd: consumer, encoding: 'utf8', timeout: 120_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 150_000);
});
