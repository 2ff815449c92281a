// Target: allocates memory of the layout the source announces and receives it.
import { createCore, GuestMemory, messagePortTransport, MigrationTarget } from 'pagewire';

self.onmessage = async ({ data: { port } }) => {
  const target = new MigrationTarget(async (layout) => GuestMemory.inCore(await createCore(), layout.regions, layout.pageSize));
  const report = await target.run(messagePortTransport(port, { windowBytes: 2 << 20 }));
  self.postMessage({ verified: report.verified, digest: report.digest });
};
