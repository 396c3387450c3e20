// The demo's timeline: an SVG drawn from scratch several times a second, one
// lane per kind of thing, the last ~50 s on the left, "now" as a vertical line,
// and the next few seconds (the planned refresh, the expiry) on the right.
// Marks are plain SVG shapes with a class (styled in style.css) and a <title>
// (the browser's tooltip); nothing here knows about tokenkeeper.

const SVG = "http://www.w3.org/2000/svg";
const LANE_H = 30;
const LABEL_W = 118;
const TOP = 22;

/** [id, label] of each lane, top to bottom. */
export const LANES = [
  ["token", "access token"],
  ["api", "API calls"],
  ["auth", "token server"],
  ["events", "keeper events"],
  ["tabs", "other tabs"],
];

function el(name, attrs, parent, title) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (title) {
    const t = document.createElementNS(SVG, "title");
    t.textContent = title;
    node.append(t);
  }
  parent?.append(node);
  return node;
}

export class Timeline {
  /** @param {SVGSVGElement} svg */
  constructor(svg, { pastMs = 50_000, futureMs = 12_000, maxMarks = 800 } = {}) {
    this.svg = svg;
    this.pastMs = pastMs;
    this.futureMs = futureMs;
    this.maxMarks = maxMarks;
    /** {lane, kind, start, end, title} */
    this.marks = [];
    /** Token lifetimes: {generation, start, end, expiresAt, refreshAt} */
    this.lives = [];
    this.lane = Object.fromEntries(LANES.map(([id], i) => [id, i]));
  }

  /** Something that happened at one moment (a refresh, a logout, a tab message). */
  point(lane, kind, at, title) {
    this.add({ lane, kind, start: at, end: at, title, point: true });
  }

  /** Something that took time (a request, from sending it to its answer). */
  span(lane, kind, start, end, title) {
    this.add({ lane, kind, start, end, title, point: false });
  }

  add(mark) {
    this.marks.push(mark);
    if (this.marks.length > this.maxMarks) this.marks.splice(0, this.marks.length - this.maxMarks);
  }

  /** A new access token, valid until `expiresAt`, to be refreshed at `refreshAt`. */
  token(generation, at, expiresAt, refreshAt) {
    this.endToken(at);
    this.lives.push({ generation, start: at, end: undefined, expiresAt, refreshAt });
  }

  /** The current token was replaced or dropped at `at`. */
  endToken(at) {
    const last = this.lives[this.lives.length - 1];
    if (last && last.end === undefined) last.end = at;
  }

  render(now = Date.now()) {
    const measured = this.svg.getBoundingClientRect().width;
    if (!measured) return; // not laid out (hidden): keep the last drawing
    const width = Math.max(measured, 480);
    const height = TOP + LANES.length * LANE_H + 4;
    const from = now - this.pastMs;
    const to = now + this.futureMs;
    const plot = width - LABEL_W - 8;
    const x = (t) => LABEL_W + ((Math.min(Math.max(t, from), to) - from) / (to - from)) * plot;
    const laneY = (lane) => TOP + this.lane[lane] * LANE_H;

    this.marks = this.marks.filter((m) => m.end >= from);
    this.lives = this.lives.filter((l) => (l.end ?? l.expiresAt ?? to) >= from);

    const root = el("g", {});
    // Lanes and their labels.
    LANES.forEach(([id, label], i) => {
      el("rect", { class: `lane lane-${i % 2}`, x: 0, y: laneY(id), width, height: LANE_H }, root);
      el("text", { class: "lane-label", x: 8, y: laneY(id) + LANE_H / 2 + 4 }, root).textContent = label;
    });
    // Seconds grid, relative to now.
    for (let s = -Math.floor(this.pastMs / 10_000) * 10; s * 1000 <= this.futureMs; s += 10) {
      const gx = x(now + s * 1000);
      el("line", { class: "grid", x1: gx, x2: gx, y1: TOP - 4, y2: height - 4 }, root);
      el("text", { class: "grid-label", x: gx, y: 12, "text-anchor": "middle" }, root).textContent =
        s === 0 ? "now" : `${s > 0 ? "+" : ""}${s} s`;
    }
    // Token lifetimes, with the planned refresh of the current one.
    const ty = laneY("token");
    for (const life of this.lives) {
      const end = life.end ?? life.expiresAt ?? to;
      const current = life.end === undefined;
      const x0 = x(life.start);
      const x1 = Math.max(x(end), x0 + 2);
      el("rect", {
        class: `mark life gen-${life.generation % 2}${current ? " current" : ""}`,
        x: x0, y: ty + 7, width: x1 - x0, height: LANE_H - 14, rx: 3,
      }, root, `token generation ${life.generation}${life.expiresAt ? `, valid until ${new Date(life.expiresAt).toLocaleTimeString()}` : ""}`);
      if (x1 - x0 > 28) {
        el("text", { class: "life-label", x: x0 + 5, y: ty + LANE_H / 2 + 4 }, root).textContent = `g${life.generation}`;
      }
      if (current && life.refreshAt) {
        const rx = x(life.refreshAt);
        el("line", { class: "mark planned", x1: rx, x2: rx, y1: ty + 3, y2: ty + LANE_H - 3 }, root,
          `silent refresh planned at ${new Date(life.refreshAt).toLocaleTimeString()}`);
      }
    }
    // Requests (spans) first, events (points) on top.
    for (const m of this.marks.filter((m) => !m.point)) {
      const x0 = x(m.start);
      el("rect", {
        class: `mark req ${m.lane} ${m.kind}`,
        x: x0, y: laneY(m.lane) + 8, width: Math.max(x(m.end) - x0, 3), height: LANE_H - 16, rx: 2,
      }, root, m.title);
    }
    for (const m of this.marks.filter((m) => m.point)) {
      const cx = x(m.start);
      const cy = laneY(m.lane) + LANE_H / 2;
      el("path", { class: `mark ev ${m.kind}`, d: shape(m.kind, cx, cy) }, root, m.title);
    }
    const nx = x(now);
    el("line", { class: "now", x1: nx, x2: nx, y1: TOP - 4, y2: height - 4 }, root);

    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.svg.setAttribute("height", String(height));
    this.svg.replaceChildren(root);
  }
}

/** A distinct shape per kind of event, centred on (x, y). */
function shape(kind, x, y) {
  const r = 7;
  switch (kind) {
    case "refresh": // circle
      return `M ${x - r} ${y} a ${r} ${r} 0 1 0 ${2 * r} 0 a ${r} ${r} 0 1 0 ${-2 * r} 0`;
    case "refresh-error": // cross
      return `M ${x - r} ${y - r} L ${x + r} ${y + r} M ${x + r} ${y - r} L ${x - r} ${y + r}`;
    case "expired": // triangle
      return `M ${x} ${y - r} L ${x + r} ${y + r} L ${x - r} ${y + r} Z`;
    case "sync": // diamond
      return `M ${x} ${y - r} L ${x + r} ${y} L ${x} ${y + r} L ${x - r} ${y} Z`;
    default: // login, logout: square
      return `M ${x - r + 1} ${y - r + 1} h ${2 * r - 2} v ${2 * r - 2} h ${-(2 * r - 2)} Z`;
  }
}
