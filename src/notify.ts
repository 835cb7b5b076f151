/**
 * sd_notify from the CLI, for the modes where huptime itself stays the service's main process
 * (`--multi`, `--listen-fds`). In the plain modes the shim in the program speaks instead.
 */
import { info } from "./log";
import { native } from "./native";

/** Sends readiness, reload and stop notices to systemd; does nothing without a socket. */
export class Notifier {
  private failed = false;

  /** `socket` is NOTIFY_SOCKET (undefined: not under systemd). */
  constructor(private readonly socket: string | undefined) {}

  /** Whether notices are sent at all. */
  get enabled(): boolean {
    return this.socket !== undefined;
  }

  private send(message: string): void {
    if (!this.socket) return;
    try {
      native().sdNotify(this.socket, message);
    } catch (e) {
      if (!this.failed) info((e as Error).message);
      this.failed = true;
    }
  }

  /** The service is ready (again); `status` is shown by `systemctl status`. */
  ready(status: string): void {
    this.send(`READY=1\nMAINPID=${process.pid}\nSTATUS=${status}`);
  }

  /** A restart begins (Type=notify-reload). */
  reloading(status: string): void {
    if (!this.socket) return;
    this.send(`RELOADING=1\nMONOTONIC_USEC=${native().monotonicUsec()}\nSTATUS=${status}`);
  }

  /** The service is stopping. */
  stopping(): void {
    this.send("STOPPING=1");
  }
}
