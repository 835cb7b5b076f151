/**
 * `--listen [NAME=]ADDRESS` specs for `--listen-fds`: where huptime binds the sockets it hands
 * to the program by the LISTEN_FDS protocol.
 *
 * ADDRESS is `HOST:PORT` (IPv4 or `localhost`), `[IPV6]:PORT`, `PORT` or `:PORT` (all IPv4
 * interfaces), or an absolute path (a unix stream socket). NAME goes to LISTEN_FDNAMES.
 */

/** One socket to listen on. */
export interface ListenSpec {
  /** Its LISTEN_FDNAMES entry. */
  name: string;
  family: "ipv4" | "ipv6" | "unix";
  /** IP address, or the socket path for unix. */
  host: string;
  /** TCP port (0 for unix). */
  port: number;
  /** The spec as the user wrote it, for messages. */
  label: string;
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

function parsePort(text: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new Error(`--listen ${spec}: ${JSON.stringify(text)} is not a port (1-65535)`);
  }
  return Number(text);
}

/** Parses one spec; `index` gives the default name (`listen0`, `listen1`, ...). Throws with a
 * message naming the spec. */
export function parseListen(spec: string, index: number): ListenSpec {
  let name = `listen${index}`;
  let addr = spec;
  const eq = spec.indexOf("=");
  if (eq >= 0 && !spec.startsWith("/")) {
    name = spec.slice(0, eq);
    addr = spec.slice(eq + 1);
    if (!NAME.test(name)) throw new Error(`--listen ${spec}: the name must be 1-64 letters, digits, '_', '.' or '-'`);
  }
  const label = addr;
  if (addr.startsWith("/")) {
    if (Buffer.byteLength(addr) > 107) throw new Error(`--listen ${spec}: the socket path is longer than 107 bytes`);
    return { name, family: "unix", host: addr, port: 0, label };
  }
  const v6 = addr.match(/^\[([0-9A-Fa-f:.]+)\]:(.*)$/);
  if (v6) return { name, family: "ipv6", host: v6[1], port: parsePort(v6[2], spec), label };
  const colon = addr.lastIndexOf(":");
  const host = colon >= 0 ? addr.slice(0, colon) : "";
  const port = parsePort(colon >= 0 ? addr.slice(colon + 1) : addr, spec);
  if (host === "" || host === "*") return { name, family: "ipv4", host: "0.0.0.0", port, label };
  if (host === "localhost") return { name, family: "ipv4", host: "127.0.0.1", port, label };
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.split(".").some((o) => Number(o) > 255)) {
    throw new Error(`--listen ${spec}: ${JSON.stringify(host)} is not an IPv4 address (use [v6]:PORT for IPv6; host names are not resolved)`);
  }
  return { name, family: "ipv4", host, port, label };
}

/** Parses every spec; names must be unique. */
export function parseListens(specs: string[]): ListenSpec[] {
  const out = specs.map(parseListen);
  const seen = new Set<string>();
  for (const l of out) {
    if (seen.has(l.name)) throw new Error(`--listen: the name ${l.name} is used twice`);
    seen.add(l.name);
  }
  return out;
}
