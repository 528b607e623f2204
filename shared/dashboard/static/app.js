// The dashboard: a hash-routed page over the platform's own API.
// The bearer token lives in this closure only (never in localStorage, sessionStorage or a
// cookie): a reload signs out, and no script from elsewhere can be loaded (CSP) to read it.
// Every value from the API reaches the page through textContent, never as HTML.
(function () {
  "use strict";
  var token = null, session = null, timers = [];
  var view = document.getElementById("view");
  var PRIMARY = ["accuracy", "rmse", "anomaly_rate"];
  var LOWER_IS_BETTER = ["mae", "mse", "rmse", "log_loss", "anomaly_rate"];

  // --- helpers -----------------------------------------------------------------------------
  function h(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== false && attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k] === true ? "" : attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
  function enc(s) { return encodeURIComponent(s); }
  function fmt(v) { return window.Charts.fmt(v); }
  function when(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }
  function announce(text) { document.getElementById("announce").textContent = text; }
  function stopTimers() { timers.forEach(clearTimeout); timers = []; }
  function can(scope) { return !!session && (session.is_admin || session.scopes.indexOf(scope) >= 0); }
  function primaryOf(metrics) {
    for (var i = 0; i < PRIMARY.length; i++) if (metrics && PRIMARY[i] in metrics) return PRIMARY[i];
    return null;
  }
  function table(caption, headers, rows, numeric) {
    return h("div", { "class": "scroll" }, h("table", {},
      h("caption", { "class": "visually-hidden", text: caption }),
      h("thead", {}, h("tr", {}, headers.map(function (t, i) {
        return h("th", { scope: "col", "class": numeric && numeric[i] ? "num" : null, text: t });
      }))),
      h("tbody", {}, rows)));
  }
  function td(value, numeric) { return h("td", { "class": numeric ? "num" : null }, value); }
  function statusCell(status) { return h("td", {}, h("span", { "class": "status-" + status, text: status.replace("_", " ") })); }
  function card(title, id) {
    var c = h("section", { "class": "card", "aria-labelledby": id });
    c.appendChild(h("h2", { id: id, text: title }));
    return c;
  }

  function ApiError(status, body) { this.status = status; this.body = body || {}; }
  function api(path, options) {
    options = options || {};
    var headers = { "Accept": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    if (options.json !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: options.method || "GET", headers: headers, cache: "no-store",
      body: options.json !== undefined ? JSON.stringify(options.json) : options.body,
      credentials: "omit"
    }).then(function (r) {
      if (r.status === 401 && token) { signOut("Your session has ended; sign in again."); throw new ApiError(401); }
      if (options.raw) { if (!r.ok) throw new ApiError(r.status); return r; }
      return r.text().then(function (text) {
        var body = text ? JSON.parse(text) : null;
        if (!r.ok) throw new ApiError(r.status, body);
        return body;
      });
    });
  }
  function problem(err) {
    if (err instanceof ApiError) return (err.body && (err.body.detail || err.body.title)) || ("HTTP " + err.status);
    return String(err && err.message || err);
  }
  function optional(promise) { return promise.catch(function (err) { return { _error: err }; }); }

  // A plot needs the bearer token, which an <img src> cannot send: fetch it, show a blob URL.
  function plotImage(url, alt) {
    var img = h("img", { alt: alt, width: 576, height: 326, "data-plot": url });
    api(url, { raw: true }).then(function (r) { return r.blob(); }).then(function (blob) {
      img.src = URL.createObjectURL(blob);
      img.addEventListener("load", function () { img.setAttribute("data-loaded", "true"); }, { once: true });
    }).catch(function (err) { img.alt = alt + " (not available: " + problem(err) + ")"; });
    return img;
  }
  function plotFigures(plots, what) {
    if (!plots.length) return h("p", { "class": "muted", text: "No plots were saved with " + what + "." });
    return h("div", { "class": "plots" }, plots.map(function (p) {
      var title = p.name.replace(/_/g, " ");
      return h("figure", {}, plotImage(p.url, title + " of " + what), h("figcaption", { text: title }));
    }));
  }

  // --- sign in / out -----------------------------------------------------------------------
  function showLogin(message) {
    document.getElementById("login-view").hidden = false;
    view.hidden = true;
    document.getElementById("nav").hidden = true;
    document.getElementById("who").hidden = true;
    document.getElementById("login-error").textContent = message || "";
    document.getElementById("login-username").focus();
  }
  function signOut(message) {
    var old = token;
    token = null; session = null; stopTimers();
    if (old) fetch("/auth/jwt/logout", { method: "POST", headers: { Authorization: "Bearer " + old } }).catch(function () {});
    showLogin(message);
  }
  document.getElementById("login-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var user = document.getElementById("login-username"), pass = document.getElementById("login-password");
    var error = document.getElementById("login-error"), button = document.getElementById("login-submit");
    if (!user.value || !pass.value) { error.textContent = "Enter your username and password."; return; }
    button.disabled = true; error.textContent = "";
    var form = new URLSearchParams({ username: user.value, password: pass.value });
    fetch("/auth/jwt/login", { method: "POST", body: form, credentials: "omit" }).then(function (r) {
      return r.json().then(function (body) { if (!r.ok) throw new ApiError(r.status, body); return body; });
    }).then(function (body) {
      token = body.access_token; pass.value = "";
      return api("/dashboard/session");
    }).then(function (s) {
      session = s;
      document.getElementById("login-view").hidden = true;
      document.getElementById("nav").hidden = false;
      document.getElementById("who").hidden = false;
      document.getElementById("who-name").textContent = "Signed in as " + s.username;
      view.hidden = false;
      if (!location.hash || location.hash === "#") location.hash = "#/models"; else route();
    }).catch(function (err) {
      token = null; error.textContent = problem(err);
    }).then(function () { button.disabled = false; });
  });
  document.getElementById("sign-out").addEventListener("click", function () { signOut("You have signed out."); });

  // --- routing -----------------------------------------------------------------------------
  function route() {
    if (!token) { showLogin(); return; }
    stopTimers();
    var parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    document.querySelectorAll("#nav a").forEach(function (a) {
      var on = a.getAttribute("href").slice(2) === parts[0];
      if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    view.replaceChildren(h("p", { "class": "muted", text: "Loading…" }));
    var done;
    if (parts[0] === "models" && parts[1]) done = modelView(parts[1]);
    else if (parts[0] === "jobs" && parts[1]) done = jobView(parts[1]);
    else if (parts[0] === "jobs") done = jobsView();
    else done = modelsView();
    done.catch(function (err) {
      if (err instanceof ApiError && err.status === 401) return;
      view.replaceChildren(h("p", { "class": "error", role: "alert", text: problem(err) }));
    }).then(function () {
      var heading = view.querySelector("h1");
      if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); announce(heading.textContent); }
    });
  }
  window.addEventListener("hashchange", route);

  // --- models ------------------------------------------------------------------------------
  // Every model, a page at a time (bounded: a dashboard is not a bulk export).
  function allModels(items, continuation) {
    var query = "/models?limit=100" + (continuation ? "&continuation_token=" + enc(continuation) : "");
    return api(query).then(function (page) {
      items = items.concat(page.items);
      return page.continuation_token && items.length < 1000 ? allModels(items, page.continuation_token) : items;
    });
  }

  function modelsView() {
    return allModels([], null).then(function (items) {
      return Promise.all(items.map(function (m) { return optional(api("/models/" + enc(m.name))); }));
    }).then(function (details) {
      var rows = details.filter(function (d) { return !d._error; }).map(function (d) {
        var latest = d.versions.filter(function (v) { return v.version === d.latest_version; })[0];
        var metric = latest && primaryOf(latest.metrics);
        return h("tr", {},
          h("th", { scope: "row" }, h("a", { href: "#/models/" + enc(d.name), text: d.name })),
          td(d.latest_version, true),
          h("td", {}, Object.keys(d.aliases).sort().map(function (a) { return h("span", { "class": "chip", text: a + " → v" + d.aliases[a] }); })),
          td(metric ? metric + " " + fmt(latest.metrics[metric]) : "–"),
          td(when(latest ? latest.created_at : d.updated_at)));
      });
      view.replaceChildren(h("h1", { text: "Models" }), h("section", { "class": "card", "aria-label": "Models" },
        rows.length ? table("Registered models", ["Model", "Latest version", "Aliases", "Primary metric", "Last trained"], rows, [false, true])
          : h("p", { "class": "muted", text: "No model is registered yet." })));
    });
  }

  function modelView(name) {
    return Promise.all([
      api("/models/" + enc(name)),
      api("/plots_structure?model=" + enc(name)),
      optional(api("/models/" + enc(name) + "/ab-results")),
      optional(api("/models/" + enc(name) + "/drift/recent")),
      can("train") ? optional(api("/train/specs")) : Promise.resolve({ items: [] })
    ]).then(function (r) {
      var model = r[0], tree = r[1].models[0] || { versions: [] };
      var versions = model.versions.slice().sort(function (a, b) { return a.version - b.version; });
      // Partitioned models drift per partition: shown with each partition's plots.
      var partitioned = tree.versions.some(function (v) { return v.partitions.length > 0; });
      var header = h("div", {}, h("h1", { text: "Model " + model.name }),
        model.description ? h("p", { "class": "muted", text: model.description }) : null);
      var specs = (r[4].items || []).filter(function (s) { return s.model === model.name; });
      if (specs.length) header.appendChild(trainButton(specs.map(function (s) { return s.name; })));
      view.replaceChildren();
      append(view, [header,
        versionsCard(versions),
        h("div", { "class": "grid" }, aliasesCard(model, versions), abCard(r[2])),
        partitioned ? null : driftCard(r[3]),
        plotsCard(model.name, tree.versions)]);
    });
  }

  function trainButton(specNames) {
    var status = h("span", { "class": "muted", role: "status" });
    var button = h("button", { type: "button", id: "train-now", onclick: function () {
      button.disabled = true; status.textContent = "Starting…";
      api("/train", { method: "POST", json: { specs: specNames } }).then(function (job) {
        location.hash = "#/jobs/" + enc(job.job_id);
      }).catch(function (err) { status.textContent = problem(err); button.disabled = false; });
    } }, "Train now");
    return h("div", { "class": "row" }, button, status);
  }

  function versionsCard(versions) {
    var c = card("Versions side by side", "versions-title");
    if (!versions.length) { c.appendChild(h("p", { "class": "muted", text: "No ready version." })); return c; }
    var shown = versions.slice(-8);
    var names = [];
    shown.forEach(function (v) { Object.keys(v.metrics).forEach(function (m) { if (names.indexOf(m) < 0) names.push(m); }); });
    names.sort();
    var primary = primaryOf(shown[shown.length - 1].metrics);
    var head = ["Metric"].concat(shown.map(function (v) { return "v" + v.version; }));
    var rows = [
      h("tr", {}, h("th", { scope: "row", text: "created" }), shown.map(function (v) { return td(when(v.created_at)); })),
      h("tr", {}, h("th", { scope: "row", text: "aliases" }), shown.map(function (v) {
        return h("td", {}, v.aliases.map(function (a) { return h("span", { "class": "chip", text: a }); }));
      }))
    ].concat(names.map(function (m) {
      var values = shown.map(function (v) { return v.metrics[m]; }).filter(function (x) { return x !== undefined; });
      var best = LOWER_IS_BETTER.indexOf(m) >= 0 ? Math.min.apply(null, values) : Math.max.apply(null, values);
      return h("tr", {}, h("th", { scope: "row", text: m + (m === primary ? " (primary)" : "") }), shown.map(function (v) {
        var value = v.metrics[m];
        var cell = td(fmt(value), true);
        if (value === best && values.length > 1 && m.indexOf("partitions_") !== 0) { cell.appendChild(h("span", { "class": "visually-hidden", text: " (best)" })); cell.classList.add("best"); }
        return cell;
      }));
    }));
    c.appendChild(table("Metrics of the newest versions", head, rows, head.map(function (_, i) { return i > 0; })));
    if (primary) {
      c.appendChild(h("h3", { text: primary + " over versions" }));
      var points = versions.map(function (v) { return { label: "v" + v.version, value: v.metrics[primary] }; });
      c.appendChild(h("div", { "class": "chart", id: "primary-chart" }, window.Charts.line(points, primary + " of each version, oldest to newest")));
    }
    return c;
  }

  function aliasesCard(model, versions) {
    var c = card("Aliases", "aliases-title");
    var aliases = Object.keys(model.aliases).sort();
    if (!aliases.length) c.appendChild(h("p", { "class": "muted", text: "No alias: predictions use the latest version." }));
    else c.appendChild(table("Aliases", ["Alias", "Version"], aliases.map(function (a) {
      return h("tr", {}, h("th", { scope: "row", text: a }), td("v" + model.aliases[a], true));
    }), [false, true]));
    if (!can("models:write") || !versions.length) return c;
    var aliasInput = h("input", { id: "alias-name", value: "champion", maxlength: 32, pattern: "[a-z][a-z0-9_\\-]*", required: true });
    var select = h("select", { id: "alias-version" }, versions.slice().reverse().map(function (v) {
      return h("option", { value: v.version, text: "v" + v.version + (v.aliases.length ? " (" + v.aliases.join(", ") + ")" : "") });
    }));
    var status = h("p", { role: "status", "class": "muted" });
    var form = h("form", { "class": "row", onsubmit: function (event) {
      event.preventDefault();
      var alias = aliasInput.value.trim(), version = parseInt(select.value, 10);
      if (!window.confirm("Point " + alias + " of " + model.name + " at version " + version + "?")) return;
      api("/models/" + enc(model.name) + "/aliases/" + enc(alias), { method: "PUT", json: { version: version } })
        .then(function () { announce(alias + " now points at version " + version); route(); })
        .catch(function (err) { status.textContent = problem(err); });
    } },
      h("div", {}, h("label", { "for": "alias-name", text: "Alias" }), aliasInput),
      h("div", {}, h("label", { "for": "alias-version", text: "Version" }), select),
      h("button", { type: "submit", text: "Promote / roll back" }));
    c.appendChild(h("h3", { text: "Move an alias" }));
    c.appendChild(form);
    c.appendChild(status);
    return c;
  }

  function abCard(ab) {
    var c = card("Traffic split and A/B results", "ab-title");
    if (ab._error) { c.appendChild(h("p", { "class": "muted", text: problem(ab._error) })); return c; }
    var weights = ab.traffic ? ab.traffic.weights : null;
    if (!weights || !Object.keys(weights).length) c.appendChild(h("p", { text: "No split: the champion answers every request." }));
    else {
      var total = Object.keys(weights).reduce(function (s, k) { return s + weights[k]; }, 0);
      c.appendChild(table("Traffic split", ["Alias", "Share"], Object.keys(weights).map(function (a) {
        return h("tr", {}, h("th", { scope: "row", text: a }), td(Math.round(1000 * weights[a] / total) / 10 + " %", true));
      }), [false, true]));
    }
    if (ab.traffic && ab.traffic.shadow) c.appendChild(h("p", { text: "Shadow: " + ab.traffic.shadow }));
    if (ab.variants.length) {
      c.appendChild(h("h3", { text: "Variants" }));
      c.appendChild(table("Variants", ["Variant", "Version", "Role", "Requests", "Errors", "Mean latency (ms)"], ab.variants.map(function (v) {
        return h("tr", {}, h("th", { scope: "row", text: v.variant }), td(v.version, true), td(v.role), td(v.requests, true), td(v.errors, true), td(fmt(v.mean_latency_ms), true));
      }), [false, true, false, true, true, true]));
    } else c.appendChild(h("p", { "class": "muted", text: "No prediction recorded yet." }));
    ab.shadow.forEach(function (s) { c.appendChild(h("p", { text: "Shadow " + s.shadow + " agreed on " + fmt(s.agreement) + " of " + s.compared_records + " records." })); });
    if (ab.feedback.length) {
      c.appendChild(h("h3", { text: "Feedback" }));
      c.appendChild(table("Feedback metrics", ["Version", "Feedback", "Accuracy", "RMSE"], ab.feedback.map(function (f) {
        return h("tr", {}, td("v" + f.version), td(f.feedback_count, true), td(fmt(f.accuracy), true), td(fmt(f.rmse), true));
      }), [false, true, true, true]));
    }
    return c;
  }

  function driftCard(drift) {
    var c = card("Drift of the last 24 hours", "drift-title");
    append(c, driftBody(drift));
    return c;
  }

  function driftBody(drift) {
    if (drift._error) return h("p", { "class": "muted", text: "No drift result: " + problem(drift._error) });
    var c = h("div", {});
    c.appendChild(h("p", { text: (drift.drift_detected ? "Drift detected in " + drift.drifted_features.join(", ") : "No drift detected") +
      " (" + drift.n_rows + " logged rows vs the training profile of v" + drift.version + ")." }));
    c.appendChild(h("div", { "class": "chart" }, window.Charts.bars(drift.features.map(function (f) {
      return { label: f.name, value: f.psi, flag: !!f.drift };
    }), "PSI per feature; flagged features drifted")));
    c.appendChild(table("Drift per feature", ["Feature", "Test", "Statistic", "p-value", "PSI", "Drift"], drift.features.map(function (f) {
      return h("tr", {}, h("th", { scope: "row", text: f.name }), td(f.test), td(fmt(f.statistic), true), td(fmt(f.p_value), true), td(fmt(f.psi), true),
        td(f.drift === null ? "not tested" + (f.reason ? ": " + f.reason : "") : f.drift ? "yes" : "no"));
    }), [false, false, true, true, true, false]));
    return c;
  }

  function plotsCard(name, versions) {
    var c = card("Plots", "plots-title");
    if (!versions.length) { c.appendChild(h("p", { "class": "muted", text: "No version has plots." })); return c; }
    var select = h("select", { id: "plot-version" }, versions.map(function (v) {
      return h("option", { value: v.version, text: "v" + v.version + (v.aliases.length ? " (" + v.aliases.join(", ") + ")" : "") });
    }));
    var body = h("div", {});
    function show() {
      var v = versions.filter(function (x) { return String(x.version) === select.value; })[0];
      body.replaceChildren(v.plots.length || !v.partitions.length ? plotFigures(v.plots, name + " v" + v.version)
        : h("p", { "class": "muted", text: "Each partition has its own model and plots: choose a partition below." }));
      if (v.partitions.length) body.appendChild(partitionsSection(name, v));
    }
    select.addEventListener("change", show);
    c.appendChild(h("div", { "class": "row" }, h("div", {}, h("label", { "for": "plot-version", text: "Version" }), select)));
    c.appendChild(body);
    show();
    return c;
  }

  function partitionsSection(name, version) {
    var section = h("div", {}, h("h3", { id: "partitions-title", text: "Partitions (" + version.partitions.length + ")" }));
    var detail = h("div", { id: "partition-plots", "aria-live": "polite" });
    var rows = version.partitions.map(function (p) {
      var rate = p.metrics.anomaly_rate;
      var button = h("button", { type: "button", "class": "secondary", "data-partition": p.partition, "aria-label": "Show the plots of " + p.partition, text: "Plots" });
      var row = h("tr", {}, h("th", { scope: "row", text: p.partition }), td(p.n_rows === null ? "–" : p.n_rows, true),
        td(rate === undefined ? "–" : fmt(100 * rate) + " %", true),
        td(p.carried_over_from ? "kept from v" + p.carried_over_from : "trained"), h("td", {}, button));
      button.addEventListener("click", function () {
        section.querySelectorAll("tr.selected").forEach(function (r) { r.classList.remove("selected"); });
        row.classList.add("selected");
        var drift = h("div", {}, h("p", { "class": "muted", text: "Loading drift…" }));
        detail.replaceChildren(h("h3", { text: "Partition " + p.partition }), plotFigures(p.plots, name + " v" + version.version + " partition " + p.partition),
          h("h3", { text: "Drift of " + p.partition + " in the last 24 hours" }), drift);
        var query = "?version=" + version.version + "&partition=" + enc(p.partition);
        optional(api("/models/" + enc(name) + "/drift/recent" + query)).then(function (d) { drift.replaceChildren(driftBody(d)); });
      });
      return row;
    });
    section.appendChild(h("div", { "class": "partition-list" }, table("Partitions", ["Partition", "Rows", "Anomaly rate", "Model", ""], rows, [false, true, true, false, false])));
    section.appendChild(detail);
    return section;
  }

  // --- training jobs -------------------------------------------------------------------------
  function jobsView() {
    if (!can("train")) {
      view.replaceChildren(h("h1", { text: "Training jobs" }), h("p", { "class": "muted", text: "Training jobs need the train scope." }));
      return Promise.resolve();
    }
    return Promise.all([api("/train/jobs?limit=30"), api("/train/specs")]).then(function (r) {
      var rows = r[0].items.map(function (j) {
        return h("tr", {}, h("th", { scope: "row" }, h("a", { href: "#/jobs/" + enc(j.job_id), text: j.job_id.slice(-8) })), statusCell(j.status),
          td(j.specs.join(", ")), td(j.trigger), td(when(j.created_at)), td((j.done_units || 0) + " / " + (j.total_units === null ? "?" : j.total_units), true));
      });
      var select = h("select", { id: "train-spec", multiple: true, size: Math.min(5, Math.max(2, r[1].items.length)) }, r[1].items.map(function (s) {
        return h("option", { value: s.name, text: s.name + (s.enabled ? "" : " (disabled)") + (s.partition_by ? " · by " + s.partition_by : "") });
      }));
      var status = h("p", { role: "status", "class": "muted" });
      var form = h("form", { "class": "row", onsubmit: function (event) {
        event.preventDefault();
        var chosen = Array.prototype.filter.call(select.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
        api("/train", { method: "POST", json: chosen.length ? { specs: chosen } : {} })
          .then(function (job) { location.hash = "#/jobs/" + enc(job.job_id); })
          .catch(function (err) { status.textContent = problem(err); });
      } }, h("div", {}, h("label", { "for": "train-spec", text: "Specs (none selected: every enabled spec)" }), select), h("button", { type: "submit", text: "Start training" }));
      var start = card("Start a training run", "start-title");
      start.appendChild(form); start.appendChild(status);
      var list = card("Recent jobs", "jobs-title");
      list.appendChild(rows.length ? table("Recent training jobs", ["Job", "Status", "Specs", "Trigger", "Created", "Units done"], rows, [false, false, false, false, false, true])
        : h("p", { "class": "muted", text: "No training job yet." }));
      view.replaceChildren(h("h1", { text: "Training jobs" }), start, list);
    });
  }

  // A job's end is one of these; every other status (queued, running, registering and any
  // added later) means "keep following it".
  var JOB_TERMINAL = ["succeeded", "failed", "partially_failed", "cancelled"];
  function transient(err) {
    // A dropped connection, a storage fault (503) or a rate limit (429) passes: retry.
    return !(err instanceof ApiError) || err.status === 429 || err.status >= 500;
  }
  function jobView(id) {
    var first = true, failures = 0;
    function later(ms) { timers.push(setTimeout(function () { poll().catch(function () {}); }, ms)); }
    function poll() {
      return api("/train/jobs/" + enc(id)).then(function (job) {
        failures = 0;
        renderJob(job, first); first = false;
        if (JOB_TERMINAL.indexOf(job.status) < 0) later(1000);
        else announce("Job " + job.status.replace("_", " "));
      }, function (err) {
        if (first || !transient(err)) throw err;
        // Keep the last view and say why it is not moving; back off up to 10 s.
        failures += 1;
        var note = document.getElementById("job-note");
        if (note) note.textContent = "Could not refresh (" + problem(err) + "); retrying.";
        later(Math.min(10000, 1000 * Math.pow(2, failures)));
      });
    }
    return poll();
  }

  function cancelButton(job) {
    var status = h("span", { "class": "muted", role: "status" });
    var button = h("button", { type: "button", id: "job-cancel", onclick: function () {
      if (!window.confirm("Cancel this job? Units not started are skipped and nothing is registered.")) return;
      button.disabled = true; status.textContent = "Cancelling…";
      api("/train/jobs/" + enc(job.job_id) + "/cancel", { method: "POST" })
        .then(function () { status.textContent = "Cancelled."; })
        .catch(function (err) { status.textContent = problem(err); button.disabled = false; });
    } }, "Cancel job");
    return h("p", { "class": "row" }, button, status);
  }

  function renderJob(job, first) {
    var total = job.total_units, done = job.done_units || 0;
    var progress = h("progress", { id: "job-progress", max: total || 1, value: total ? done : 0, "aria-label": "Units done" });
    var summary = card("Progress", "progress-title");
    summary.appendChild(h("p", {}, "Status: ", h("strong", { "class": "status-" + job.status, id: "job-status", text: job.status.replace("_", " ") })));
    summary.appendChild(h("p", {}, progress, " ", done + " of " + (total === null ? "?" : total) + " units"));
    summary.appendChild(h("p", { "class": "muted", text: "Started " + when(job.started_at || job.created_at) + (job.finished_at ? ", finished " + when(job.finished_at) : "") + " · by " + job.created_by }));
    if (job.error) summary.appendChild(h("p", { "class": "error", text: job.error }));
    summary.appendChild(h("p", { "class": "muted", id: "job-note", role: "status" }));
    if (JOB_TERMINAL.indexOf(job.status) < 0 && can("train")) summary.appendChild(cancelButton(job));
    var cards = [h("h1", { text: "Training job " + job.job_id.slice(-8) }), summary];
    job.specs.forEach(function (spec) {
      var units = job.results.filter(function (u) { return u.spec === spec; });
      var c = card("Spec " + spec, "spec-" + spec);
      var registered = units.filter(function (u) { return u.version; })[0];
      if (registered) c.appendChild(h("p", {}, "Registered ", h("a", { href: "#/models/" + enc(registered.model), text: registered.model + " v" + registered.version }), registered.promoted ? " and promoted to champion." : " (not promoted)."));
      var partitioned = units.some(function (u) { return u.partition !== null; });
      if (partitioned) {
        var count = function (s) { return units.filter(function (u) { return u.status === s; }).length; };
        c.appendChild(h("p", { text: count("succeeded") + " partitions trained, " + count("skipped") + " skipped, " + count("failed") + " failed." }));
      }
      if (units.length) c.appendChild(table("Units of " + spec, [partitioned ? "Partition" : "Unit", "Status", "Rows", "Anomaly rate", "Primary metric", "Reason"], units.map(function (u) {
        var metric = primaryOf(u.metrics), rate = u.metrics.anomaly_rate;
        return h("tr", {}, h("th", { scope: "row", text: u.partition === null ? spec : u.partition }), statusCell(u.status), td(u.n_rows === null ? "–" : u.n_rows, true),
          td(rate === undefined ? "–" : fmt(100 * rate) + " %", true), td(metric && metric !== "anomaly_rate" ? metric + " " + fmt(u.metrics[metric]) : "–"), td(u.error || ""));
      }), [false, false, true, true, false, false]));
      cards.push(c);
    });
    // Keep focus where the user is while the page refreshes itself.
    var active = document.activeElement && document.activeElement.id;
    view.replaceChildren.apply(view, cards);
    if (!first && active && document.getElementById(active)) document.getElementById(active).focus();
    if (!first) view.querySelector("h1").removeAttribute("tabindex");
  }

  showLogin();
})();
