// The package root's public surface (src/index.ts, built to dist/index.d.ts) stays curated: at most
// 120 names, simulator internals and test helpers only in the `pagewire/sim` subpath. Names are
// counted the way a user's editor sees them: the TypeScript checker's exports of the built
// declaration file (values and types), and the runtime module's keys for the values.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAX_ROOT_NAMES = 120;

function declaredNames(entry: string): string[] {
  const file = join(ROOT, entry);
  const program = ts.createProgram([file], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, skipLibCheck: true, noEmit: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file);
  if (source === undefined) throw new Error(`${entry} not built`);
  const symbol = checker.getSymbolAtLocation(source);
  if (symbol === undefined) throw new Error(`${entry} is not a module`);
  return checker.getExportsOfModule(symbol).map((s) => s.name).sort();
}

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, Record<string, string>> };

describe('public API', () => {
  const root = declaredNames('dist/index.d.ts');
  const sim = declaredNames('dist/sim/index.d.ts');

  it(`the package root exports at most ${MAX_ROOT_NAMES} names (values and types)`, async () => {
    expect(root.length, root.join(' ')).toBeLessThanOrEqual(MAX_ROOT_NAMES);
    // every runtime value of the root is declared, and nothing else is exported at run time
    const values = Object.keys(await import(join(ROOT, 'dist/index.js')) as object).sort();
    expect(values.filter((v) => !root.includes(v))).toEqual([]);
    expect(values.length).toBeGreaterThan(50);
  });

  it('the root holds what an application needs', () => {
    for (const name of ['ready', 'createCore', 'xxh64', 'xbzrleEncode', 'GuestMemory', 'BitmapDirtyLog', 'MigrationSource',
      'MigrationTarget', 'SourceOptions', 'MigrationReport', 'ProgressEvent', 'PagewireError', 'ErrorCode', 'memoryPair',
      'messagePortTransport', 'webSocketTransport', 'writeSnapshot', 'restoreSnapshot', 'memoryDigest', 'PolicyOptions']) {
      expect(root, name).toContain(name);
    }
  });

  it('simulator internals and test helpers are in pagewire/sim, not in the root', async () => {
    const internals = ['Scatter', 'PageCursor', 'popcount32', 'simulateMigration', 'createWorkload', 'SimulatedGuest', 'fillInitial',
      'shapeTransport', 'FaultInjector', 'decide', 'Prng'];
    expect(root.filter((n) => internals.includes(n))).toEqual([]);
    expect(internals.filter((n) => !sim.includes(n))).toEqual([]);
    // the subpath and the root share no names: one home for each
    expect(sim.filter((n) => root.includes(n))).toEqual([]);
    const mod = await import(join(ROOT, PKG.exports['./sim']!['default']!)) as Record<string, unknown>;
    expect(typeof mod['SimulatedGuest']).toBe('function');
    expect(PKG.exports['./sim']!['types']).toBe('./dist/sim/index.d.ts');
  });
});
