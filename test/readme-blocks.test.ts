/**
 * Every code block of README.md runs as written, against the built package ('pagewire' and
 * 'pagewire/node' resolve through its exports map to dist/):
 * - ts blocks: type-checked as a consumer compiles them (lib ES2022, types node, strict), then
 *   transpiled and run with Node; they must exit 0 on their own (listeners closed, timers stopped);
 * - js blocks (the embedding example: a page and two module workers, split at their `// file`
 *   comments) run in Chromium with 'pagewire' served from dist/; skipped without a browser like the
 *   other browser tests;
 * - sh blocks: `pagewire`/`npx pagewire` lines run with the built CLI and must exit 0; npm lines must
 *   name scripts package.json has (or install this package or its optional peer: npm install cannot
 *   run here, and npm test cannot run inside npm test);
 * - text blocks (synopses, diagrams) are not code; any other fence is an error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { chromium } from 'playwright-core';
import { browserDecision, CHROMIUM } from './helpers/browser.js';
import { serveStatic } from './e2e/static-server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; scripts: Record<string, string>; peerDependencies?: Record<string, string> };
const BIN = join(ROOT, 'bin', 'pagewire.js');

interface Block { lang: string; code: string; line: number }

function readmeBlocks(): Block[] {
  const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i]!);
    blocks.push({ lang: open[1]!, code: body.join('\n'), line: start + 1 });
  }
  return blocks;
}

const BLOCKS = readmeBlocks();
let project: string;

beforeAll(() => {
  // A consumer project whose node_modules/pagewire is this package (built by npm test's pretest).
  project = mkdtempSync(join(tmpdir(), 'pagewire-readme-'));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'readme', private: true, type: 'module' }));
  mkdirSync(join(project, 'node_modules', '@types'), { recursive: true });
  symlinkSync(ROOT, join(project, 'node_modules', 'pagewire'), 'dir');
  symlinkSync(join(ROOT, 'node_modules', '@types', 'node'), join(project, 'node_modules', '@types', 'node'), 'dir');
  symlinkSync(join(ROOT, 'node_modules', 'undici-types'), join(project, 'node_modules', 'undici-types'), 'dir');
});

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('README code blocks', () => {
  it('are all ts, js, sh or text, and there are runnable ones of each kind', () => {
    expect(BLOCKS.filter((b) => !['ts', 'js', 'sh', 'text'].includes(b.lang)).map((b) => `line ${b.line}: "${b.lang}"`)).toEqual([]);
    for (const lang of ['ts', 'js', 'sh']) expect(BLOCKS.some((b) => b.lang === lang), lang).toBe(true);
  });

  for (const block of BLOCKS.filter((b) => b.lang === 'ts')) {
    it(`ts block at line ${block.line} type-checks and runs to completion`, () => {
      const file = join(project, `block-${block.line}.ts`);
      writeFileSync(file, block.code + '\n');
      writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], types: ['node'], strict: true, noEmit: true },
        files: [file],
      }));
      const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { encoding: 'utf8', timeout: 120_000 });
      expect(tsc.stdout + tsc.stderr).toBe('');
      const js = ts.transpileModule(block.code, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText;
      writeFileSync(join(project, `block-${block.line}.mjs`), js);
      const run = spawnSync(process.execPath, [`block-${block.line}.mjs`], { cwd: project, encoding: 'utf8', timeout: 120_000 });
      expect(run.signal, `killed: did the block leave a handle open?\n${run.stdout}${run.stderr}`).toBeNull();
      expect(run.status, run.stdout + run.stderr).toBe(0);
      expect(run.stderr).toBe('');
      if (/migrate\(\)/.test(block.code)) {
        expect(run.stdout).toMatch(/round 0: \d+ pages/);
        expect(run.stdout).toMatch(/^verified true, downtime [\d.]+ ms$/m);
        expect(run.stdout).toMatch(/target: memory verified/);
      }
    }, 150_000);
  }

  for (const block of BLOCKS.filter((b) => b.lang === 'sh')) {
    it(`sh block at line ${block.line}: its pagewire lines run, its npm lines name real scripts`, () => {
      for (const raw of block.code.split('\n')) {
        const line = raw.replace(/\s+#.*$/, '').trim();
        if (line === '') continue;
        for (const cmd of line.split('&&').map((c) => c.trim())) {
          const words = cmd.split(/\s+/);
          if (words[0] === 'npx' && words[1] === 'pagewire' || words[0] === 'pagewire') {
            const args = words.slice(words[0] === 'npx' ? 2 : 1);
            const r = spawnSync(process.execPath, [BIN, ...args], { cwd: project, encoding: 'utf8', timeout: 120_000 });
            expect(r.status, `${cmd}\n${r.stdout}${r.stderr}`).toBe(0);
          } else if (words[0] === 'npm') {
            const sub = words[1]!;
            if (sub === 'install' || sub === 'i') {
              for (const name of words.slice(2)) expect([PKG.name, ...Object.keys(PKG.peerDependencies ?? {})], cmd).toContain(name);
            } else if (sub === 'ci') {
              expect(words.length, cmd).toBe(2);
            } else {
              const script = sub === 'run' ? words[2]! : sub;
              expect(Object.keys(PKG.scripts), cmd).toContain(script);
            }
          } else {
            throw new Error(`README line "${raw}": no rule to check this command`);
          }
        }
      }
    }, 300_000);
  }
});

const BROWSER = browserDecision();

describe.skipIf(BROWSER.skip)('README js blocks in Chromium', () => {
  for (const block of BLOCKS.filter((b) => b.lang === 'js')) {
    it(`js block at line ${block.line} runs as a page with its workers and reports a verified migration`, async () => {
      // Split at the "// page" and "// NAME.js" comment lines that start each file.
      const files: Record<string, string> = {};
      let current = '';
      for (const l of block.code.split('\n')) {
        const head = /^\/\/ (page|[\w-]+\.js)\b/.exec(l);
        if (head) { current = head[1] === 'page' ? 'page.js' : head[1]!; files[current] = ''; }
        if (current) files[current] += l + '\n';
      }
      expect(Object.keys(files).sort()).toEqual(['page.js', 'source-worker.js', 'target-worker.js']);
      const dir = mkdtempSync(join(tmpdir(), 'pagewire-readme-js-'));
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
      writeFileSync(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="page.js"></script>');
      // 'pagewire' resolved to the served dist/index.js, as a bundler or an import map would
      const server = await serveStatic({ '/dist/': join(ROOT, 'dist'), '/': dir }, {},
        (_path, text) => text.replaceAll(`from 'pagewire'`, `from '/dist/index.js'`).replaceAll(`from 'pagewire/sim'`, `from '/dist/sim/index.js'`));
      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking'] });
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        const logged = new Promise<unknown>((resolve) => {
          page.on('console', (m) => { void m.args()[0]?.jsonValue().then(resolve, () => undefined); });
        });
        await page.goto(`${server.url}/index.html`);
        const result = await Promise.race([logged, new Promise((_r, reject) => setTimeout(() => reject(new Error(`no result; errors: ${errors.join('; ')}`)), 60_000))]);
        expect(result).toEqual({ verified: true, digest: expect.stringMatching(/^[0-9a-f]{16}$/) as unknown });
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
        await server.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }, 120_000);
  }
});
