// Fuzzing support shared by `npm run fuzz` (scripts/fuzz.mjs) and the regression test
// (test/fuzz-regressions.test.ts). Uses the built package (dist/).
//
// - capture(): records the byte stream a real source sends to a real target (a small guest that
//   writes during the migration, so the stream has several rounds and every codec in use).
// - feedTarget(bytes): plays bytes as "the source" into a fresh MigrationTarget and classifies the
//   outcome: 'ok' (verified), 'error' (a PagewireError with a stable code: the expected outcome of
//   garbage), or a finding: 'crash' (anything else thrown), 'hang' (no outcome within the time
//   limit), 'memory' (the target grew its memory beyond the bound).
// - mutate(stream, rnd): random byte-level or structure-aware mutations (frame-level edits with the
//   checksum recomputed, so that the mutation reaches the payload decoders).
import { MigrationSource, MigrationTarget, GuestMemory, createCore, memoryPair, PagewireError } from '../dist/index.js';
// frame layout internals (not exported from the package)
import { FrameType, FRAME_HEADER_BYTES, PREAMBLE_BYTES } from '../dist/protocol/frame.js';
import { FrameWriter } from '../dist/protocol/codec.js';

/** Largest guest memory a fuzzed HELLO may make the target allocate. */
export const FUZZ_MAX_GUEST_BYTES = 16 * 1024 * 1024;
export const FUZZ_TIMEOUT_MS = 3000;

let sharedCore;
async function core() {
  sharedCore ??= await createCore();
  return sharedCore;
}

/** A deterministic PRNG (xorshift32). */
export function prng(seed) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
  next.int = (n) => Math.floor(next() * n);
  return next;
}

/** Record what a source sends in a real migration of a small writing guest. */
export async function capture({ pages = 256, seed = 1, codecs = 'all' } = {}) {
  const rnd = prng(seed);
  const src = GuestMemory.inCore(await createCore(), pages);
  for (let p = 0; p < pages; p++) {
    const v = src.page(p);
    const kind = p % 4;
    if (kind === 0) continue; // zero page
    if (kind === 1) v.fill(p & 0xff); // a run
    else for (let i = 0; i < v.length; i += 8) v[i] = rnd.int(256);
  }
  const dirty = new Set();
  const log = { start() {}, stop() {}, sync() { const a = Uint32Array.from([...dirty].sort((x, y) => x - y)); dirty.clear(); return a; } };
  let rounds = 0;
  const [a, b] = memoryPair();
  const chunks = [];
  const tap = {
    get closed() { return a.closed; },
    label: 'tap',
    write(c) { chunks.push(c.slice()); return a.write(c); },
    read: () => a.read(),
    end: () => a.end(),
    destroy: (e) => a.destroy(e),
  };
  const source = new MigrationSource(src, log, tap, { codecs, downtimeLimitMs: 1, maxRounds: 4, batchPages: 32 }, {
    onRound: (r, before) => {
      if (!before) return;
      rounds = r;
      // dirty a few pages between rounds: small edits (XBZRLE), rewrites, zeroing, duplicates
      for (let i = 0; i < 24; i++) {
        const p = rnd.int(pages);
        const v = src.page(p);
        const k = rnd.int(4);
        if (k === 0) v[rnd.int(v.length)] ^= 0xff;
        else if (k === 1) v.fill(0);
        else if (k === 2) v.set(src.page(rnd.int(pages)));
        else for (let j = 0; j < 64; j++) v[rnd.int(v.length)] = rnd.int(256);
        dirty.add(p);
      }
    },
  });
  const dst = GuestMemory.inCore(await createCore(), pages);
  const target = new MigrationTarget(dst);
  await Promise.all([source.migrate(), target.run(b)]);
  void rounds;
  return concat(chunks);
}

export function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.byteLength; }
  return out;
}

