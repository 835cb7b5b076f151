/** Files imported with `with { type: "file" }` resolve to a path (embedded by bun build --compile). */
declare module "*.node" {
  const path: string;
  export default path;
}
