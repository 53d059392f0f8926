// pii-blur review page: the list of images, one image with its detections, edits saved as they are made.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const PAGE = 100;
const POINT_SIZE = { face: [4, 5], plate: [6, 3] }; // degrees (wide, tall) of a box added by a click in 360

const S = {
  list: [], total: null, loading: false, index: -1, info: null,
  rejected: new Set(), added: [], dismissed: new Set(), sel: null,
  mode: "flat", draw: false, cls: "face", source: "output",
  view: { s: 1, x: 0, y: 0 }, viewer: null, svg: null, drag: null,
};

function status(text) { $("status").textContent = text; }

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function encodeName(name) { return name.split("/").map(encodeURIComponent).join("/"); }
function isPano() { return S.info && S.info.projection === "equirectangular"; }
function fileUrl() { return `file/${S.source}/${encodeName(S.info.name)}?v=${S.info.version}`; }

// -- the list, a page at a time --------------------------------------------------------------------
async function loadMore() {
  if (S.loading || (S.total !== null && S.list.length >= S.total)) return;
  S.loading = true;
  try {
    const page = await api(`api/images?offset=${S.list.length}&limit=${PAGE}`);
    S.total = page.total;
    for (const item of page.images) addListItem(item, S.list.push(item) - 1);
    $("count").textContent = `${S.total} images`;
    $("more").textContent = S.list.length < S.total ? "loading…" : (S.total ? "" : "no images");
    if (S.index < 0 && S.list.length) openImage(0);
  } catch (error) {
    status(`cannot list the images: ${error.message}`);
  } finally {
    S.loading = false;
  }
  // a short list may leave the sentinel in sight: keep going
  if (S.total !== null && S.list.length < S.total && isVisible($("more"))) loadMore();
}

function isVisible(element) {
  const r = element.getBoundingClientRect(), box = $("images").getBoundingClientRect();
  return r.top < box.bottom && r.bottom > box.top;
}

function describe(item) {
  const parts = [];
  if (item.faces) parts.push(`${item.faces} face${item.faces > 1 ? "s" : ""}`);
  if (item.plates) parts.push(`${item.plates} plate${item.plates > 1 ? "s" : ""}`);
  if (item.projection === "equirectangular") parts.push("360");
  return parts.join(", ") || "nothing found";
}

function addListItem(item, index) {
  const li = document.createElement("li");
  li.dataset.index = index;
  li.innerHTML = `<span class="name"></span><span class="meta"></span>`;
  li.querySelector(".name").textContent = item.name;
  li.title = item.name;
  li.addEventListener("click", () => openImage(index));
  $("images").insertBefore(li, $("more"));
  markListItem(index);
}

function markListItem(index) {
  const item = S.list[index], li = $("images").children[index];
  if (!li) return;
  const meta = li.querySelector(".meta");
  meta.textContent = describe(item);
  if (item.flagged) meta.insertAdjacentHTML("beforeend", ` <span class="flag">⚑ ${item.flagged} left</span>`);
  if (item.edited) meta.insertAdjacentHTML("beforeend", ` <span class="edited">✎ edited</span>`);
  li.classList.toggle("current", index === S.index);
}

// -- one image --------------------------------------------------------------------------------------
async function openImage(index) {
  if (index < 0) return;
  if (index >= S.list.length) {
    if (S.total !== null && index >= S.total) return;
    await loadMore();
    if (index >= S.list.length) return;
  }
  const previous = S.index;
  S.index = index;
  S.openStarted = performance.now();
  S.openedMs = null;
  markListItem(previous);
  markListItem(index);
  $("images").children[index].scrollIntoView({ block: "nearest" });
  try {
    S.info = await api(`api/image?name=${encodeURIComponent(S.list[index].name)}`);
  } catch (error) {
    status(`cannot open ${S.list[index].name}: ${error.message}`);
    return;
  }
  if (S.index !== index) return; // another image was chosen meanwhile
  S.rejected = new Set(S.info.rejected);
  S.added = S.info.added;
  S.dismissed = new Set();
  S.source = "output";
  S.mode = isPano() ? "360" : "flat";
  const items = shapes();
  S.sel = items.length ? { kind: items[0].kind, i: items[0].i } : null;
  $("title").textContent = `${S.info.name} (${S.info.width}×${S.info.height}${isPano() ? ", 360" : ""})`;
  render(true);
}

