/** The benchmark report: targets checked (PASS/FAIL), report.md, report.json, latency.svg. */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Sample } from "./probe";
import type { RestartRun } from "./scenarios";

/** One checked target. */
export interface Check {
  what: string;
  value: string;
  target: string;
  pass: boolean;
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "-");
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "-");
const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : "-");

/** A markdown table. */
export function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** The targets table: each check with PASS or FAIL. */
export function targetsTable(checks: Check[]): string {
  return table(["target", "measured", "goal", ""], checks.map((c) => [c.what, c.value, c.target, c.pass ? "PASS" : "FAIL"]));
}

/** Rows for scenario 1/2 runs. */
export function restartRows(runs: RestartRun[]): (string | number)[][] {
  return runs.flatMap((r) => [
    [`${r.kind} ${r.mode}${r.close ? "" : " keep-alive"}`, `restarting (${r.restartsCompleted}/${r.restarts} every ${r.intervalMs} ms)`, r.load.requests, r.load.failed, f1(r.load.rps), f2(r.load.p50Ms), f2(r.load.p99Ms), f1(r.load.maxMs)],
    ["", "no restarts", r.baseline.requests, r.baseline.failed, f1(r.baseline.rps), f2(r.baseline.p50Ms), f2(r.baseline.p99Ms), f1(r.baseline.maxMs)],
  ]);
}

/** Latency over time with restart marks, as an SVG line plot. */
export function latencySvg(title: string, samples: Sample[], marks: number[]): string {
  const W = 900, H = 300, L = 50, B = 30, T = 30;
  const tMax = Math.max(1, ...samples.map((s) => s.t), ...marks);
  const ok = samples.filter((s) => s.ms !== undefined) as Required<Sample>[];
  const sorted = ok.map((s) => s.ms).sort((a, b) => a - b);
  const yMax = Math.max(1, sorted[Math.floor(sorted.length * 0.999)] ?? 1) * 1.1;
  const x = (t: number) => L + ((W - L - 10) * t) / tMax;
  const y = (ms: number) => H - B - ((H - B - T) * Math.min(ms, yMax)) / yMax;
  const path = ok.map((s, i) => `${i ? "L" : "M"}${x(s.t).toFixed(1)},${y(s.ms).toFixed(1)}`).join(" ");
  const failed = samples.filter((s) => s.ms === undefined).map((s) => `<circle cx="${x(s.t).toFixed(1)}" cy="${H - B}" r="3" fill="red"/>`).join("");
  const lines = marks.map((m) => `<line x1="${x(m).toFixed(1)}" y1="${T}" x2="${x(m).toFixed(1)}" y2="${H - B}" stroke="#f4a" stroke-width="0.5"/>`).join("");
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${L - 5}" y="${y(f * yMax) + 4}" text-anchor="end" font-size="10">${(f * yMax).toFixed(1)}</text>`).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${L}" y="18" font-size="13">${title}</text>
${lines}
<path d="${path}" fill="none" stroke="#2266cc" stroke-width="1"/>
${failed}
<line x1="${L}" y1="${H - B}" x2="${W - 10}" y2="${H - B}" stroke="black"/>
<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>
${ticks}
<text x="${L}" y="${H - 8}" font-size="10">0 s</text>
<text x="${W - 10}" y="${H - 8}" font-size="10" text-anchor="end">${(tMax / 1000).toFixed(1)} s</text>
<text x="12" y="${T + 10}" font-size="10" transform="rotate(-90 12 ${T + 10})" text-anchor="end">latency (ms)</text>
<text x="${W - 10}" y="18" font-size="10" text-anchor="end">pink: restarts (${marks.length}); red dots: failed requests (${samples.length - ok.length})</text>
</svg>
`;
}

/** Writes report.md, report.json and latency.svg into `dir`. */
export function writeReport(dir: string, md: string, json: unknown, svg: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "report.md"), md);
  writeFileSync(join(dir, "report.json"), JSON.stringify(json, null, 2) + "\n");
  writeFileSync(join(dir, "latency.svg"), svg);
}

/** One scenario's part of the report, for a run of that scenario alone. */
export interface ScenarioPart {
  /** Its section in report.md, starting with its "## N. " heading. */
  section: string;
  /** Its key in report.json and its figures. */
  key: string;
  data: unknown;
  /** Its checks; they replace those whose name starts with `checkPrefix`. */
  checks: Check[];
  checkPrefix: string;
}

/**
 * Puts one scenario's section, figures and checks into the report already in `dir` (written by a
 * whole run), replacing the scenario's previous ones, and rewrites the targets table; the other
 * scenarios' figures stay as they were measured.
 */
export function mergeScenario(dir: string, part: ScenarioPart): void {
  const mdPath = join(dir, "report.md");
  const jsonPath = join(dir, "report.json");
  const json = JSON.parse(readFileSync(jsonPath, "utf8"));
  json.checks = [...(json.checks as Check[]).filter((c) => !c.what.startsWith(part.checkPrefix)), ...part.checks];
  json[part.key] = part.data;
  let md = readFileSync(mdPath, "utf8");
  const heading = part.section.slice(0, part.section.indexOf(".") + 1); // "## 6."
  const at = md.indexOf(`\n${heading}`);
  if (at >= 0) {
    const next = md.indexOf("\n## ", at + 1);
    md = md.slice(0, at + 1) + part.section + (next >= 0 ? md.slice(next) : "");
  } else {
    md = `${md.trimEnd()}\n\n${part.section}`;
  }
  const t = md.indexOf("\n## Targets\n");
  const tEnd = md.indexOf("\n## ", t + 1);
  md = `${md.slice(0, t)}\n## Targets\n\n${targetsTable(json.checks)}\n${md.slice(tEnd)}`;
  writeFileSync(mdPath, md);
  writeFileSync(jsonPath, JSON.stringify(json, null, 2) + "\n");
}

export { f1, f2, f3 };
