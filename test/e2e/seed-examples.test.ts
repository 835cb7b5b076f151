/** The original huptime README's examples, run as written (python3 -m http.server for SimpleHTTPServer). */
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HUPTIME } from "../helpers/cli";
import { freePort } from "../helpers/net";
import { myservice } from "../helpers/service";

test("huptime --exec python3 -m http.server &, a curl loop, kill -HUP $PID: no fail", () => {
  const dir = mkdtempSync(join(tmpdir(), "huptime-seed-"));
  writeFileSync(join(dir, "index.html"), "hello\n");
  // The README's three terminals, in one shell script (bounded loop instead of `while true`).
  const script = `
    set -u
    cd ${dir}
    ${HUPTIME} --exec python3 -m http.server 8000 --bind 127.0.0.1 >server.log 2>&1 &
    PID=$!
    for i in $(seq 1 100); do curl -s -o /dev/null http://localhost:8000 && break; sleep 0.05; done
    ( for i in $(seq 1 600); do curl -s -m 10 http://localhost:8000 >/dev/null 2>&1 || echo "fail"; done ) >loop.log &
    LOOP=$!
    sleep 0.5; kill -HUP $PID; sleep 1; kill -HUP $PID; sleep 1; kill -HUP $PID
    wait $LOOP
    echo "same-pid:$(test -d /proc/$PID && echo yes)"
    echo "fails:$(grep -c fail loop.log)"
    kill $PID; wait $PID 2>/dev/null; true
  `;
  const r = spawnSync("bash", ["-c", script], { encoding: "utf8", timeout: 90_000 });
  expect(r.stdout).toContain("same-pid:yes");
  expect(r.stdout).toContain("fails:0");
}, 100_000);

/** Runs a bash script (the README's lines) with `$SVC`, `$PORT`, `$COOKIE`, `$HUPTIME` set. */
function sh(script: string, env: Record<string, string>, timeout = 60_000) {
  return spawnSync("bash", ["-c", `set -u\n${script}`], { encoding: "utf8", timeout, env: { ...process.env, ...env } });
}

async function svcEnv() {
  const svc = myservice();
  const cookie = join(svc.dir, "cookie");
  writeFileSync(cookie, "v1");
  return { svc, env: { SVC: svc.path, NAME: svc.name, PORT: String(await freePort()), COOKIE: cookie, HUPTIME, DIR: svc.dir } };
}

/** Waits until the service answers, then prints its reply (shell function used by the scripts). */
const answer = `answer() { for i in $(seq 1 100); do r=$(curl -s -m 2 http://127.0.0.1:$PORT/) && [ -n "$r" ] && { echo "$r"; return; }; sleep 0.05; done; echo none; }`;

test("huptime myservice &; killall -HUP myservice; huptime --restart myservice", async () => {
  const { env } = await svcEnv();
  const r = sh(`${answer}
    $HUPTIME $SVC $PORT $COOKIE >$DIR/log 2>&1 &
    answer | cut -d' ' -f1
    echo v2 >$COOKIE; killall -HUP $NAME; sleep 0.5; answer | cut -d' ' -f1
    echo v3 >$COOKIE; $HUPTIME --restart $SVC; answer | cut -d' ' -f1
    $HUPTIME --stop $SVC >/dev/null`, env);
  const lines = r.stdout.split("\n").filter(Boolean);
  expect(lines.slice(0, 2)).toEqual(["v1", "v2"]);
  expect(lines[2]).toMatch(/^huptime: restarted: pid \d+ -> \d+, ready in [\d.]+ ms, handover [\d.]+ ms, \d+ connections? drained in [\d.]+ ms, 0 cut, \d+ dropped by the kernel$/);
  expect(lines[3]).toBe("v3");
}, 60_000);

