#!/usr/bin/env node
// Removes files from dist/ whose TypeScript source no longer exists (tsc never deletes outputs),
// so a renamed or split module does not ship twice in the package with a source map to nothing.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const OUTPUT = /\.(d\.ts|js|js\.map|d\.ts\.map)$/;
let removed = 0;
function walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) {
      walk(p);
      if (readdirSync(p).length === 0) rmSync(p, { recursive: true });
      continue;
    }
    const m = OUTPUT.exec(entry.name);
    if (m === null) continue;
    const source = join(root, 'src', relative(dist, dir), entry.name.slice(0, -m[0].length) + '.ts');
    if (!existsSync(source)) { rmSync(p); removed++; }
  }
}
if (existsSync(dist)) walk(dist);
if (removed > 0 && !process.argv.includes('--quiet')) console.log(`dist: removed ${removed} stale file(s)`);
