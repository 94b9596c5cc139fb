// The environment panel's front end (anywidget ESM). Everything it shows about environments and builds
// comes from dockyard's server extension (REST, the page's own Jupyter credentials); a switch is a DOM
// event from this element, answered by dockyard's labextension for the notebook that holds it. The
// kernel behind this widget only supplies its own facts (model "facts"): it may run in a container that
// sees no Docker engine and no kernelspecs.

const SWITCH_EVENT = "dockyard:switch";
const WHOAMI_EVENT = "dockyard:whoami";

function pageConfig() {
  const node = document.getElementById("jupyter-config-data");
  if (!node) return null; // not a Jupyter server's page (VS Code, a static HTML export)
  try {
    return JSON.parse(node.textContent || "{}");
  } catch {
    return null;
  }
}

function cookie(name) {
  const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return hit ? decodeURIComponent(hit.slice(name.length + 1)) : null;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// fetch() with Jupyter's auth: the token the page was given (if any), the login cookie, the XSRF header.
function request(config, path, options = {}) {
  const base = (config.baseUrl || "/").replace(/\/?$/, "/");
  const headers = { ...(options.headers || {}) };
  if (config.token) headers.Authorization = `token ${config.token}`;
  const xsrf = cookie("_xsrf");
  if (xsrf) headers["X-XSRFToken"] = xsrf;
  return fetch(`${base}dockyard/api/${path}`, { credentials: "same-origin", ...options, headers });
}

async function api(config, path, options = {}) {
  let response;
  try {
    response = await request(config, path, options);
  } catch (err) {
    throw new ApiError(0, `The Jupyter server did not answer (${err}).`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, (body && body.message) || response.statusText);
  return body;
}

// Server-sent events read through fetch (EventSource cannot send the Authorization header).
async function follow(config, buildId, after, onEvent) {
  const query = after >= 0 ? `?after=${after}` : "";
  const response = await request(config, `builds/${buildId}/events${query}`);
  if (!response.ok || !response.body) throw new ApiError(response.status, "cannot follow the build");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}

// Build output carries the terminal colours pip and apt print; a web page shows them as junk.
const plain = (text) => (text || "").replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");

function size(bytes) {
  if (bytes == null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let n = bytes;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${n.toFixed(n < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

// Binary sizes, as the engine's limits are set ("256m" is 256 MiB).
function mib(bytes) {
  if (bytes == null) return "no limit";
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(gib < 10 ? 1 : 0)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

// A small bar: fraction 0..1 (clamped); none when unknown.
function bar(fraction, kind) {
  if (fraction == null) return h("span", { class: "dockyard-bar dockyard-bar-none" });
  const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  return h("span", { class: `dockyard-bar dockyard-bar-${kind}`, title: `${pct} %` }, h("span", { style: `width:${pct}%` }));
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}

const KERNELS_EVERY_MS = 2000; // the panel's kernel figures refresh this often (the collector ticks at 2 s)
const CULL_WARN_S = 600; // warn the notebook this long before the culler would shut its kernel down

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Asks the labextension (synchronously) which notebook holds this element and which kernel it runs.
function whoami(el) {
  const detail = {};
  const event = new CustomEvent(WHOAMI_EVENT, { bubbles: true, cancelable: true, detail });
  const answered = !el.dispatchEvent(event);
  return answered ? detail : null;
}

function howToSwitch(env) {
  const name = env.kernel.display_name;
  return (
    `To switch here, pick "${name}" in your front end's kernel picker ` +
    `(JupyterLab/Notebook: Kernel → Change Kernel…; VS Code: Select Kernel → Jupyter Kernel…). ` +
    `dockyard's labextension, which does it from this panel, is not active in this front end.`
  );
}

function render({ model, el }) {
  const config = pageConfig();
  const state = {
    envs: [],
    engine: null,
    problems: [],
    loading: true,
    fatal: null, // a message that replaces the list (server extension missing, no Jupyter server)
    notice: null, // {kind, text}: the last action's outcome
    builds: {}, // ref → {id, state, step, total, text, last, message, failedStep, seq}
    remote: {}, // ref → /dockyard/api/registry/REF: {registry, remote, has_tag} (only for variants not built here)
    switching: null,
    facts: model.get("facts") || {},
    who: null,
    kernels: null, // /dockyard/api/kernels: {kernels: [...], interval}
    kernelsError: null,
    provenance: null, // /dockyard/api/provenance for this notebook: matches, drifted, missing, unstamped
  };
  const kernelsEl = h("div", { class: "dockyard-kernels" });
  const root = h("div", { class: "dockyard-panel" });
  el.append(root);

  function currentKernel() {
    return (state.who && state.who.kernel) || state.facts.kernel_name || null;
  }

  async function load() {
    state.loading = true;
    draw();
    // render() may run before the output is attached to the notebook: an event from a detached element
    // would reach no one, and the panel would wrongly say that the labextension is missing.
    for (let i = 0; i < 250 && !el.isConnected; i++) await new Promise((r) => setTimeout(r, 20));
    state.who = whoami(el);
    if (!config) {
      state.fatal =
        "This front end is not a Jupyter server's page (VS Code, or an exported notebook), so the panel " +
        "cannot ask dockyard's server extension for the environments. Switch with your front end's kernel " +
        'picker: dockyard kernels are named "FRAMEWORK VERSION (VARIANT, container)"; install them with ' +
        "'dockyard kernels install', build images with 'dockyard build ENV'.";
      state.loading = false;
      return draw();
    }
    try {
      const answer = await api(config, "environments");
      state.envs = answer.environments;
      state.engine = answer.engine;
      state.problems = answer.problems || [];
      state.fatal = null;
      for (const env of state.envs) {
        if (env.build && !(state.builds[env.ref] && state.builds[env.ref].state === "running")) {
          track(env.ref, env.build, -1); // a build started elsewhere (another tab, before a reload)
        }
      }
      askRegistry();
    } catch (err) {
      state.fatal =
        err.status === 404
          ? "dockyard's Jupyter server extension is not enabled in this Jupyter server, so the panel cannot " +
            "list or build environments. Fix: run 'jupyter server extension enable dockyard.frontends.panel' " +
            "(pip install dockyard does this), then restart Jupyter."
          : `dockyard's server extension did not answer: ${err.message}`;
    }
    state.loading = false;
    draw();
    loadProvenance();
  }

  function track(ref, id, after) {
    const build = (state.builds[ref] = { id, state: "running", step: 0, total: 0, text: "starting…", last: "", seq: after });
    draw();
    follow(config, id, after, (event) => {
      build.seq = event.seq;
      if (event.type === "step") Object.assign(build, { step: event.number, total: event.total, text: event.text });
      else if (event.type === "output") build.last = plain(event.line);
      else if (event.type === "succeeded") {
        build.state = "succeeded";
        state.notice = {
          kind: "ok",
          text: `${ref}: ${event.built ? `built in ${event.seconds} s` : "already up to date"} (${event.tag}).`,
        };
      } else if (event.type === "failed") {
        Object.assign(build, { state: "failed", message: plain(event.message), failedStep: event.step });
      }
      draw();
    })
      .catch((err) => {
        if (build.state === "running") Object.assign(build, { state: "failed", message: `Lost the build's progress: ${err.message}` });
      })
      .finally(() => (build.state === "succeeded" ? load() : draw()));
  }

  // "Pull instead of build": ask the registry (through the server) about each variant not built here; a row whose
  // content tag the registry holds gets a Pull button. Without a registry the server answers {registry: null}.
  async function askRegistry() {
    const waiting = state.envs.filter((e) => e.image.status !== "built");
    for (const [i, env] of waiting.entries()) {
      try {
        const answer = await api(config, `registry/${encodeURIComponent(env.ref)}`);
        state.remote[env.ref] = answer;
        if (answer.has_tag) draw();
        if (i === 0 && answer.registry === null) return; // no registry configured: ask no more
      } catch {
        // the Build button stays; the registry is a shortcut, never a requirement
      }
    }
  }

  async function startBuild(env, pull = false) {
    try {
      const job = await api(config, "builds", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(pull ? { ref: env.ref, pull: true } : { ref: env.ref }),
      });
      track(env.ref, job.id, -1);
    } catch (err) {
      state.notice = { kind: "error", text: err.message };
      draw();
    }
  }

  function startSwitch(env) {
    state.notice = null;
    let settle;
    const done = new Promise((resolve, reject) => (settle = { resolve, reject }));
    const detail = {
      name: env.kernel.name,
      factsExpression: model.get("facts_expression"),
      resolve: (v) => settle.resolve(v),
      reject: (m) => settle.reject(new Error(m)),
    };
    const event = new CustomEvent(SWITCH_EVENT, { bubbles: true, cancelable: true, detail });
    if (el.dispatchEvent(event)) {
      state.notice = { kind: "info", text: howToSwitch(env) }; // nobody answered: no labextension here
      return draw();
    }
    state.switching = env.ref;
    draw();
    done
      .then(({ kernel, facts }) => {
        state.who = { ...(state.who || {}), kernel };
        // The new kernel's own facts arrive a moment later (the labextension asks it after the switch).
        Promise.resolve(facts).then((f) => {
          if (f) {
            state.facts = f;
            draw();
          }
        });
        state.notice = {
          kind: "ok",
          text:
            `This notebook now runs on ${env.kernel.display_name}. Its variables are gone (a new kernel); ` +
            "this panel keeps working for further switches and builds.",
        };
      })
      .catch((err) => (state.notice = { kind: "error", text: err.message }))
      .finally(() => {
        state.switching = null;
        draw();
      });
  }

  function factsBox() {
    const f = state.facts || {};
    const env = f.environment;
    const fw = f.framework;
    const where = env
      ? `${env.display_name || env.env} (${env.env}:${env.variant}), in its container`
      : "not a dockyard environment (a local kernel)";
    return h(
      "div",
      { class: "dockyard-facts", dataset: { env: env ? `${env.env}:${env.variant}` : "" } },
      h("div", { class: "dockyard-facts-title" }, "This notebook's kernel"),
      h("div", {}, h("b", {}, "Environment: "), where),
      h("div", {}, h("b", {}, "Python: "), f.python || "?"),
      fw && fw.package ? h("div", {}, h("b", {}, `${fw.package}: `), fw.installed || "not installed") : null,
      h("div", {}, h("b", {}, "Devices: "), (f.devices || []).join(", ") || "?"),
    );
  }

  function gpuCell(env) {
    if (env.gpu.wants === "none") return "CPU";
    const have = env.gpu.available === null ? "?" : env.gpu.available ? "available" : "none on this engine";
    return `${env.gpu.wants === "required" ? "GPU required" : "GPU optional"} · ${have}`;
  }

  // Mounts and secrets of the environment's kernels (docs/data-and-secrets.md): names only, never a value.
  function dataLine(env) {
    const d = env.data || { mounts: [], secrets: [] };
    if (!d.mounts.length && !d.secrets.length) return null;
    const mounts = d.mounts.map((m) => `${m.target || m.what}${m.read_only ? " (read-only)" : ""}`);
    const secrets = d.secrets.map((s) => `${s.name}${s.present ? "" : " (missing)"}`);
    return h(
      "div",
      { class: "dockyard-data", dataset: { ref: env.ref } },
      mounts.length ? `Mounts: ${mounts.join(", ")}` : "",
      mounts.length && secrets.length ? " · " : "",
      secrets.length ? `Secrets: ${secrets.join(", ")}` : "",
    );
  }

  // "not built" is said once for all rows (above the table); each row shows its other problems.
  const notBuilt = (p) => p.includes("Fix: press Build");

  function row(env) {
    const current = currentKernel() === env.kernel.name;
    const build = state.builds[env.ref];
    const building = build && build.state === "running";
    const canSwitch = !current && env.image.status === "built" && env.kernel.installed !== false && !state.switching;
    const status = env.image.status === "built" ? `built · ${size(env.image.size)}` : env.image.status;
    const fixes = env.problems.filter(notBuilt).join(" ");
    const name = `${env.title}${env.framework.name === "python" ? "" : " " + env.framework.version}`;
    const cells = [
      h(
        "td",
        {},
        h("span", { class: "dockyard-name" }, name),
        h("span", { class: "dockyard-variant" }, env.variant),
        current ? h("span", { class: "dockyard-badge" }, "this notebook") : null,
        h("div", { class: "dockyard-sub" }, env.description),
      ),
      h("td", { class: `dockyard-image dockyard-image-${env.image.status.replace(" ", "-")}`, title: fixes || env.image.tag }, status),
      h("td", { class: "dockyard-gpu" }, gpuCell(env)),
      h(
        "td",
        { class: "dockyard-actions" },
        h(
          "button",
          { class: "dockyard-build", disabled: building || !state.engine || !state.engine.ok, onclick: () => startBuild(env), title: `dockyard build ${env.ref}` },
          env.image.status === "built" ? "Rebuild" : "Build",
        ),
        env.image.status !== "built" && state.remote[env.ref] && state.remote[env.ref].has_tag
          ? h(
              "button",
              { class: "dockyard-pull", disabled: building || !state.engine || !state.engine.ok, onclick: () => startBuild(env, true), title: `dockyard pull ${env.ref} (from ${state.remote[env.ref].remote})` },
              "Pull",
            )
          : null,
        h(
          "button",
          { class: "dockyard-switch", disabled: !canSwitch, onclick: () => startSwitch(env), title: `switch this notebook to ${env.kernel.display_name}` },
          state.switching === env.ref ? "Switching…" : "Switch",
        ),
      ),
    ];
    const rows = [h("tr", { class: current ? "dockyard-row dockyard-current" : "dockyard-row", dataset: { ref: env.ref } }, cells)];
    const extra = [];
    if (build && build.state === "running") {
      const pct = build.total ? Math.round((100 * build.step) / build.total) : 0;
      extra.push(
        h(
          "div",
          { class: "dockyard-progress", dataset: { ref: env.ref } },
          h("progress", { max: 100, value: pct }),
          h("span", { class: "dockyard-step" }, build.total ? `step ${build.step}/${build.total}: ${build.text}` : build.text),
          h("div", { class: "dockyard-last" }, build.last),
        ),
      );
    } else if (build && build.state === "failed") {
      extra.push(
        h(
          "div",
          { class: "dockyard-msg dockyard-error dockyard-build-failed", dataset: { ref: env.ref } },
          build.failedStep ? h("div", {}, h("b", {}, "Failed step: "), h("code", {}, build.failedStep)) : null,
          h("pre", {}, build.message),
        ),
      );
    }
    for (const p of env.problems.filter((p) => !notBuilt(p))) extra.push(h("div", { class: "dockyard-msg dockyard-warn" }, p));
    const data = dataLine(env);
    if (data) extra.push(data);
    if (extra.length) rows.push(h("tr", { class: "dockyard-detail", dataset: { ref: env.ref } }, h("td", { colspan: 4 }, extra)));
    return rows;
  }

  function missingImages() {
    const refs = state.envs.filter((e) => e.image.status === "not built" || e.image.status === "outdated").map((e) => e.ref);
    if (!refs.length) return null;
    return h(
      "div",
      { class: "dockyard-msg dockyard-warn dockyard-missing" },
      `Not built yet: ${refs.join(", ")}. Press Build on a row (or run 'dockyard build NAME:VARIANT'); its kernel ` +
        "comes with the image, and Switch works as soon as the build ends.",
    );
  }

  function draw() {
    const header = h(
      "div",
      { class: "dockyard-header" },
      h("span", { class: "dockyard-title" }, "dockyard environments"),
      h("button", { class: "dockyard-refresh", onclick: () => load(), disabled: state.loading }, state.loading ? "Loading…" : "Refresh"),
    );
    const messages = h("div", { class: "dockyard-messages" });
    if (state.fatal) messages.append(h("div", { class: "dockyard-msg dockyard-error dockyard-fatal" }, state.fatal));
    if (state.engine && !state.engine.ok) messages.append(h("div", { class: "dockyard-msg dockyard-error dockyard-engine" }, state.engine.error));
    for (const p of state.problems) messages.append(h("div", { class: "dockyard-msg dockyard-warn" }, p));
    if (config && !state.fatal && !state.loading && !(state.who && state.who.labextension)) {
      messages.append(
        h(
          "div",
          { class: "dockyard-msg dockyard-info dockyard-no-labextension" },
          "dockyard's labextension is not active in this front end, so Switch cannot change this notebook's " +
            "kernel from here; the list and Build still work. Use Kernel → Change Kernel… (VS Code: Select Kernel).",
        ),
      );
    }
    if (state.notice) messages.append(h("div", { class: `dockyard-msg dockyard-${state.notice.kind} dockyard-notice` }, state.notice.text));
    if (state.engine && state.engine.ok) messages.append(missingImages() || "");
    const table = state.envs.length
      ? h(
          "table",
          { class: "dockyard-table" },
          h("thead", {}, h("tr", {}, ["Environment", "Image", "GPU", ""].map((t) => h("th", {}, t)))),
          h("tbody", {}, state.envs.map(row)),
        )
      : null;
    root.replaceChildren(header, factsBox(), provenanceBox(), kernelsEl, messages, table || "");
  }

  // --- provenance: this notebook's stamp against this machine (GET /dockyard/api/provenance) ---------------

  async function loadProvenance() {
    const path = (state.who && state.who.path) || state.facts.session; // API path, or the absolute one
    if (!config || state.fatal || !path) return;
    try {
      state.provenance = await api(config, `provenance?path=${encodeURIComponent(path)}`);
    } catch (err) {
      state.provenance = err.status === 404 ? null : { state: "error", message: err.message };
    }
    draw();
  }

  async function buildExact(p) {
    const ref = p.stamp.ref;
    try {
      const job = await api(config, "builds", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ref, tag: p.stamp.content_tag }), // refused (409) unless it builds exactly that
      });
      track(ref, job.id, -1);
    } catch (err) {
      state.notice = { kind: "error", text: err.message };
      draw();
    }
  }

  function provenanceBox() {
    const p = state.provenance;
    if (!p || p.state === "unstamped") return "";
    const kind = { matches: "ok", drifted: "warn", missing: "warn" }[p.state] || "error";
    const title = { matches: "matches", drifted: "drifted", missing: "missing" }[p.state] || p.state;
    const parts = [h("b", {}, `Outputs made in: ${p.stamp ? p.stamp.content_tag : "?"} — ${title}. `), p.message];
    const changes = (p.packages && [...p.packages.added, ...p.packages.removed, ...p.packages.changed]) || [];
    if (changes.length) {
      parts.push(
        h(
          "ul",
          { class: "dockyard-provenance-diff" },
          changes.slice(0, 12).map((c) => h("li", {}, `${c.name} ${c.old || "∅"} → ${c.new || "∅"}${c.cuda ? " (CUDA)" : ""}`)),
          changes.length > 12 ? h("li", {}, `… ${changes.length - 12} more (dockyard diff NOTEBOOK ${p.stamp.ref})`) : null,
        ),
      );
    }
    const running = p.stamp && state.builds[p.stamp.ref] && state.builds[p.stamp.ref].state === "running";
    if (p.state === "missing" && p.exact_build) {
      parts.push(
        h("button", { class: "dockyard-build-exact", onclick: () => buildExact(p), disabled: running }, running ? "Building…" : `Build ${p.stamp.content_tag}`),
      );
    }
    return h("div", { class: `dockyard-msg dockyard-${kind} dockyard-provenance`, dataset: { state: p.state } }, parts);
  }

  // --- what the kernels use (GET /dockyard/api/kernels), refreshed while the panel is on the page -----------

  function mine(k) {
    const path = state.who && state.who.path;
    if (path) return k.notebook === path;
    const session = state.facts.session; // JPY_SESSION_NAME: the notebook's path as the server gave it
    return !!(session && k.notebook && session.endsWith(k.notebook));
  }

  function figures(k) {
    const cpu = k.cpu_percent == null ? "…" : `${k.cpu_percent.toFixed(0)} %`;
    const gpu =
      typeof k.gpu === "string"
        ? k.gpu
        : `${k.gpu.memory_used == null ? "?" : mib(k.gpu.memory_used)} / ${mib(k.gpu.memory_total)}, ${Math.round(k.gpu.utilization)} %`;
    return {
      cpu: h("span", {}, bar(k.cpu_percent == null ? null : k.cpu_percent / 100 / k.cpus, "cpu"), " ", cpu),
      mem: h("span", {}, bar(k.memory_fraction, "mem"), " ", `${mib(k.memory_used)} / ${mib(k.memory_limit)}`),
      gpu: h(
        "span",
        {},
        typeof k.gpu === "string" ? "" : bar(k.gpu.memory_total && k.gpu.memory_used != null ? k.gpu.memory_used / k.gpu.memory_total : null, "gpu"),
        " ",
        gpu,
      ),
    };
  }

  function drawKernels() {
    const parts = [];
    if (state.kernelsError) parts.push(h("div", { class: "dockyard-msg dockyard-warn" }, state.kernelsError));
    const all = (state.kernels && state.kernels.kernels) || [];
    const own = all.find(mine);
    if (own) {
      const f = figures(own);
      parts.push(
        h(
          "div",
          { class: "dockyard-usage", dataset: { kernel: own.kernel_id } },
          h("b", {}, "Uses: "),
          h("span", { class: "dockyard-usage-cpu" }, "CPU ", f.cpu),
          h("span", { class: "dockyard-usage-mem" }, "memory ", f.mem),
          h("span", { class: "dockyard-usage-pids" }, `${own.pids} processes`),
          h("span", { class: "dockyard-usage-gpu" }, typeof own.gpu === "string" ? own.gpu : ["GPU ", f.gpu]),
        ),
      );
      if (own.cull_in != null && own.cull_in < CULL_WARN_S) {
        parts.push(
          h(
            "div",
            { class: "dockyard-msg dockyard-warn dockyard-cull" },
            `This kernel has been idle and will be shut down in ${Math.max(1, Math.round(own.cull_in / 60))} min ` +
              "(kernels.cull.idle_timeout): its variables will be lost. Run a cell to keep it; a shut-down " +
              "notebook starts a fresh kernel on its next cell.",
          ),
        );
      }
    }
    if (all.length) {
      parts.push(
        h(
          "details",
          { class: "dockyard-kernel-list" },
          h("summary", {}, `All dockyard kernels of this server (${all.length})`),
          h(
            "table",
            { class: "dockyard-kernel-table" },
            h("thead", {}, h("tr", {}, ["Notebook", "Environment", "CPU", "Memory / limit", "GPU", "Idle"].map((t) => h("th", {}, t)))),
            h(
              "tbody",
              {},
              all.map((k) => {
                const f = figures(k);
                const idle = k.execution_state === "busy" ? "busy" : ago(k.idle_since);
                return h(
                  "tr",
                  { class: mine(k) ? "dockyard-current" : null, dataset: { kernel: k.kernel_id } },
                  h("td", {}, k.notebook || k.kernel_id.slice(0, 8)),
                  h("td", {}, `${k.env}:${k.variant}`),
                  h("td", {}, f.cpu),
                  h("td", {}, f.mem),
                  h("td", {}, f.gpu),
                  h("td", {}, idle),
                );
              }),
            ),
          ),
        ),
      );
    }
    const open = kernelsEl.querySelector("details[open]") !== null;
    kernelsEl.replaceChildren(...parts);
    const details = kernelsEl.querySelector("details");
    if (details && open) details.open = true;
  }

  async function pollKernels() {
    if (!config) return;
    try {
      state.kernels = await api(config, "kernels");
      state.kernelsError = state.kernels.error || null;
    } catch (err) {
      state.kernelsError = err.status === 404 ? null : `Kernel figures unavailable: ${err.message}`;
    }
    drawKernels();
  }

  let attached = false;
  const timer = setInterval(() => {
    if (el.isConnected) attached = true;
    else if (attached) {
      clearInterval(timer); // the output was cleared or the notebook closed
      return;
    }
    pollKernels();
  }, KERNELS_EVERY_MS);
  pollKernels();

  model.on("change:facts", () => {
    state.facts = model.get("facts") || {};
    draw();
  });
  load();
}

export default { render };
