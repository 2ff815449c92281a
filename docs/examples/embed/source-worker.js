// Source: a 32 MiB simulated guest that keeps writing while its memory is migrated.
import { createCore, GuestMemory, messagePortTransport, MigrationSource } from 'pagewire';
import { fillInitial, shapeTransport, SimulatedGuest } from 'pagewire/sim';

self.onmessage = async ({ data: { port } }) => {
  const memory = GuestMemory.inCore(await createCore(), 8192, 4096);
  fillInitial(memory, 'mixed', 1);
  const guest = new SimulatedGuest(memory, { workload: 'hotset', rateBytesPerSec: 8 << 20 });
  // 1 Gbit/s with 1 ms one-way delay, on top of the MessagePort
  const link = shapeTransport(messagePortTransport(port, { windowBytes: 2 << 20 }), { bandwidthBytesPerSec: 125e6, delayMs: 1 });
  const source = new MigrationSource(memory, guest.dirtyLog, link, { codecs: 'all', downtimeLimitMs: 1000 }, guest.hooks());
  source.on('round', (r) => self.postMessage({ round: r.round, pages: r.pages, wireBytes: r.wireBytes }));
  guest.start();
  const report = await source.migrate();
  guest.stop();
  self.postMessage({ verified: report.verified, converged: report.converged, digest: report.digest });
};
