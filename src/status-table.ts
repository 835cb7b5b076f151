/** The `huptime --status` table: aligned columns, the command cut to the terminal's width. */
import type { StatusRow } from "./inventory";

/** Formats seconds as `45s`, `12m03s`, `3h07m`, `2d04h`. */
export function formatUptime(s: number): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`;
}

/** The last restart's outcome and age (`ready 12s ago`), `-` if none. */
function lastRestart(r: StatusRow, now: number): string {
  const l = r.last_restart;
  return l ? `${l.outcome} ${formatUptime(Math.max(0, Math.round((now - l.at) / 1000)))} ago` : "-";
}

/** The rows as an aligned text table; the command column is cut to fit `width`. */
export function formatTable(rows: StatusRow[], width = 120, now = Date.now()): string {
  const head = ["PID", "PPID", "GEN", "MODE", "STATE", "CONNS", "UPTIME", "LAST RESTART", "LISTENING", "COMMAND"];
  const cells = rows.map((r) => [
    String(r.pid),
    String(r.ppid),
    r.generation === null ? "-" : String(r.generation),
    r.mode ?? "-",
    r.state,
    String(r.connections),
    formatUptime(r.uptime),
    lastRestart(r, now),
    r.listening.length ? r.listening.join(",") : "-",
    r.command,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (i === head.length - 1 ? 0 : c[i].length))));
  const line = (c: string[]) => {
    const fixed = c.slice(0, -1).map((v, i) => v.padEnd(widths[i])).join("  ");
    const room = Math.max(10, width - fixed.length - 2);
    const cmd = c[c.length - 1];
    return `${fixed}  ${cmd.length > room ? cmd.slice(0, room - 1) + "…" : cmd}`.trimEnd();
  };
  return [line(head), ...cells.map(line)].join("\n") + "\n";
}
