/** A private nginx configuration (master + 2 workers, own pidfile) answering `body`. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** What to change from the default configuration. */
export interface NginxOptions {
  /** worker_connections per worker (default 256). */
  connections?: number;
  /** Backlog of the listening socket (default nginx's). */
  backlog?: number;
  /** Whether nginx daemonizes (default true; false for `-g 'daemon off;'`-style foreground runs). */
  daemon?: boolean;
  /** The `location /` block's directives (default: return 200 "BODY nginx\n"). */
  location?: string;
  /** More directives at the http level (e.g. an upstream block). */
  http?: string;
}

/** Writes DIR/nginx.conf listening on 127.0.0.1:PORT and returning `body` to every request. */
export function writeNginxConf(dir: string, port: number, body: string, opts: NginxOptions = {}): string {
  mkdirSync(join(dir, "tmp"), { recursive: true });
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `${opts.daemon === false ? "" : "daemon on;\n"}master_process on;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections ${opts.connections ?? 256}; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp;
  scgi_temp_path ${dir}/tmp;
${opts.http ?? ""}
  server {
    listen 127.0.0.1:${port}${opts.backlog ? ` backlog=${opts.backlog}` : ""};
    location / { ${opts.location ?? `return 200 "${body} nginx\\n";`} }
  }
}
`,
  );
  return conf;
}
