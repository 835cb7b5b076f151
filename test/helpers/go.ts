/** Builds the Go fixtures (standard library only): static (CGO_ENABLED=0) unless asked for cgo. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./cli";

/**
 * Path of the built `test/fixtures/go/<name>` program (go's cache makes a rebuild cheap).
 * `build` is linked in as `main.build` (two builds are two versions of the code); `cgo` builds
 * with cgo, which links the program dynamically.
 */
export function goFixture(name: string, opts: { build?: string; cgo?: boolean } = {}): string {
  const dir = join(tmpdir(), `huptime-go-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true });
  const out = join(dir, [name, opts.build, opts.cgo && "cgo"].filter(Boolean).join("-"));
  const ldflags = opts.build ? ["-ldflags", `-X main.build=${opts.build}`] : [];
  const r = spawnSync("go", ["build", "-o", out, ...ldflags, "."], {
    cwd: join(ROOT, "test", "fixtures", "go", name),
    env: { ...process.env, CGO_ENABLED: opts.cgo ? "1" : "0", GOFLAGS: "-mod=mod", GOTOOLCHAIN: "local" },
    encoding: "utf8",
    timeout: 300_000,
  });
  if (r.status !== 0 || !existsSync(out)) throw new Error(`go build ${name} failed: ${r.stderr || r.error}`);
  return out;
}
