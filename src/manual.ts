/**
 * huptime's documentation, written from the command definitions (see definitions.ts): the
 * `--help` text, laid out like a manual page, the man page (roff) and the bash completion.
 * scripts/build writes the last two to dist/huptime.1 and dist/huptime.bash.
 */
import { type ColorFormat, type Definition } from "clipanion";
import { forms, optionLabel, type Form, type Opt } from "./definitions";
import { CACHE_DIR_VAR } from "./generated/protocol";
import { VERSION } from "./version";

/** The ways of calling huptime, as the help and the man page list them. */
const SYNOPSIS = [
  "huptime [options] [--] <command> [args...]",
  "huptime --restart|--stop|--status [options] <command> [args...]",
  "huptime --status [--json|--table]",
];

const NAME = "zero-downtime restarts for unmodified network programs";

/** Options under a heading: those of the forms of one category, then those every form takes. */
interface Section {
  title: string;
  options: Opt[];
}

function sections(all: Form[]): Section[] {
  const inEvery = (o: Opt) => all.every((f) => f.options.some((p) => p.names[0] === o.names[0]));
  const out: Section[] = [];
  const seen = new Set<string>();
  for (const f of all) {
    const title = f.definition.category?.trim() ?? "Options";
    let section = out.find((s) => s.title === title);
    if (!section) out.push((section = { title, options: [] }));
    for (const o of f.options) {
      if (inEvery(o) || seen.has(o.names[0])) continue;
      seen.add(o.names[0]);
      section.options.push(o);
    }
  }
  const common = all[0]?.options.filter(inEvery) ?? [];
  if (common.length > 0) out.push({ title: "Every form", options: common });
  return out;
}

/** The main form: the one no flag selects (running a program). */
function mainForm(all: Form[]): Form {
  const main = all.find((f) => f.flags.length === 0);
  if (!main) throw new Error("the main command's definition is missing");
  return main;
}

/** The paragraphs of a definition's details, each on one line. */
function paragraphs(def: Definition): string[] {
  return (def.details ?? "")
    .trim()
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s*\n\s*/g, " "));
}

/** Cuts `text` into lines of at most `width` characters (a longer word stays whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  return [...lines, line];
}

/** Every form's examples: what it does, and the command line. */
function examples(defs: Definition[]): [string, string][] {
  return defs.flatMap((d) => d.examples ?? []).map(([what, cmd]) => [what.trim(), cmd]);
}

function capitalized(s: string): string {
  return s.trim().replace(/^./, (c) => c.toUpperCase());
}

/** `huptime --help`: synopsis, description, options by form, examples; 80 columns. */
export function helpText(defs: Definition[], fmt: ColorFormat): string {
  const all = forms(defs);
  const main = mainForm(all).definition;
  const labelWidth = Math.max(...all.flatMap((f) => f.options.map((o) => optionLabel(o).length)));
  const out = [`huptime ${VERSION}: ${NAME}`, "", fmt.header("Usage:"), ...SYNOPSIS.map((l) => `  ${l}`), ""];
  out.push(...wrap(`${capitalized(main.description ?? "")}.`, 80));
  for (const p of paragraphs(main)) out.push("", ...wrap(p, 80));
  for (const s of sections(all)) {
    out.push("", fmt.header(`${s.title}:`));
    for (const o of s.options) {
      const [first, ...rest] = wrap(o.description, 80 - labelWidth - 4);
      out.push(`  ${fmt.bold(optionLabel(o).padEnd(labelWidth))}  ${first}`, ...rest.map((l) => `${" ".repeat(labelWidth + 4)}${l}`));
    }
  }
  out.push("", fmt.header("Examples:"));
  for (const [what, cmd] of examples(defs)) out.push(`  ${what}`, `    $ ${cmd}`);
  return `${out.join("\n")}\n`;
}

/** Escapes text for roff. */
function roff(s: string): string {
  return s
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .split("\n")
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join("\n");
}

