/**
 * Reading the command definitions Clipanion keeps (`cli.definitions()`): which options each form
 * of huptime takes, which select it, and what an option's value is called. The help, the man
 * page, the bash completion and the one-line refusals are all read from them, so none can drift
 * from what the parser accepts.
 */
import { type Definition } from "clipanion";

/**
 * What the value of each option that takes one is called in the help, the man page and the
 * completion (Clipanion itself shows `#0`). The one place placeholders are named.
 */
const VALUE_NAMES: Record<string, string> = {
  "--multi": "N",
  "--unlink": "FILE",
  "--ready-timeout": "S",
  "--drain-timeout": "S",
  "--drain-idle": "S",
  "--listen": "ADDR",
  "--ready-delay": "S",
  "--stop-signal": "SIG",
  "--timeout": "S",
};

/** One option as a definition describes it. */
export interface Opt {
  /** Its names, the long one first as defined (`--multi`). */
  names: string[];
  /** What its value is called (`N`), or undefined for a flag. */
  value?: string;
  description: string;
  /** It selects its form (`--restart`): the form is refused without it. */
  required: boolean;
}

/** One form of huptime (a registered, documented command). */
export interface Form {
  definition: Definition;
  options: Opt[];
  /** The flags that select it (`--restart`); none for the main form. */
  flags: string[];
}

/** Parses Clipanion's `--name,-n #0` into names and placeholder. */
function parseOption(o: Definition["options"][number]): Opt {
  const [names, ...values] = o.definition.split(" ");
  const first = names.split(",")[0];
  if (values.length > 0 && VALUE_NAMES[first] === undefined) {
    throw new Error(`the value of ${first} has no name: add it to VALUE_NAMES in definitions.ts`);
  }
  return { names: names.split(","), value: values.length > 0 ? VALUE_NAMES[first] : undefined, description: o.description ?? "", required: o.required };
}

/** The forms of the CLI whose definitions are `defs`, in the order they were registered. */
export function forms(defs: Definition[]): Form[] {
  return defs.map((definition) => {
    const options = definition.options.map(parseOption);
    return { definition, options, flags: options.filter((o) => o.required).flatMap((o) => o.names) };
  });
}

/** `--multi N`, `--fork`: an option as the help and the man page show it. */
export function optionLabel(o: Opt): string {
  return o.names.join(", ") + (o.value ? ` ${o.value}` : "");
}

/**
 * The options given to huptime itself (their names, without values) and whether a program
 * follows them: options end at `--` or at the first word that is not one.
 */
export function ownOptions(argv: string[], all: Form[]): { given: string[]; program: boolean } {
  const withValue = new Set(all.flatMap((f) => f.options.filter((o) => o.value).flatMap((o) => o.names)));
  const given: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") return { given, program: i + 1 < argv.length };
    if (!arg.startsWith("-") || arg === "-") return { given, program: true };
    const name = arg.split("=")[0];
    given.push(name);
    if (withValue.has(name) && !arg.includes("=")) i++;
  }
  return { given, program: false };
}