test("--unlink PIDFILE: a service that refuses to start over its pidfile still restarts", async () => {
  const { env } = await svcEnv();
  const r = sh(`${answer}
    $HUPTIME --unlink $DIR/svc.pid $SVC $PORT $COOKIE $DIR/svc.pid >$DIR/log 2>&1 &
    answer | cut -d' ' -f1
    echo v2 >$COOKIE; killall -HUP $NAME; sleep 0.5; answer | cut -d' ' -f1
    echo v3 >$COOKIE; $HUPTIME --restart $SVC; answer | cut -d' ' -f1
    echo "pidfile=$(cat $DIR/svc.pid)" ; echo "status=$($HUPTIME --status $SVC)"
    $HUPTIME --stop $SVC >/dev/null`, env);
  const lines = r.stdout.split("\n").filter(Boolean);
  expect(lines.slice(0, 2)).toEqual(["v1", "v2"]);
  expect(lines[3]).toBe("v3");
  const pidfile = lines.find((l) => l.startsWith("pidfile="))!.slice(8);
  expect(lines).toContain(`status=${pidfile}`);
}, 60_000);

test("without --unlink that same service cannot restart: rolled back, old one serves", async () => {
  const { env } = await svcEnv();
  const r = sh(`${answer}
    $HUPTIME $SVC $PORT $COOKIE $DIR/svc.pid >$DIR/log 2>&1 &
    answer | cut -d' ' -f1
    echo v2 >$COOKIE; $HUPTIME --restart $SVC; echo "rc=$?"; answer | cut -d' ' -f1
    $HUPTIME --stop $SVC >/dev/null`, env);
  expect(r.stdout.split("\n").filter(Boolean)).toEqual(["v1", "rc=1", "v1"]);
  expect(r.stderr).toContain("rolled back");
}, 60_000);

test("huptime --exec myservice &; kill -HUP $PID (same pid); huptime --restart myservice", async () => {
  const { env } = await svcEnv();
  const r = sh(`${answer}
    $HUPTIME --exec $SVC $PORT $COOKIE >$DIR/log 2>&1 &
    PID=$!
    answer | cut -d' ' -f1
    echo v2 >$COOKIE; kill -HUP $PID; sleep 0.5; answer
    echo v3 >$COOKIE; $HUPTIME --restart $SVC >/dev/null; answer
    echo "pid=$PID"
    $HUPTIME --stop $SVC >/dev/null`, env);
  const lines = r.stdout.split("\n").filter(Boolean);
  const pid = lines[3].slice(4);
  expect(lines.slice(0, 3)).toEqual(["v1", `v2 ${pid}`, `v3 ${pid}`]);
}, 60_000);

test("huptime --multi=4 myservice &; killall -HUP myservice; huptime --restart myservice", async () => {
  const { env } = await svcEnv();
  const r = sh(`${answer}
    pids() { for i in $(seq 1 40); do curl -s -m 2 http://127.0.0.1:$PORT/; done | sort -u | cut -d' ' -f1 | sort | uniq -c | awk '{print $2":"$1}' | tr '\\n' ' '; echo; }
    $HUPTIME --multi=4 $SVC $PORT $COOKIE >$DIR/log 2>&1 &
    HPID=$!
    answer >/dev/null; sleep 0.3
    echo "instances=$($HUPTIME --status $SVC | wc -l)"
    echo v2 >$COOKIE; killall -HUP $NAME; sleep 1
    echo "after-killall=$(for i in $(seq 1 40); do curl -s -m 2 http://127.0.0.1:$PORT/ | cut -d' ' -f1; done | sort -u | tr '\\n' ' ')"
    echo v3 >$COOKIE; $HUPTIME --restart $SVC >/dev/null; echo "restart-rc=$?"
    echo "after-restart=$(for i in $(seq 1 40); do curl -s -m 2 http://127.0.0.1:$PORT/ | cut -d' ' -f1; done | sort -u | tr '\\n' ' ')"
    echo "instances=$($HUPTIME --status $SVC | wc -l)"
    kill -TERM $HPID; wait $HPID; echo "huptime-exit=$?"`, env);
  const lines = r.stdout.split("\n").filter(Boolean);
  expect(lines).toEqual(["instances=4", "after-killall=v2 ", "restart-rc=0", "after-restart=v3 ", "instances=4", "huptime-exit=0"]);
}, 60_000);