/** A synopsis line in roff: literal words bold, placeholders italic. */
function synopsisRoff(line: string): string {
  const body = roff(line.replace(/^huptime /, ""))
    .replace(/((?:\\-){1,2}[a-z]*(?:\\-[a-z]+)*)/g, "\\fB$1\\fR")
    .replace(/<([a-z]+)>/g, "\\fI$1\\fR")
    .replace(/\[(options|args)/g, "[\\fI$1\\fR");
  return `.B huptime\n${body}`;
}

/** The man page (roff). */
export function manPage(defs: Definition[]): string {
  const all = forms(defs);
  const main = mainForm(all).definition;
  const opts = sections(all)
    .map((s) => `.SS ${roff(s.title)}\n${s.options.map((o) => `.TP\n.B ${roff(o.names.join(", "))}${o.value ? ` \\fI${o.value}\\fR` : ""}\n${roff(o.description)}`).join("\n")}`)
    .join("\n");
  const shown = examples(defs)
    .map(([what, cmd]) => `.TP\n${roff(what)}\n.B ${roff(cmd)}`)
    .join("\n");
  const details = paragraphs(main)
    .map((p) => roff(p.replace(/`/g, "")))
    .join("\n.PP\n");
  return `.TH HUPTIME 1 "" "huptime ${VERSION}" "User Commands"
.SH NAME
huptime \\- ${roff(NAME)}
.SH SYNOPSIS
${SYNOPSIS.map(synopsisRoff).join("\n.br\n")}
.SH DESCRIPTION
${roff(capitalized(main.description ?? ""))}.
.PP
${details}
.SH OPTIONS
${opts}
.SH SIGNALS
.TP
.B SIGHUP
Restart with zero downtime: a new generation takes over the listening sockets; the old one finishes its connections. One that comes while the previous generation still drains is passed on to it, which closes its idle connections at once; the restart follows as soon as it has ended.
.TP
.BR SIGTERM ", " SIGINT
Reach the program as usual (huptime passes them on to every instance with \\fB\\-\\-multi\\fR and \\fB\\-\\-listen\\-fds\\fR).
.SH ENVIRONMENT
.TP
.B ${CACHE_DIR_VAR}
Private directory for the preload library and the state files (default \\fI$XDG_RUNTIME_DIR/huptime\\fR or \\fI~/.cache/huptime\\fR). It must be yours, not a symbolic link, and without spaces or colons; huptime makes it mode 0700, refuses a library file there that is a symbolic link or another user's, and replaces one with other content. Restarts load the library from it again, so it must last as long as the program.
.TP
.B NOTIFY_SOCKET
Set by systemd: huptime reports readiness, reloads and stops (sd_notify); the program does not see it.
.TP
.BR LISTEN_FDS ", " LISTEN_PID
Set by systemd socket activation: the program's bind() of a passed address gets the passed socket.
.SH EXIT STATUS
The program's own once it runs; 2 for a usage error; 127 if the command is not found; 126 if it is
not executable; 1 if the preload library cannot be written, a control command found nothing, or a
restart was rolled back.
.SH EXAMPLES
${shown}
.SH LIMITATIONS
Statically linked programs (Go, by default), setuid or setgid programs that would change your
ids, and programs with file capabilities (unless you are root) ignore LD_PRELOAD: huptime refuses
them with the reason; use \\fB\\-\\-listen\\-fds\\fR for those that support socket activation.
A request in flight in a generation that is killed fails; when no generation holds the sockets any
more, the port is closed until the program is started again. The command line and environment
are those of the first start: keep configuration in files. See README "Guarantees and limits".
`;
}

/** A bash completion script: huptime's options, then a command from PATH, then files. */
export function bashCompletion(defs: Definition[]): string {
  const opts = sections(forms(defs)).flatMap((s) => s.options);
  const all = opts.flatMap((o) => o.names).join(" ");
  const withValue = opts.filter((o) => o.value).flatMap((o) => o.names).join("|");
  return `# bash completion for huptime (generated by \`huptime --completion bash\`)
_huptime() {
  local cur=\${COMP_WORDS[COMP_CWORD]} i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case \${COMP_WORDS[i]} in
      ${withValue}) ((i++)) ;;
      --) ((i++)); break ;;
      -*) ;;
      *) break ;;
    esac
  done
  if ((i < COMP_CWORD)); then
    # The program's own arguments.
    COMPREPLY=($(compgen -f -- "$cur"))
  elif [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "${all}" -- "$cur"))
  else
    COMPREPLY=($(compgen -c -- "$cur"))
  fi
}
complete -F _huptime huptime
`;
}
