// Benchmark server: node's http module, keep-alive allowed, answers "ok <pid>".
import http from "node:http";

const port = Number(process.argv[2]);
http
  .createServer((req, res) => {
    res.setHeader("Content-Type", "text/plain");
    res.end(`ok ${process.pid}\n`);
  })
  .listen({ port, host: "127.0.0.1", backlog: 1024 });
