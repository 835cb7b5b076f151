/**
 * Why Clipanion refused a command line, in one line naming the options. huptime's forms (run a
 * program; --restart, --stop, --status) are commands on the default path, each control form
 * selected by its own required flag, so Clipanion itself refuses a line that no form takes (two
 * flags, or an option of another form). Its own message then lists every form's usage ("Command
 * not found; did you mean one of: ..."); this module reads the same definitions to say instead
 * "--restart and --stop cannot be used together", "--exec cannot be used with --restart" or
 * "--json only goes with --status".
 */
import { type Definition } from "clipanion";
import { forms, ownOptions, type Form } from "./definitions";

/** Whether `form` takes the option `name`. */
function takes(form: Form, name: string): boolean {
  return form.options.some((o) => o.names.includes(name));
}

/**
 * The one-line reason no form of `defs` takes `argv`: an unknown option, options that do not go
 * together, or no program; undefined when it is none of these (a value a validator refused:
 * Clipanion's own message says it).
 */
export function refusal(argv: string[], defs: Definition[]): string | undefined {
  const all = forms(defs);
  const { given, program } = ownOptions(argv, all);
  const unknown = given.find((o) => !all.some((f) => takes(f, o)));
  if (unknown !== undefined) return `unknown option ${unknown}`;
  const flags = [...new Set(all.flatMap((f) => f.flags))].filter((flag) => given.includes(flag));
  if (flags.length > 1) return `${flags.join(" and ")} cannot be used together`;
  const chosen = all.filter((f) => (flags.length ? f.flags.includes(flags[0]) : f.flags.length === 0));
  const extra = [...new Set(given)].filter((o) => !chosen.some((f) => takes(f, o)));
  if (extra.length === 0) return program ? undefined : "no command given";
  if (flags.length) return `${extra.join(", ")} cannot be used with ${flags[0]}`;
  const owners = [...new Set(all.filter((f) => takes(f, extra[0])).flatMap((f) => f.flags))];
  return `${extra[0]} only goes with ${owners.join(" or ")}`;
}
