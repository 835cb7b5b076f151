import { expect, test } from "bun:test";
import { programEnv } from "../../src/environment";

const asMap = (l: string[]) => new Map(l.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));

test("shim goes first in LD_PRELOAD and existing entries are kept", () => {
  const env = asMap(programEnv({ LD_PRELOAD: "/a.so /b.so", PATH: "/bin" }, "/s.so", { mode: "fork", debug: false }));
  expect(env.get("LD_PRELOAD")).toBe("/s.so:/a.so:/b.so");
  expect(env.get("PATH")).toBe("/bin");
  expect(env.get("HUPTIME_MODE")).toBe("fork");
  expect(env.has("HUPTIME_DEBUG")).toBe(false);
});

test("stale huptime variables from the caller never reach the program", () => {
  const env = asMap(programEnv({ HUPTIME_STATE: "48555054", HUPTIME_DEBUG: "1", LD_PRELOAD: "/s.so" }, "/s.so", { mode: "exec", debug: false }));
  expect(env.has("HUPTIME_STATE")).toBe(false);
  expect(env.has("HUPTIME_DEBUG")).toBe(false);
  expect(env.get("HUPTIME_MODE")).toBe("exec");
  expect(env.get("LD_PRELOAD")).toBe("/s.so");
});
