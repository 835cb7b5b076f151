/** Builds handover records (see crates/huptime/src/wire.rs) to feed the shim hostile input. */

function fnv1a32(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const x of b) {
    h ^= x;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** One socket entry: fd, and an IPv4 TCP address. */
export interface Entry {
  fd: number;
  port: number;
}

/** Hex record with the given generation and IPv4 TCP sockets. */
export function record(generation: number, entries: Entry[], opts: { version?: number } = {}): string {
  const payload: number[] = [];
  const u16 = (v: number) => payload.push(v & 255, (v >> 8) & 255);
  const u32 = (v: number) => payload.push(v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255);
  u32(generation);
  u32(1); // parent pid
  u32(0xffffffff); // ready fd -1
  u16(entries.length);
  for (const e of entries) {
    u32(e.fd);
    u16(2); // AF_INET
    u32(1); // SOCK_STREAM
    u16(8);
    payload.push(2, 0, (e.port >> 8) & 255, e.port & 255, 127, 0, 0, 1);
  }
  const p = Uint8Array.from(payload);
  const sum = fnv1a32(p);
  const head = [0x48, 0x55, 0x50, 0x54, opts.version ?? 1, 0, p.length & 255, (p.length >> 8) & 255, 0, 0];
  const all = [...head, ...p, sum & 255, (sum >>> 8) & 255, (sum >>> 16) & 255, sum >>> 24];
  return all.map((b) => b.toString(16).padStart(2, "0")).join("");
}
