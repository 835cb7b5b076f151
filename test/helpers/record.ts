/**
 * Builds handover records (see crates/huptime/src/wire.rs) to feed the shim hostile input. Tests
 * build the bytes here rather than through the shim's encoder because most of them must be
 * wrong (a future version, a cut or edited record resealed so that only the payload parser sees
 * the damage), which an encoder refuses to write. The header's constants come from the Rust
 * definitions (generated/protocol.ts); the payload layout is checked by the tests themselves:
 * the shim must parse these records to report the per-socket problems they expect.
 */
import { RECORD } from "../../src/generated/protocol";

function fnv1a32(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const x of b) {
    h ^= x;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const HEADER = RECORD.headerBytes;
const MAGIC = Array.from(RECORD.magic, (c) => c.charCodeAt(0));

/** One socket entry: fd, and an IPv4 TCP address. */
export interface Entry {
  fd: number;
  port: number;
}

/** Fields of a record that tests set to unusual values. */
export interface RecordOptions {
  version?: number;
  /** Write end of the readiness pipe (-1, the default: nobody waits). */
  readyFd?: number;
  parentPid?: number;
}

function hex(bytes: Iterable<number>): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Record bytes with the given generation and IPv4 TCP sockets. */
export function recordBytes(generation: number, entries: Entry[], opts: RecordOptions = {}): Uint8Array {
  const payload: number[] = [];
  const u16 = (v: number) => payload.push(v & 255, (v >> 8) & 255);
  const u32 = (v: number) => payload.push(v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255);
  u32(generation);
  u32(opts.parentPid ?? 1);
  u32(opts.readyFd ?? -1);
  u16(entries.length);
  for (const e of entries) {
    u32(e.fd);
    u16(2); // AF_INET
    u32(1); // SOCK_STREAM
    u16(8);
    payload.push(2, 0, (e.port >> 8) & 255, e.port & 255, 127, 0, 0, 1);
  }
  const bytes = new Uint8Array(HEADER + payload.length + 4);
  bytes.set([...MAGIC, opts.version ?? RECORD.version, 0], 0);
  bytes.set(payload, HEADER);
  return reseal(bytes, opts.version);
}

/** Hex record (HUPTIME_STATE's form) with the given generation and IPv4 TCP sockets. */
export function record(generation: number, entries: Entry[], opts: RecordOptions = {}): string {
  return hex(recordBytes(generation, entries, opts));
}

/**
 * Makes an edited record's header, payload length and checksum consistent with its bytes again,
 * so that the shim's payload parser (not its first checks) meets the edit.
 */
export function reseal(bytes: Uint8Array, version: number = RECORD.version): Uint8Array {
  if (bytes.length < HEADER + 4) return bytes;
  const len = bytes.length - HEADER - 4;
  bytes.set([...MAGIC, version, 0, len & 255, (len >>> 8) & 255, (len >>> 16) & 255, len >>> 24], 0);
  const sum = fnv1a32(bytes.subarray(HEADER, HEADER + len));
  bytes.set([sum & 255, (sum >>> 8) & 255, (sum >>> 16) & 255, sum >>> 24], HEADER + len);
  return bytes;
}

/** A seeded pseudo-random generator (mulberry32): numbers in [0, 1). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A random HUPTIME_STATE value: random hex, random bytes, or a record naming `fds` and `ports`
 * (valid, or with bytes flipped, cut or inserted, resealed or not).
 */
export function randomState(rand: () => number, fds: number[], ports: number[]): string {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: T[]): T => xs[int(xs.length)];
  const kind = int(5);
  if (kind === 0) return Array.from({ length: int(200) }, () => pick([..."0123456789abcdefABCDEF"])).join("");
  if (kind === 1) return hex(Array.from({ length: int(120) }, () => int(256)));
  const entries = Array.from({ length: int(4) }, () => ({ fd: pick(fds), port: pick(ports) }));
  let bytes = recordBytes(1 + int(5), entries, { readyFd: rand() < 0.5 ? -1 : pick(fds), parentPid: int(100000) });
  if (kind >= 3) {
    const edited = Array.from(bytes);
    for (let i = 0, n = 1 + int(4); i < n; i++) {
      const at = int(edited.length);
      const op = int(3);
      if (op === 0) edited[at] ^= 1 << int(8);
      else if (op === 1) edited.splice(at, 1 + int(8));
      else edited.splice(at, 0, ...Array.from({ length: 1 + int(8) }, () => int(256)));
    }
    bytes = Uint8Array.from(edited);
    if (kind === 3) bytes = reseal(bytes);
  }
  return hex(bytes);
}
