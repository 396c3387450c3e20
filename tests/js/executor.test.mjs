// The executor's JSON writer (js/executor.js `tk_json`), in Node: every value
// from JS reaches the keeper through it. Its size bound stops the writing
// early only for a value whose text must be longer than the bound — never
// for one that fits — and stops it early enough that an array of 2^29 holes
// or a 64 MiB string costs next to nothing. Random values from a seeded
// generator, against the writer without a bound. Run by `make test` (unit).
import { test } from "node:test";
import assert from "node:assert/strict";
import { tk_json } from "../../js/executor.js";

const LARGE = '{"\\u0000":"large"}';
const whole = (v) => tk_json(v, Number.MAX_SAFE_INTEGER);

/** A small seeded PRNG (mulberry32). */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random JS value: JSON's kinds, what JSON has no form for, escapes, holes, nesting. */
function value(r, depth = 0) {
  const pick = Math.floor(r() * (depth > 3 ? 6 : 10));
  const text = () => {
    const chars = ["a", "é", '"', "\\", "\n", "\u0000", "😀", "\ud800", "x".repeat(20)];
    return Array.from({ length: Math.floor(r() * 6) }, () => chars[Math.floor(r() * chars.length)]).join("");
  };
  switch (pick) {
    case 0: return null;
    case 1: return r() < 0.5;
    case 2: return [0, -1.5, 1e21, NaN, Infinity, -Infinity, 2 ** 53][Math.floor(r() * 7)];
    case 3: return text();
    case 4: return [undefined, () => 1, Symbol("s"), 10n][Math.floor(r() * 4)];
    case 5: {
      const t = text();
      return { toJSON: () => t };
    }
    case 6:
    case 7: {
      const a = Array.from({ length: Math.floor(r() * 6) }, () => value(r, depth + 1));
      if (r() < 0.2) a.length += 3; // holes
      return a;
    }
    default: {
      const o = {};
      for (let i = Math.floor(r() * 6); i > 0; i--) o[text()] = value(r, depth + 1);
      return o;
    }
  }
}

test("the bound refuses only what cannot fit, and cuts the rest at max + 1", () => {
  const r = random(11);
  let large = 0, cut = 0, fits = 0;
  for (let i = 0; i < 20_000; i++) {
    const v = value(r);
    const full = whole(v);
    const max = Math.floor(r() * 120);
    const got = tk_json(v, max);
    if (full === undefined) {
      assert.equal(got, undefined);
    } else if (full.length <= max) {
      fits++;
      assert.equal(got, full, `a value that fits is written whole (max ${max})`);
    } else if (got === LARGE) {
      large++;
    } else {
      cut++;
      assert.equal(got, full.slice(0, max + 1), `max ${max}`);
    }
  }
  // Each outcome was seen often enough to mean something.
  for (const [n, what] of [[fits, "fits"], [large, "large"], [cut, "cut"]]) assert.ok(n > 1000, `${what}: ${n}`);
});

test("the writing stops early for values sized to exhaust memory", () => {
  const max = 64 * 1024;
  const huge = [new Array(2 ** 29), "x".repeat(1 << 26), { a: "x".repeat(1 << 26) }, new Uint8Array(1 << 24), [[new Array(1e6)]]];
  for (const v of huge) assert.equal(tk_json(v, max), LARGE);
  // What JSON cannot write at all is marked, not thrown.
  const cycle = {};
  cycle.self = cycle;
  assert.equal(tk_json(cycle, max), '{"\\u0000":"?"}');
  assert.equal(tk_json({ get x() { throw new Error("no"); } }, max), '{"\\u0000":"?"}');
  assert.equal(tk_json(new URL("https://a.example/x"), max), '"https://a.example/x"');
});
