import { describe, expect, test } from "bun:test";
import { parseListen, parseListens } from "../../src/listen";

describe("--listen specs", () => {
  test.each([
    ["127.0.0.1:8080", { name: "listen0", family: "ipv4", host: "127.0.0.1", port: 8080 }],
    ["8080", { family: "ipv4", host: "0.0.0.0", port: 8080 }],
    [":8080", { family: "ipv4", host: "0.0.0.0", port: 8080 }],
    ["localhost:81", { family: "ipv4", host: "127.0.0.1", port: 81 }],
    ["[::1]:8443", { family: "ipv6", host: "::1", port: 8443 }],
    ["web=127.0.0.1:80", { name: "web", family: "ipv4", port: 80, label: "127.0.0.1:80" }],
    ["/run/app.sock", { family: "unix", host: "/run/app.sock", port: 0 }],
    ["api=/run/a=b.sock", { name: "api", family: "unix", host: "/run/a=b.sock" }],
  ])("%s", (spec, want) => {
    expect(parseListen(spec, 0)).toMatchObject(want);
  });

  test.each([
    ["127.0.0.1:0", "is not a port"],
    ["127.0.0.1:70000", "is not a port"],
    ["example.com:80", "is not an IPv4 address"],
    ["300.1.1.1:80", "is not an IPv4 address"],
    ["we b=:80", "the name must be"],
    ["", "is not a port"],
    [`/${"x".repeat(120)}`, "longer than 107 bytes"],
  ])("%s is refused", (spec, why) => {
    expect(() => parseListen(spec, 0)).toThrow(why);
  });

  test("names are unique; defaults follow the position", () => {
    expect(parseListens(["1", "2"]).map((l) => l.name)).toEqual(["listen0", "listen1"]);
    expect(() => parseListens(["a=1", "a=2"])).toThrow("the name a is used twice");
  });
});
