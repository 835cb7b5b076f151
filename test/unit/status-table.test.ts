import { expect, test } from "bun:test";
import type { StatusRow } from "../../src/inventory";
import { formatTable, formatUptime } from "../../src/status-table";

test("uptimes read at a glance", () => {
  expect([0, 59, 60, 725, 3600, 11220, 86400, 187200].map(formatUptime)).toEqual(["0s", "59s", "1m00s", "12m05s", "1h00m", "3h07m", "1d00h", "2d04h"]);
});

test("the table aligns columns and cuts only the command to the width", () => {
  const now = 1_800_000_000_000;
  const receipt = {
    generation: 2, outcome: "rolled_back", previous: 12345, at: now - 125_400, sighup_to_ready_ms: null, handover_ms: null, drained_ms: null,
    connections_drained: null, connections_cut: null, listen_drops: 0, reason: "exited with status 1", summary: "",
  };
  const row = (pid: number, command: string): StatusRow => ({
    pid, ppid: 1, uid: 0, generation: pid === 7 ? null : 2, mode: "fork", state: "serving",
    listening: ["tcp 127.0.0.1:80", "tcp6 [::1]:80"], connections: 12, closed: null, last_restart: pid === 7 ? null : receipt, uptime: 65, command,
  });
  const out = formatTable([row(7, "nginx: worker process"), row(12345, "x".repeat(200))], 130, now).split("\n");
  expect(out[0]).toMatch(/^PID +PPID +GEN +MODE +STATE +CONNS +UPTIME +LAST RESTART +LISTENING +COMMAND$/);
  expect(out[1]).toMatch(/^7 +1 +- +fork +serving +12 +1m05s +- +tcp 127\.0\.0\.1:80,tcp6 \[::1\]:80 +nginx: worker process$/);
  expect(out[2]).toMatch(/^12345 +1 +2 +fork +serving +12 +1m05s +rolled_back 2m05s ago +tcp /);
  expect(out[2].length).toBe(130);
  expect(out[2].endsWith("…")).toBe(true);
  expect(out[0].indexOf("COMMAND")).toBe(out[1].indexOf("nginx"));
});