/** Split a captured stream into its preamble and frames (header + payload views). */
export function splitFrames(stream) {
  const frames = [];
  let o = PREAMBLE_BYTES;
  const dv = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  while (o + FRAME_HEADER_BYTES <= stream.length) {
    const len = dv.getUint32(o, true);
    if (o + FRAME_HEADER_BYTES + len > stream.length) break;
    frames.push({ type: stream[o + 4], flags: stream[o + 5], seq: dv.getUint32(o + 8, true), payload: stream.slice(o + FRAME_HEADER_BYTES, o + FRAME_HEADER_BYTES + len) });
    o += FRAME_HEADER_BYTES + len;
  }
  return { preamble: stream.slice(0, PREAMBLE_BYTES), frames };
}

/** Re-frame (fresh, valid checksums and consecutive sequence numbers). */
export async function joinFrames(preamble, frames) {
  const w = new FrameWriter(await core());
  const parts = [preamble];
  for (const f of frames) parts.push(w.frame(f.type, f.payload, f.flags));
  w.dispose();
  return concat(parts);
}

function mutateBytes(b, rnd) {
  const out = Array.from(b);
  const n = 1 + rnd.int(4);
  for (let i = 0; i < n; i++) {
    const k = rnd.int(6);
    const at = out.length ? rnd.int(out.length) : 0;
    if (k === 0 && out.length) out[at] ^= 1 << rnd.int(8);
    else if (k === 1 && out.length) out[at] = [0, 0xff, 0x7f, 0x80, 1][rnd.int(5)];
    else if (k === 2) out.splice(at, 0, rnd.int(256));
    else if (k === 3 && out.length) out.splice(at, 1 + rnd.int(8));
    else if (k === 4 && out.length) out.length = at; // truncate
    else if (out.length) out.splice(at, 0, ...out.slice(at, at + 1 + rnd.int(32))); // duplicate a run
  }
  return Uint8Array.from(out);
}

/** One mutation of a captured stream. */
export async function mutate(stream, rnd) {
  if (rnd() < 0.3) return mutateBytes(stream, rnd); // raw: the checksum should catch most
  const { preamble, frames } = splitFrames(stream);
  const fs = frames.map((f) => ({ ...f }));
  const pagesIdx = fs.map((f, i) => (f.type === FrameType.PAGES ? i : -1)).filter((i) => i >= 0);
  const k = rnd.int(7);
  const pick = () => (pagesIdx.length && rnd() < 0.8 ? pagesIdx[rnd.int(pagesIdx.length)] : rnd.int(fs.length));
  if (k <= 2) { const i = pick(); fs[i].payload = mutateBytes(fs[i].payload, rnd); } // payload edits (records, JSON)
  else if (k === 3) { const i = rnd.int(fs.length); fs.splice(i, 0, { ...fs[i] }); } // duplicate frame
  else if (k === 4) { fs.splice(rnd.int(fs.length), 1); } // drop frame
  else if (k === 5) { const i = rnd.int(fs.length); const j = rnd.int(fs.length); [fs[i], fs[j]] = [fs[j], fs[i]]; } // reorder
  else { const i = pick(); fs[i].type = [1, 5, 6, 7, 8, 12, 13, 14, 15, 99][rnd.int(10)]; } // wrong type
  const out = await joinFrames(preamble, fs.filter((f) => f.type >= 1 && f.type <= 17));
  return out;
}

/**
 * Play `bytes` into a fresh target as the source's side of the connection.
 * @returns {{ outcome: 'ok'|'error'|'crash'|'hang'|'memory', code?: string, message?: string }}
 */
