/** A private nginx configuration (daemon, master + 2 workers, own pidfile) answering `body`. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Writes DIR/nginx.conf listening on 127.0.0.1:PORT and returning `body` to every request
 * (`connections` per worker, `backlog` for the listening socket). */
export function writeNginxConf(dir: string, port: number, body: string, opts: { connections?: number; backlog?: number } = {}): string {
  mkdirSync(join(dir, "tmp"), { recursive: true });
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `daemon on;
master_process on;
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
  server {
    listen 127.0.0.1:${port}${opts.backlog ? ` backlog=${opts.backlog}` : ""};
    location / { return 200 "${body} nginx\\n"; }
  }
}
`,
  );
  return conf;
}
