import { expect, test } from "bun:test";
import type { StatusRow } from "../../src/inventory";
import { formatTable, formatUptime } from "../../src/status-table";

test("uptimes read at a glance", () => {
  expect([0, 59, 60, 725, 3600, 11220, 86400, 187200].map(formatUptime)).toEqual(["0s", "59s", "1m00s", "12m05s", "1h00m", "3h07m", "1d00h", "2d04h"]);
});

test("the table aligns columns and cuts only the command to the width", () => {
  const row = (pid: number, command: string): StatusRow => ({
    pid, ppid: 1, uid: 0, generation: pid === 7 ? null : 2, mode: "fork", state: "serving",
    listening: ["tcp 127.0.0.1:80", "tcp6 [::1]:80"], connections: 12, closed: null, uptime: 65, command,
  });
  const out = formatTable([row(7, "nginx: worker process"), row(12345, "x".repeat(200))], 110).split("\n");
  expect(out[0]).toMatch(/^PID +PPID +GEN +MODE +STATE +CONNS +UPTIME +LISTENING +COMMAND$/);
  expect(out[1]).toMatch(/^7 +1 +- +fork +serving +12 +1m05s +tcp 127\.0\.0\.1:80,tcp6 \[::1\]:80 +nginx: worker process$/);
  expect(out[2].length).toBe(110);
  expect(out[2].endsWith("…")).toBe(true);
  expect(out[0].indexOf("COMMAND")).toBe(out[1].indexOf("nginx"));
});