export async function feedTarget(bytes, { timeoutMs = FUZZ_TIMEOUT_MS, chunk = 4096 } = {}) {
  const [a, b] = memoryPair();
  let maxCore = 0;
  const target = new MigrationTarget(async (layout) => {
    const mem = GuestMemory.inCore(await createCore(), layout.regions, layout.pageSize);
    maxCore = Math.max(maxCore, mem.core.byteLength);
    return mem;
  }, { maxGuestBytes: FUZZ_MAX_GUEST_BYTES, handshakeTimeoutMs: timeoutMs, idleTimeoutMs: timeoutMs });
  // drain what the target says back
  const drain = (async () => { try { while ((await a.read()) !== null); } catch { /* closed */ } })();
  const feed = (async () => {
    try {
      for (let o = 0; o < bytes.length; o += chunk) await a.write(bytes.slice(o, o + chunk));
      await a.end();
    } catch { /* the target may close early */ }
  })();
  let timer;
  const hang = new Promise((r) => { timer = setTimeout(() => r({ outcome: 'hang' }), timeoutMs * 2); });
  const run = target.run(b).then(
    (rep) => ({ outcome: rep.verified ? 'ok' : 'crash', message: rep.verified ? undefined : 'completed without verification' }),
    (err) => (err instanceof PagewireError ? { outcome: 'error', code: err.code } : { outcome: 'crash', message: String(err && err.stack || err) }),
  );
  const res = await Promise.race([run, hang]);
  clearTimeout(timer);
  a.destroy();
  await Promise.race([Promise.all([drain, feed]), new Promise((r) => setTimeout(r, 100))]);
  const mem = target.guestMemory;
  const coreBytes = Math.max(maxCore, mem?.core?.byteLength ?? 0);
  if (coreBytes > FUZZ_MAX_GUEST_BYTES * 4 + 64 * 1024 * 1024) return { outcome: 'memory', message: `target core grew to ${coreBytes} bytes` };
  return res;
}

// ------------------------------------------------------------------ snapshot files and ELF cores

/** A full snapshot of a small guest (every codec), as file bytes. */
export async function captureSnapshot({ pages = 128, seed = 1 } = {}) {
  const { writeSnapshot, MemorySink } = await import('../dist/index.js');
  const rnd = prng(seed);
  const mem = GuestMemory.inCore(await createCore(), pages);
  for (let p = 0; p < pages; p++) {
    const v = mem.page(p);
    if (p % 4 === 0) continue;
    if (p % 4 === 1) v.fill(p & 0xff);
    else for (let i = 0; i < v.length; i += 8) v[i] = rnd.int(256);
  }
  const sink = new MemorySink();
  await writeSnapshot(mem, sink, { codecs: 'all', batchPages: 32 });
  return sink.bytes();
}

/** Outcome of a bounded async call: its result, or 'hang'. */
async function bounded(p, timeoutMs) {
  let timer;
  const hang = new Promise((r) => { timer = setTimeout(() => r({ outcome: 'hang' }), timeoutMs); });
  try { return await Promise.race([p, hang]); } finally { clearTimeout(timer); }
}

const classify = (err) => (err instanceof PagewireError ? { outcome: 'error', code: err.code } : { outcome: 'crash', message: String(err && err.stack || err) });

/**
 * Restore and inspect snapshot bytes. 'ok': restored (verified or not: a mutated file may restore
 * other memory and say so), 'error': a PagewireError; findings: 'crash', 'hang', 'memory' (memory
 * made beyond the bound).
 */
export async function feedSnapshot(bytes, { timeoutMs = FUZZ_TIMEOUT_MS } = {}) {
  const { restoreSnapshot, inspectSnapshot, checkSnapshot } = await import('../dist/index.js');
  const c = await core();
  let made = 0;
  const memory = (layout) => {
    made = layout.regions.reduce((n, r) => n + r.pageCount, 0) * layout.pageSize;
    return GuestMemory.allocateExternal(layout);
  };
  const opts = { core: c, maxGuestBytes: FUZZ_MAX_GUEST_BYTES };
  const res = await bounded((async () => {
    try {
      await inspectSnapshot(bytes, { ...opts, decode: true });
      await checkSnapshot(bytes, opts).catch(() => undefined);
      const r = await restoreSnapshot(bytes, { ...opts, memory });
      return { outcome: 'ok', verified: r.verified };
    } catch (err) {
      return classify(err);
    }
  })(), timeoutMs * 2);
  if (made > FUZZ_MAX_GUEST_BYTES) return { outcome: 'memory', message: `a ${made}-byte guest was made` };
  return res;
}

