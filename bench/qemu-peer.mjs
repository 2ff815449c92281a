#!/usr/bin/env node
// A peer process of bench/qemu.mjs: it runs two of these, one as the network (shaping proxies),
// one as the destination host (pagewire's target), as on real hosts where the source's CPU work
// stalls neither and the target's does not stall the link. Driven by
// JSON lines on stdin, answers JSON lines on stdout:
//   { id, op: 'proxy', port, rate }   a shaping proxy to 127.0.0.1:port at `rate` bytes/s -> { id, port }
//   { id, op: 'bytes' }               bytes the proxies forwarded since the last 'close' -> { id, up, down }
//   { id, op: 'cpu' }                 this process's CPU time so far -> { id, cpuMs }
//   { id, op: 'close' }               close every proxy -> { id }
//   { id, op: 'target', qmp, ram, incomingUri }   a QemuTarget and a pagewire listener -> { id, port, fresh },
//                                     then { event: 'target', report } or { event: 'target', error }
import { createInterface } from 'node:readline';
import { QemuTarget, listenTcp, startShapingProxy } from '../dist/node.js';

let proxies = [];
const reply = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function handle(m) {
  switch (m.op) {
    case 'proxy': {
      const p = await startShapingProxy({ target: { host: '127.0.0.1', port: m.port }, bandwidthBytesPerSec: m.rate });
      proxies.push(p);
      return { port: p.port };
    }
    case 'bytes': {
      let up = 0;
      let down = 0;
      for (const p of proxies) {
        const s = p.stats();
        up += s.upstream.bytesDelivered;
        down += s.downstream.bytesDelivered;
      }
      return { up, down };
    }
    case 'cpu': {
      const c = process.cpuUsage();
      return { cpuMs: (c.user + c.system) / 1000 };
    }
    case 'close':
      await Promise.all(proxies.map((p) => p.close()));
      proxies = [];
      return {};
    case 'target': {
      const qt = await QemuTarget.open({ qmp: m.qmp, ramPath: m.ram, incomingUri: m.incomingUri });
      const listener = await listenTcp({ host: '127.0.0.1', port: 0 });
      qt.run(() => listener.accept())
        .then((report) => reply({ event: 'target', report }), (e) => reply({ event: 'target', error: `${e.code ?? ''} ${e.message}` }))
        .finally(() => { qt.close(); void listener.close(); });
      return { port: listener.port, fresh: qt.fresh };
    }
    default:
      throw new Error(`unknown op ${m.op}`);
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line);
  handle(m).then((r) => reply({ id: m.id, ...r }), (e) => reply({ id: m.id, error: String(e?.message ?? e) }));
}).on('close', () => process.exit(0));
