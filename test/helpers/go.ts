/** Builds the static Go fixtures (CGO_ENABLED=0, standard library only) once per test run. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./cli";

/** Path of the built `test/fixtures/go/<name>` program (built on first use). */
export function goFixture(name: string): string {
  const dir = join(tmpdir(), `huptime-go-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true });
  const out = join(dir, name);
  const r = spawnSync("go", ["build", "-o", out, "."], {
    cwd: join(ROOT, "test", "fixtures", "go", name),
    env: { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-mod=mod", GOTOOLCHAIN: "local" },
    encoding: "utf8",
    timeout: 300_000,
  });
  if (r.status !== 0 || !existsSync(out)) throw new Error(`go build ${name} failed: ${r.stderr || r.error}`);
  return out;
}
