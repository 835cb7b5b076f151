/** Whom the --listen-fds supervisor believes on its notify socket. */
import { describe, expect, test } from "bun:test";
import { noticeGeneration } from "../../src/notify-access";

const ME = 1000;
const gens = [
  { n: 1, pid: 100, ended: { code: 0 } },
  { n: 2, pid: 200 },
];
/** Process groups: 201 and 202 are in generation 2's, 300 in a group of its own. */
const groups: Record<number, number> = { 100: 100, 200: 200, 201: 200, 202: 200, 300: 300 };
const pgrpOf = (pid: number) => groups[pid];

describe("noticeGeneration", () => {
  test("the main process of a live generation, whatever its uid", () => {
    expect(noticeGeneration({ pid: 200, uid: ME }, gens, ME, pgrpOf)).toEqual({ generation: gens[1] });
    expect(noticeGeneration({ pid: 200, uid: 65534 }, gens, ME, pgrpOf)).toEqual({ generation: gens[1] });
  });

  test("another process of its group, as huptime's uid or root", () => {
    expect(noticeGeneration({ pid: 201, uid: ME }, gens, ME, pgrpOf)).toEqual({ generation: gens[1] });
    expect(noticeGeneration({ pid: 202, uid: 0 }, gens, ME, pgrpOf)).toEqual({ generation: gens[1] });
  });

  test("dropped: another user in the group, anyone outside, an ended generation, no credentials", () => {
    expect(noticeGeneration({ pid: 201, uid: 1001 }, gens, ME, pgrpOf)).toEqual({ dropped: "uid 1001 is neither huptime's (1000) nor root, and pid 201 is no generation's main process" });
    expect(noticeGeneration({ pid: 300, uid: ME }, gens, ME, pgrpOf)).toEqual({ dropped: "pid 300 is in no generation's process group" });
    expect(noticeGeneration({ pid: 100, uid: ME }, gens, ME, pgrpOf)).toEqual({ dropped: "pid 100 is in no generation's process group" });
    expect(noticeGeneration({ pid: 999, uid: ME }, gens, ME, pgrpOf)).toEqual({ dropped: "pid 999 is in no generation's process group" });
    expect(noticeGeneration({ pid: 201, uid: null }, gens, ME, pgrpOf)).toEqual({ dropped: "it came without credentials" });
  });
});
