/** The original huptime README's examples, run as written (python3 -m http.server for SimpleHTTPServer). */
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HUPTIME } from "../helpers/cli";

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
