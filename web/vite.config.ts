/**
 * Vite config of the simulator (web/). `pagewire` resolves the way it does for an outside user:
 * through the package's exports map (the "browser" condition of "." and "./sim") to the built dist/, never to
 * src/. Run `npm run build` first (npm run build:web does).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { exports: Record<string, Record<string, string>> };
const browserEntry = resolve(root, pkg.exports['.']!['browser']!);
const simEntry = resolve(root, pkg.exports['./sim']!['browser']!);

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  resolve: { alias: [{ find: /^pagewire$/, replacement: browserEntry }, { find: /^pagewire\/sim$/, replacement: simEntry }] },
  worker: { format: 'es' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: true },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
