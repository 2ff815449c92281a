/**
 * The target: a MigrationTarget that receives the memory over the MessagePort. For post-copy and
 * hybrid it also runs a guest (FaultingGuestRunner) once the source switches over: its accesses
 * to pages not yet received fault and wait for them. The guest only reads here, so the target's
 * memory must end equal to the source's at pause time (the digest check on the page).
 */
import {
  createCore, FaultingGuestRunner, GuestMemory, memoryDigest, messagePortTransport, MigrationTarget,
  type Core, type Transport,
} from 'pagewire';
import { shapeTransport, SimulatedGuest } from 'pagewire/sim';
import { engineOptions, errorInfo, type StartMessage, type WorkerMessage } from './messages.js';

const post = (m: WorkerMessage): void => { (self as unknown as Worker).postMessage(m); };

self.addEventListener('message', (ev: MessageEvent<StartMessage>) => {
  if (ev.data?.type !== 'start') return;
  run(ev.data).catch((e: unknown) => post({ type: 'failed', role: 'target', error: errorInfo(e) }));
}, { once: true });

async function run({ config: c, port }: StartMessage): Promise<void> {
  let transport: Transport = messagePortTransport(port, { label: 'target port', windowBytes: c.portWindowBytes });
  // acknowledgements and post-copy page requests see the same one-way delay
  if (c.delayMs > 0) transport = shapeTransport(transport, { delayMs: c.delayMs, seed: c.seed + 1, label: 'target link' });

  let core: Core | null = null;
  let memory: GuestMemory | null = null;
  let sim: SimulatedGuest | null = null;
  const { mode } = engineOptions(c.engine);
  let runner: FaultingGuestRunner | null = null;
  const target = new MigrationTarget(async (layout) => {
    core = await createCore();
    memory = GuestMemory.inCore(core, layout.regions, layout.pageSize);
    post({ type: 'ready', role: 'target', pages: memory.pageCount });
    return memory;
  }, { idleTimeoutMs: 30_000 }, {
    guestMayRun: () => {
      if (runner === null) return;
      runner.start();
    },
  });
  if (mode !== 'precopy') {
    const guest = {
      nextAccess: (): number => {
        if (sim === null) sim = new SimulatedGuest(memory!, { workload: c.workload === 'idle' ? 'uniform' : c.workload, seed: c.seed + 7 });
        return sim.nextAccess();
      },
      writePage: (p: number): void => { sim?.writePage(p); },
    };
    runner = new FaultingGuestRunner(target, guest, { ratePagesPerSec: 2000, sliceMs: 4, writes: false });
  }
  target.on('phase', (p) => post({ type: 'phase', role: 'target', phase: p.phase, round: p.round }));
  try {
    const report = await target.run(transport);
    const r = runner as FaultingGuestRunner | null;
    if (r) await r.stop();
    const digest = memoryDigest(memory!, core!);
    post({ type: 'done', role: 'target', report, memoryDigest: digest, extra: { guestAccesses: r?.accesses ?? 0 } });
  } catch (e) {
    await (runner as FaultingGuestRunner | null)?.stop();
    throw e;
  }
}