function shapes() {
  if (!S.info) return [];
  const list = [];
  S.info.detections.forEach((d, i) => list.push({
    kind: "det", i, cls: d.class, box: d.box, score: d.score, sphere: d.sphere,
    state: S.rejected.has(i) ? "rejected" : "accepted",
  }));
  S.info.findings.forEach((f, i) => {
    if (f.where === "picture" && !S.dismissed.has(i)) {
      list.push({ kind: "finding", i, cls: f.cls, box: f.box, score: f.score, sphere: f.sphere, state: "finding" });
    }
  });
  S.added.forEach((a, i) => list.push({ kind: "added", i, cls: a.class, box: a.box, state: "added", applied: a.applied }));
  return list;
}

function same(a, b) { return a && b && a.kind === b.kind && a.i === b.i; }

function render(fit) {
  $("mode").textContent = S.mode === "360" ? "360" : "flat";
  $("mode").disabled = !isPano();
  $("draw").classList.toggle("on", S.draw);
  $("cls").textContent = S.cls;
  $("source").textContent = S.source;
  $("source").disabled = !S.info || !S.info.has_input;
  $("stage").classList.toggle("drawing", S.draw);
  if (S.mode === "360" && isPano()) render360(); else renderFlat(fit);
  renderPanel();
}

function renderPanel() {
  const ul = $("dets");
  ul.innerHTML = "";
  for (const shape of shapes()) {
    const li = document.createElement("li");
    li.className = `${shape.state}${same(shape, S.sel) ? " selected" : ""}`;
    const what = shape.kind === "added" ? `drawn ${shape.cls}${shape.applied ? " (written)" : ""}`
      : shape.kind === "finding" ? `audit: ${shape.cls} ${shape.score.toFixed(2)}`
        : `${shape.cls} ${Number(shape.score).toFixed(2)}${shape.state === "rejected" ? " rejected" : ""}`;
    li.textContent = what;
    li.dataset.kind = shape.kind;
    li.dataset.i = shape.i;
    li.addEventListener("click", () => select({ kind: shape.kind, i: shape.i }));
    ul.append(li);
  }
}

// -- flat pictures (and panoramas unrolled, shown twice side by side so a box can cross the seam) -------
function renderFlat(fit) {
  destroyViewer();
  const stage = $("stage"), W = S.info.width, H = S.info.height, copies = isPano() ? [0, W] : [0];
  stage.innerHTML = "";
  const canvas = document.createElement("div");
  canvas.className = "canvas";
  canvas.style.width = `${W * copies.length}px`;
  canvas.style.height = `${H}px`;
  for (const offset of copies) {
    const img = document.createElement("img");
    img.src = fileUrl();
    img.width = W;
    img.height = H;
    img.style.left = `${offset}px`;
    img.alt = "";
    img.addEventListener("load", () => { if (S.openedMs === null) S.openedMs = performance.now() - S.openStarted; });
    canvas.append(img);
  }
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", W * copies.length);
  svg.setAttribute("height", H);
  svg.setAttribute("viewBox", `0 0 ${W * copies.length} ${H}`);
  canvas.append(svg);
  stage.append(canvas);
  S.svg = svg;
  drawShapes();
  if (fit) fitView(); else applyView();
}

