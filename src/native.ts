/** The only place that loads the native library (the same file the served program preloads). */
import type * as Native from "./generated/native";
import { shimPath } from "./shim";
import { VERSION } from "./version";
import { HuptimeError } from "./errors";

let loaded: typeof Native | undefined;

/** The native module, loaded on first use from the extracted library. */
export function native(): typeof Native {
  if (loaded) return loaded;
  const mod = { exports: {} as typeof Native };
  process.dlopen(mod, shimPath());
  const v = mod.exports.nativeVersion();
  if (v !== VERSION) {
    throw new HuptimeError(`native library version ${v} does not match huptime ${VERSION}; rebuild with scripts/build`);
  }
  return (loaded = mod.exports);
}
