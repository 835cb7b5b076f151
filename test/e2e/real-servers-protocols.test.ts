/**
 * More real servers under huptime, each restarted five times under a client loop speaking its
 * protocol: zero failed requests, the new generation answering, the old ones gone.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { exchange, request } from "../helpers/net";
import { freePort } from "../helpers/net";
import { alive, groupMembers, killAll, processesTitled, waitFor } from "../helpers/procs";
import { restartUnderLoad } from "../helpers/restart-loop";

const RESTARTS = 5;

describe("real servers", () => {
  test(`redis-server (daemonize, pidfile, 127.0.0.1 and ::1): ${RESTARTS} restarts, zero failures, new config`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "huptime-redis-"));
    const port = await freePort();
    const pidfile = join(dir, "redis.pid");
    const conf = join(dir, "redis.conf");
    const write = (hz: number) =>
      writeFileSync(conf, `port ${port}\nbind 127.0.0.1 ::1\ndaemonize yes\npidfile ${pidfile}\nlogfile ${dir}/redis.log\ndir ${dir}\nsave ""\nappendonly no\nhz ${hz}\n`);
    write(10);
    const started = runCli(["--unlink", pidfile, "redis-server", conf]);
    expect(started.code, started.stderr).toBe(0);
    const ping = (host: string) => exchange(port, "PING\r\n", /\+PONG\r\n/, 10_000, host);
    const hzIs = async (v: number) => {
      const r = await exchange(port, "CONFIG GET hz\r\n", /hz\r\n\$\d+\r\n\d+\r\n/);
      return r.ok && r.body.endsWith(`\r\n${v}\r\n`);
    };
    const ours = () => processesTitled(`redis-server 127.0.0.1:${port}`);
    try {
      await waitFor(async () => (await ping("127.0.0.1")).ok && (await ping("::1")).ok, "redis to answer on both sockets");
      let turn = 0;
      await restartUnderLoad({
        port,
        restarts: RESTARTS,
        send: () => ping(turn++ % 2 === 0 ? "127.0.0.1" : "::1"),
        prepare: (gen) => write(10 + gen),
        master: () => Number(readFileSync(pidfile, "utf8")),
        answersNew: async (gen) => (await hzIs(10 + gen)) && existsSync(pidfile),
      });
      await waitFor(() => ours().length === 1, "only the newest redis to remain");
    } finally {
      killAll(ours());
    }
  }, 120_000);

  test(`memcached (threaded): ${RESTARTS} restarts, zero failures`, async () => {
    const port = await freePort();
    const s = serve(["memcached", "-l", "127.0.0.1", "-p", String(port), "-U", "0", "-t", "4", "-u", "root"]);
    const pidOf = async () => {
      const r = await exchange(port, "stats\r\n", /END\r\n/);
      return r.ok ? Number(/STAT pid (\d+)/.exec(r.body)?.[1]) : 0;
    };
    try {
      await waitFor(async () => (await pidOf()) > 0, "memcached to answer");
      let master = s.pid;
      await restartUnderLoad({
        port,
        restarts: RESTARTS,
        send: () => exchange(port, "version\r\n", /VERSION .*\r\n/),
        master: () => master,
        answersNew: async () => {
          const pid = await pidOf();
          if (!pid || pid === master || alive(master)) return false;
          master = pid;
          return true;
        },
      });
    } finally {
      s.killGroup();
    }
  }, 120_000);

  // [name, argv, path whose body starts with the cookie, cwd]
  const scripted: [string, (port: number, cookie: string) => string[], string?][] = [
    ["python3 -m http.server", (port) => ["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1"], "/cookie"],
    ["node http", (port, cookie) => ["node", join(SERVERS, "node_http.js"), String(port), cookie]],
    ["ruby TCPServer", (port, cookie) => ["ruby", join(SERVERS, "ruby_tcp.rb"), String(port), cookie]],
    ["perl IO::Socket::INET", (port, cookie) => ["perl", join(SERVERS, "perl_tcp.pl"), String(port), cookie]],
    [
      "socat (fork per connection)",
      (port, cookie) => [
        "socat",
        `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,backlog=128`,
        `EXEC:${join(SERVERS, "socat_reply.sh")} ${cookie}`,
      ],
    ],
  ];
  for (const [name, argv, path = "/"] of scripted) {
    test(`${name}: ${RESTARTS} restarts, zero failures, new code answering`, async () => {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), "huptime-script-"));
      const cookie = join(dir, "cookie");
      writeFileSync(cookie, "gen1 x");
      const s = serve(argv(port, cookie), { cwd: dir });
      try {
        await waitFor(async () => (await request(port, "/", 1000)).ok, `${name} to answer`);
        let master = s.pid;
        await restartUnderLoad({
          port,
          restarts: RESTARTS,
          send: () => request(port),
          prepare: (gen) => writeFileSync(cookie, `gen${gen} x`),
          master: () => master,
          answersNew: async (gen) => {
            const next = groupMembers(s.pgid).find((p) => p.ppid === process.pid && p.pid !== master);
            const r = await request(port, path, 2000);
            if (!next || !r.ok || !r.body.startsWith(`gen${gen} `) || alive(master)) return false;
            master = next.pid;
            return true;
          },
        });
      } finally {
        s.killGroup();
      }
    }, 120_000);
  }
});