function drawShapes() {
  if (!S.svg) return;
  const W = S.info.width, H = S.info.height, svg = S.svg, copies = isPano() ? [-W, 0, W] : [0];
  svg.innerHTML = "";
  if (isPano()) {
    const seam = document.createElementNS(SVG, "line");
    Object.entries({ x1: W, y1: 0, x2: W, y2: H, class: "seam" }).forEach(([k, v]) => seam.setAttribute(k, v));
    svg.append(seam);
  }
  for (const shape of shapes()) {
    const [x1, y1, x2, y2] = shape.box;
    for (const offset of copies) {
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", x1 + offset);
      rect.setAttribute("y", y1);
      rect.setAttribute("width", Math.max(1, x2 - x1));
      rect.setAttribute("height", Math.max(1, y2 - y1));
      rect.setAttribute("class", `det ${shape.state}${same(shape, S.sel) ? " selected" : ""}`);
      rect.dataset.kind = shape.kind;
      rect.dataset.i = shape.i;
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${shape.cls} ${shape.state}`;
      rect.append(title);
      rect.addEventListener("mousedown", (event) => {
        if (S.draw) return;
        event.stopPropagation();
        select({ kind: shape.kind, i: shape.i });
      });
      svg.append(rect);
    }
  }
}

function stageSize() { const r = $("stage").getBoundingClientRect(); return [r.width, r.height]; }

function fitView() {
  const [sw, sh] = stageSize(), W = S.info.width, H = S.info.height;
  const s = Math.min(sw / W, sh / H);
  // a panorama is shown from a quarter turn left of the seam to a quarter turn right of it
  const left = isPano() ? W / 2 : 0;
  S.view = { s, x: (sw - W * s) / 2 - left * s, y: (sh - H * s) / 2 };
  applyView();
}

function applyView() {
  const canvas = $("stage").querySelector(".canvas");
  if (canvas) canvas.style.transform = `translate(${S.view.x}px, ${S.view.y}px) scale(${S.view.s})`;
}

function toImage(clientX, clientY) {
  const r = $("stage").getBoundingClientRect();
  return [(clientX - r.left - S.view.x) / S.view.s, (clientY - r.top - S.view.y) / S.view.s];
}

function toScreen(x, y) {
  const r = $("stage").getBoundingClientRect();
  return [r.left + S.view.x + x * S.view.s, r.top + S.view.y + y * S.view.s];
}

function onDown(event) {
  if (!S.info || S.mode === "360" && isPano() || event.button !== 0) return;
  event.preventDefault();
  if (S.draw) {
    const [x, y] = toImage(event.clientX, event.clientY);
    const draft = document.createElementNS(SVG, "rect");
    draft.setAttribute("class", "draft");
    S.svg.append(draft);
    S.drag = { kind: "draw", x0: x, y0: y, draft };
  } else {
    S.drag = { kind: "pan", cx: event.clientX, cy: event.clientY, x: S.view.x, y: S.view.y };
  }
}

function draftBox(event, drag) {
  const [x, y] = toImage(event.clientX, event.clientY), H = S.info.height;
  const W = S.info.width * (isPano() ? 2 : 1);
  const cx = (v) => Math.min(Math.max(v, 0), W), cy = (v) => Math.min(Math.max(v, 0), H);
  return [cx(Math.min(drag.x0, x)), cy(Math.min(drag.y0, y)), cx(Math.max(drag.x0, x)), cy(Math.max(drag.y0, y))];
}

function onMove(event) {
  if (!S.drag) return;
  if (S.drag.kind === "pan") {
    S.view.x = S.drag.x + event.clientX - S.drag.cx;
    S.view.y = S.drag.y + event.clientY - S.drag.cy;
    applyView();
  } else {
    const [x1, y1, x2, y2] = draftBox(event, S.drag);
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1 }).forEach(([k, v]) => S.drag.draft.setAttribute(k, v));
  }
}

function onUp(event) {
  const drag = S.drag;
  S.drag = null;
  if (!drag || drag.kind !== "draw") return;
  let [x1, y1, x2, y2] = draftBox(event, drag);
  drag.draft.remove();
  if (x2 - x1 < 3 || y2 - y1 < 3) return;
  const W = S.info.width;
  if (isPano() && x1 >= W) { x1 -= W; x2 -= W; } // drawn on the right copy: the same place
  addBox([x1, y1, x2, y2]);
}

function onWheel(event) {
  if (!S.info || S.mode === "360" && isPano()) return;
  event.preventDefault();
  const r = $("stage").getBoundingClientRect(), px = event.clientX - r.left, py = event.clientY - r.top;
  const factor = Math.exp(-event.deltaY / 500), s = Math.min(Math.max(S.view.s * factor, 0.02), 40);
  S.view.x = px - (px - S.view.x) * (s / S.view.s);
  S.view.y = py - (py - S.view.y) * (s / S.view.s);
  S.view.s = s;
  applyView();
}

// -- panoramas in the 360 viewer (Pannellum) ------------------------------------------------------------
function destroyViewer() {
  if (S.viewer) { try { S.viewer.destroy(); } catch (error) { /* already gone */ } }
  S.viewer = null;
  S.svg = null;
}

function placeOf(shape) {
  if (shape.sphere) return [shape.sphere.yaw, shape.sphere.pitch];
  const [x1, y1, x2, y2] = shape.box, W = S.info.width, H = S.info.height;
  const yaw = ((((x1 + x2) / 2 / W) * 360) % 360 + 360) % 360 - 180;
  return [yaw, 90 - ((y1 + y2) / 2 / H) * 180];
}

function spots() {
  return shapes().map((shape, n) => {
    const [yaw, pitch] = placeOf(shape);
    return {
      id: `s${n}`, pitch, yaw, type: "info", text: `${shape.cls} ${shape.state}`,
      cssClass: `det-spot ${shape.state}${same(shape, S.sel) ? " selected" : ""}`,
      clickHandlerFunc: () => select({ kind: shape.kind, i: shape.i }),
    };
  });
}

function render360() {
  destroyViewer();
  const stage = $("stage");
  stage.innerHTML = "";
  const holder = document.createElement("div");
  holder.id = "pano";
  stage.append(holder);
  const selected = shapes().find((shape) => same(shape, S.sel));
  const [yaw, pitch] = selected ? placeOf(selected) : [0, 0];
  S.viewer = pannellum.viewer(holder, {
    type: "equirectangular", panorama: fileUrl(), autoLoad: true, yaw, pitch, hfov: 90,
    hotSpots: spots(), disableKeyboardCtrl: true, showFullscreenCtrl: false, compass: false,
  });
  S.viewer.on("load", () => { if (S.openedMs === null) S.openedMs = performance.now() - S.openStarted; });
  let down = null;
  holder.addEventListener("mousedown", (event) => { down = [event.clientX, event.clientY]; });
  holder.addEventListener("mouseup", (event) => {
    if (!S.draw || !down || Math.hypot(event.clientX - down[0], event.clientY - down[1]) > 4) return;
    const [p, y] = S.viewer.mouseEventToCoords(event);
    addPoint(y, p);
  });
}

function refreshSpots() {
  if (!S.viewer) return;
  for (let n = 0; n < 1000 && S.viewer.removeHotSpot(`s${n}`); n += 1) { /* all of them */ }
  for (const spot of spots()) S.viewer.addHotSpot(spot);
}

function addPoint(yaw, pitch) {
  const W = S.info.width, H = S.info.height, [wide, tall] = POINT_SIZE[S.cls];
  const cx = (yaw / 360 + 0.5) * W, cy = (0.5 - pitch / 180) * H;
  const hw = (wide / 2 / 360) * W / Math.max(Math.cos((pitch * Math.PI) / 180), 0.05), hh = (tall / 2 / 180) * H;
  let x1 = cx - hw, x2 = cx + hw;
  if (x1 < 0) { x1 += W; x2 += W; }
  addBox([x1, Math.max(0, cy - hh), x2, Math.min(H, cy + hh)]);
}

// -- edits ------------------------------------------------------------------------------------------
function addBox(box) {
  S.added.push({ class: S.cls, box: box.map((v) => Math.round(v * 10) / 10) });
  S.sel = { kind: "added", i: S.added.length - 1 };
  save();
}

function select(target) {
  S.sel = target;
  if (S.viewer) { // turn the 360 viewer to it
    const shape = shapes().find((one) => same(one, target));
    if (shape) { const [yaw, pitch] = placeOf(shape); S.viewer.lookAt(pitch, yaw, undefined, 400); }
  }
  redraw();
}

function redraw() {
  if (S.viewer) refreshSpots(); else drawShapes();
  renderPanel();
}

async function save() {
  redraw();
  const name = S.info.name;
  try {
    const saved = await api("api/edits", { name, rejected: [...S.rejected], added: S.added });
    if (S.info && S.info.name === name) S.added = saved.added;
    const item = S.list[S.index];
    item.edited = saved.rejected.length > 0 || saved.added.length > 0;
    markListItem(S.index);
    status(`saved ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    status(`NOT saved: ${error.message}`);
  }
}

function accept() {
  const s = S.sel;
  if (!s) return;
  if (s.kind === "det") { S.rejected.delete(s.i); save(); }
  if (s.kind === "finding") { // what the audit found is to be hidden: blur it
    const f = S.info.findings[s.i];
    S.dismissed.add(s.i);
    S.cls = f.cls;
    addBox(f.box);
  }
}

function reject() {
  const s = S.sel;
  if (!s) return;
  if (s.kind === "det") { S.rejected.add(s.i); save(); }
  if (s.kind === "finding") { S.dismissed.add(s.i); redraw(); }
  if (s.kind === "added") removeAdded();
}

function removeAdded() {
  const s = S.sel;
  if (!s || s.kind !== "added") return;
  if (S.added[s.i].applied) { status("already written into the output: blur the input again to undo it"); return; }
  S.added.splice(s.i, 1);
  S.sel = null;
  save();
}

function nextShape(step) {
  const list = shapes();
  if (!list.length) return;
  const at = list.findIndex((shape) => same(shape, S.sel));
  const next = list[(at + step + list.length) % list.length];
  select({ kind: next.kind, i: next.i });
}

async function applyEdits() {
  status("applying…");
  try {
    const { results } = await api("api/apply", {});
    const failed = results.filter((r) => r.status !== "written");
    status(`${results.length - failed.length} image(s) written` + (failed.length ? `, ${failed.length} failed: ${failed[0].name}: ${failed[0].reason}` : ""));
    if (S.index >= 0) {
      const keep = S.mode, sel = S.sel;
      await openImage(S.index);
      S.mode = keep; S.sel = sel;
      render(false);
    }
  } catch (error) {
    status(`apply failed: ${error.message}`);
  }
}

// -- wiring -----------------------------------------------------------------------------------------
function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || !S.info && !["ArrowRight", "j"].includes(event.key)) return;
  const actions = {
    ArrowRight: () => openImage(S.index + 1), j: () => openImage(S.index + 1),
    ArrowLeft: () => openImage(S.index - 1), k: () => openImage(S.index - 1),
    n: () => nextShape(1), N: () => nextShape(-1), Tab: () => nextShape(event.shiftKey ? -1 : 1),
    a: accept, r: reject, x: reject, Delete: removeAdded, Backspace: removeAdded,
    d: () => { S.draw = !S.draw; render(false); },
    c: () => { S.cls = S.cls === "face" ? "plate" : "face"; $("cls").textContent = S.cls; },
    v: () => { if (isPano()) { S.mode = S.mode === "360" ? "flat" : "360"; render(true); } },
    i: () => { if (S.info.has_input) { S.source = S.source === "output" ? "input" : "output"; render(false); } },
    0: () => { if (S.mode === "flat" || !isPano()) fitView(); },
    s: applyEdits,
  };
  const action = actions[event.key];
  if (action) { event.preventDefault(); action(); }
}

function init() {
  document.addEventListener("keydown", onKey);
  const stage = $("stage");
  stage.addEventListener("mousedown", onDown);
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);
  stage.addEventListener("wheel", onWheel, { passive: false });
  window.addEventListener("resize", () => { if (S.info && S.svg) fitView(); });
  $("apply").addEventListener("click", applyEdits);
  $("mode").addEventListener("click", () => onKey(new KeyboardEvent("keydown", { key: "v" })));
  $("draw").addEventListener("click", () => onKey(new KeyboardEvent("keydown", { key: "d" })));
  $("cls").addEventListener("click", () => onKey(new KeyboardEvent("keydown", { key: "c" })));
  $("source").addEventListener("click", () => onKey(new KeyboardEvent("keydown", { key: "i" })));
  $("zoom").addEventListener("click", () => onKey(new KeyboardEvent("keydown", { key: "0" })));
  new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) loadMore(); },
    { root: $("images") }).observe($("more"));
  loadMore();
}

window.review = { state: S, toScreen, openImage, shapes, render }; // for the browser tests
init();
