/** `bun wrk-cli.ts URL CONNECTIONS SECONDS close|keep-alive`: one wrk run, its result as JSON. */
import { wrk } from "./wrk";

const [url, connections, seconds, mode] = process.argv.slice(2);
process.stdout.write(JSON.stringify(wrk(url, { connections: Number(connections), seconds: Number(seconds), close: mode === "close" })));
