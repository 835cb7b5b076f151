/** A fake systemd notify socket for tests: every sd_notify message with its sender's pid. */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./cli";
import { waitFor } from "./procs";

/** One received message. */
export interface Notice {
  pid: number;
  fields: Record<string, string>;
}

/** Starts the listener; returns its socket path, the messages so far and a way to wait for one. */
export async function notifyListener() {
  const path = join(mkdtempSync(join(tmpdir(), "huptime-notify-")), "notify.sock");
  const child = spawn("python3", [join(ROOT, "test", "fixtures", "notify_listener.py"), path], { stdio: ["ignore", "pipe", "inherit"] });
  const notices: Notice[] = [];
  let listening = false;
  let buf = "";
  child.stdout!.on("data", (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const msg = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (msg.listening) listening = true;
      else notices.push(msg);
    }
  });
  await waitFor(() => listening, "the notify listener");
  return {
    path,
    notices,
    /** Waits for a message (after index `from`) matching `pred`; returns it. */
    async next(pred: (n: Notice) => boolean, from = 0, what = "a notify message", timeoutMs = 15_000): Promise<Notice> {
      await waitFor(() => notices.slice(from).some(pred), `${what}; got ${JSON.stringify(notices)}`, timeoutMs);
      return notices.slice(from).find(pred)!;
    },
    stop: () => child.kill("SIGKILL"),
  };
}
