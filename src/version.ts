/** huptime's version, from package.json at build time. */
import pkg from "../package.json" with { type: "json" };

/** The version string printed by `--version` and checked against the native library's. */
export const VERSION: string = pkg.version;
