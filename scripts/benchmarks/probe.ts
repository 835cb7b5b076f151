/** A latency sampler beside wrk: one request on a new connection every `everyMs`, timestamped,
 * for the latency-over-time plot. */
import { connect } from "node:net";

/** One sample: ms since the start, latency in ms (undefined: failed). */
export interface Sample {
  t: number;
  ms?: number;
}

function once(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let raw = "";
    const s = connect({ port, host: "127.0.0.1" });
    const timer = setTimeout(() => (s.destroy(), resolve(undefined)), 5000);
    s.on("connect", () => s.write("GET / HTTP/1.0\r\nHost: bench\r\n\r\n"));
    s.on("data", (d) => (raw += d));
    s.on("end", () => {
      clearTimeout(timer);
      resolve(/^HTTP\/1\.[01] 2/.test(raw) ? performance.now() - t0 : undefined);
    });
    s.on("error", () => (clearTimeout(timer), resolve(undefined)));
  });
}

/** Samples until `stop()`; `start` is the time origin shared with the restart marks. */
export function probe(port: number, start: number, everyMs = 25) {
  const samples: Sample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = performance.now() - start;
      samples.push({ t, ms: await once(port) });
      await Bun.sleep(everyMs);
    }
  })();
  return {
    samples,
    async stop(): Promise<Sample[]> {
      running = false;
      await loop;
      return samples;
    },
  };
}