/** A small ELF64 LE core file: `segs` PT_LOAD segments of `bytes` bytes each, at physical addresses. */
export function elfCore(segs = 3, bytes = 8192) {
  const hdr = 64 + 56 * segs;
  const buf = new Uint8Array(hdr + segs * bytes);
  const dv = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 4, true); dv.setUint16(18, 62, true); dv.setUint32(20, 1, true);
  dv.setBigUint64(32, 64n, true); dv.setUint16(52, 64, true); dv.setUint16(54, 56, true); dv.setUint16(56, segs, true);
  for (let i = 0; i < segs; i++) {
    const o = 64 + 56 * i;
    dv.setUint32(o, 1, true);
    dv.setBigUint64(o + 8, BigInt(hdr + i * bytes), true);
    dv.setBigUint64(o + 24, BigInt(i) * 0x100000n, true);
    dv.setBigUint64(o + 32, BigInt(bytes), true);
    dv.setBigUint64(o + 40, BigInt(bytes), true);
    for (let k = 0; k < bytes; k += 64) buf[hdr + i * bytes + k] = (i * 7 + k) & 0xff;
  }
  return buf;
}

const BIG = [0n, 1n, 0xffffn, 0xffffffffn, 2n ** 40n, 2n ** 52n, 2n ** 63n, 2n ** 64n - 1n];

/** Mutate an ELF core's headers: fields set to edge values, bytes flipped, the file cut. */
export function mutateElf(b, rnd) {
  const out = b.slice();
  const dv = new DataView(out.buffer);
  const segs = Math.max(1, dv.getUint16(56, true) & 0xff);
  const n = 1 + rnd.int(3);
  for (let i = 0; i < n; i++) {
    const k = rnd.int(5);
    if (k === 0) { // a u64 field of a program header (offset, vaddr, paddr, filesz, memsz)
      const o = 64 + 56 * rnd.int(segs) + 8 * (1 + rnd.int(5));
      if (o + 8 <= out.length) dv.setBigUint64(o, BIG[rnd.int(BIG.length)], true);
    } else if (k === 1) { // e_phoff, e_shoff, e_phentsize, e_phnum
      const f = rnd.int(4);
      if (f === 0) dv.setBigUint64(32, BIG[rnd.int(BIG.length)], true);
      else if (f === 1) dv.setBigUint64(40, BIG[rnd.int(BIG.length)], true);
      else if (f === 2) dv.setUint16(54, [0, 32, 56, 0xffff][rnd.int(4)], true);
      else dv.setUint16(56, [0, 1, 2, 1024, 0xfffe, 0xffff][rnd.int(6)], true);
    } else if (k === 2) { out[rnd.int(Math.min(out.length, 64 + 56 * segs))] ^= 1 << rnd.int(8); }
    else if (k === 3) { out[4 + rnd.int(3)] = rnd.int(4); } // class, data, version
    else return out.slice(0, rnd.int(out.length)); // cut
  }
  return out;
}

/** Load ELF bytes as guest memory (through a temporary file). 'ok', 'error', or a finding. */
export async function feedElf(bytes, { timeoutMs = FUZZ_TIMEOUT_MS } = {}) {
  const { loadMemoryImage } = await import('../dist/node.js');
  const { writeFileSync, unlinkSync, mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const file = join(mkdtempSync(join(tmpdir(), 'pagewire-fuzz-elf-')), 'core');
  writeFileSync(file, bytes);
  try {
    return await bounded((async () => {
      try {
        const img = await loadMemoryImage(file, { format: 'elf', maxGuestBytes: FUZZ_MAX_GUEST_BYTES });
        if (img.memory.byteLength > FUZZ_MAX_GUEST_BYTES) return { outcome: 'memory', message: `${img.memory.byteLength} bytes of guest` };
        return { outcome: 'ok' };
      } catch (err) {
        return classify(err);
      }
    })(), timeoutMs * 2);
  } finally {
    unlinkSync(file);
  }
}
