/**
 * A tiny static file server for browser tests: serves mounted directories on 127.0.0.1 (an
 * ephemeral port), plus pages given inline (HTML, or JavaScript for a path ending in .js), with
 * extra response headers if asked (e.g. COOP/COEP for a cross-origin-isolated page). Only GET/HEAD,
 * no directory listing, no path escape.
 */
import { createServer, type Server } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.map': 'application/json', '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml', '.png': 'image/png',
};

export interface StaticServer {
  url: string;
  /** Paths requested, in order (for assertions on what a page loaded). */
  requests: string[];
  close(): Promise<void>;
}

/**
 * @param mounts URL prefix (e.g. '/' or '/dist/') -> directory
 * @param pages URL path -> inline HTML
 * @param transform rewrites a served file's text (e.g. resolving bare imports the way a bundler would)
 * @param headers sent with every file and page served
 */
export async function serveStatic(
  mounts: Record<string, string>, pages: Record<string, string> = {}, transform?: (path: string, text: string) => string,
  headers: Record<string, string> = {},
): Promise<StaticServer> {
  const requests: string[] = [];
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      requests.push(path);
      if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405).end(); return; }
      const page = pages[path];
      if (page !== undefined) { res.writeHead(200, { ...headers, 'content-type': TYPES[path.endsWith('.js') ? '.js' : '.html']!, 'cache-control': 'no-store' }).end(page); return; }
      const prefix = prefixes.find((p) => path.startsWith(p));
      if (prefix === undefined) { res.writeHead(404).end(); return; }
      const dir = mounts[prefix]!;
      let file = normalize(join(dir, path.slice(prefix.length)));
      if (file !== dir && !file.startsWith(dir.endsWith(sep) ? dir : dir + sep)) { res.writeHead(403).end(); return; }
      try {
        if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
        let body: Buffer | string = await readFile(file);
        if (transform && /\.(js|mjs|html)$/.test(file)) body = transform(path, body.toString('utf8'));
        res.writeHead(200, { ...headers, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      } catch {
        res.writeHead(404).end();
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
