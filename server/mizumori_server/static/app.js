// Mizumori dashboard: fills the server-rendered pages from the JSON API (same session
// cookie) and keeps them live by polling. No build step, no framework: one file.
(function () {
  "use strict";
  var C = JSON.parse(document.getElementById("config").textContent);
  var T = C.words || {};
  var POLL_MS = 10000;
  var LOCALE = C.lang === "en" ? "en-GB" : "ja-JP";

  // Rendering rule: text from the server (names, messages, versions, errors: whatever a
  // user or a station typed) only ever goes into the page as text (textContent, text
  // nodes, h() below), never as HTML: no innerHTML, no HTML strings to Leaflet.
  function t(key) { return T[key] || key; }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function h(tag, attrs, kids) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    });
    (kids || []).forEach(function (c) {
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  async function api(path, opts) {
    opts = Object.assign({ credentials: "same-origin", headers: {} }, opts || {});
    // the server writes alert messages and refusals in this language (i18n.request_language)
    opts.headers["Accept-Language"] = C.lang;
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      opts.headers["Content-Type"] = "application/json";
    }
    var r = await fetch(path, opts);
    if (r.status === 401 && C.page !== "login") {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
      throw new Error("logged out");
    }
    var body = r.status === 204 ? null : await r.json().catch(function () { return null; });
    if (!r.ok) {
      var d = body && body.detail;
      var err = new Error(typeof d === "string" ? d : JSON.stringify(d || r.status));
      err.status = r.status;
      err.body = body;  // e.g. a 409's code and what it names
      throw err;
    }
    return body;
  }

  var fmt = new Intl.DateTimeFormat(LOCALE, {
    timeZone: C.tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit" });
  function when(unix) { return unix == null ? "—" : fmt.format(new Date(unix * 1000)); }
  function metres(mm) { return mm == null ? "—" : (mm / 1000).toFixed(2) + " m"; }
  function volts(mv) { return mv == null ? "—" : (mv / 1000).toFixed(2) + " V"; }
  function levelBadge(k) {
    return h("span", { "class": "badge level-" + (k || 0), text: t("level_" + (k || 0)) });
  }
  function statusBadge(s) { return h("span", { "class": "badge status-" + s, text: t(s) }); }
  function toast(msg) {
    var e = $("#toast");
    e.textContent = msg;
    e.classList.add("show");
    setTimeout(function () { e.classList.remove("show"); }, 2500);
  }
  function showError(id, err) {
    var e = $(id);
    if (!e) return toast(t("error") + ": " + err.message);
    e.textContent = err.message;
    e.hidden = false;
  }
  function live(fn) {
    async function tick() {
      try { await fn(); $("#live").classList.remove("stale"); }
      catch (e) { $("#live").classList.add("stale"); }
    }
    tick();
    setInterval(tick, POLL_MS);
  }
  function ago(s) { return t("minutes_ago").replace("{n}", Math.round(s / 60)); }
  function isoWhen(iso) { return iso ? when(Date.parse(iso) / 1000) : "—"; }
  // A sentence of the dashboard's words with "{key}" places filled from values: each value
  // is a text node in a <b data-field=key>, never markup.
  function fillIn(template, values) {
    var out = [], re = /\{(\w+)\}/g, last = 0, m;
    while ((m = re.exec(template)) !== null) {
      out.push(template.slice(last, m.index));
      out.push(values[m[1]] == null ? m[0] :
        h("b", { "data-field": m[1], text: String(values[m[1]]) }));
      last = re.lastIndex;
    }
    out.push(template.slice(last));
    return out;
  }
  // A river-level alert's levels, each with the time it was reached (oldest first).
  function levelHistory(a) {
    return h("ol", { "class": "level-history", "aria-label": t("level_history") },
      (a.levels || []).map(function (x) {
        return h("li", { "data-level": String(x.level) }, [levelBadge(x.level),
          " " + isoWhen(x.at)]); }));
  }
  function stationHref(code) { return "/stations/" + encodeURIComponent(code); }
  // Only for the one place that takes HTML and no element: Leaflet's attribution line
  // (a deployment setting, shown as text all the same).
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  // Where to go after logging in: the server has already reduced ?next= to a path on this
  // server (web.safe_next); resolved here as the browser will read it, and followed only
  // as an absolute URL of this very origin.
  function nextPath() {
    try {
      var u = new URL(C.next || "/", location.origin);
      if (u.origin === location.origin) return u.href;
    } catch (e) { /* not a URL: go home */ }
    return "/";
  }

  // --- login -------------------------------------------------------------------------
  function loginPage() {
    $("#login-form").addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var f = new FormData(ev.target);
      try {
        await api("/api/login", { method: "POST",
          json: { username: f.get("username"), password: f.get("password") } });
        location.href = nextPath();
      } catch (e) { $("#login-error").hidden = false; }
    });
  }

  // --- map ---------------------------------------------------------------------------
  function mapPage() {
    var map = L.map("map").setView([36.0, 137.5], 5);
    if (C.tiles.url) {
      var failed = 0;
      L.tileLayer(C.tiles.url, { attribution: escapeHtml(C.tiles.attribution || ""),
        maxZoom: 18 })
        .on("tileerror", function () { if (++failed === 3) $("#tiles-failed").hidden = false; })
        .addTo(map);
    }
    var markers = {};
    var fitted = false;
    live(async function () {
      var stations = await api("/api/latest");
      var bounds = [];
      stations.forEach(function (s) {
        if (s.latitude == null) return;
        var ll = [s.latitude, s.longitude];
        bounds.push(ll);
        var gone = s.status === "offline" || s.status === "unseen";
        var colour = getComputedStyle(document.documentElement)
          .getPropertyValue(gone ? "--offline" : "--level-" + (s.alert_level || 0));
        // Leaflet takes an element as well as an HTML string: always an element here
        var popup = h("div", { "class": "station-popup", "data-station": s.code }, [
          h("b", { text: s.name }), h("br"), s.code, h("br"),
          t("level") + ": " + metres(s.level_mm), h("br"),
          t("alert_level") + ": " + t("level_" + (s.alert_level || 0)), h("br"),
          t("status") + ": " + t(s.status), h("br"),
          t("observation_mode") + ": " + t("mode_" + (s.observation_mode || "standard")),
          h("br"),
          t("last_seen") + ": " + when(s.last_seen), h("br"),
          h("a", { href: stationHref(s.code), text: t("open_station") })]);
        var tip = h("span", { "class": "station-tooltip", text: s.name });
        var m = markers[s.code];
        if (!m) {
          m = markers[s.code] = L.circleMarker(ll, { radius: 11, weight: 2, color: "#fff",
            fillOpacity: 0.95 }).addTo(map);
        }
        m.setStyle({ fillColor: colour.trim() });
        if (m.getPopup()) m.setPopupContent(popup); else m.bindPopup(popup);
        if (m.getTooltip()) m.setTooltipContent(tip); else m.bindTooltip(tip);
        m.feature = { code: s.code, level: s.alert_level, status: s.status };
      });
      document.body.dataset.stations = String(Object.keys(markers).length);
      if (!fitted && bounds.length) {
        map.fitBounds(bounds, { padding: [40, 40], maxZoom: 13 });
        fitted = true;
      }
    });
  }

  // --- fleet -------------------------------------------------------------------------
  function fleetPage() {
    var rows = [];
    var sortKey = "station", sortDir = 1;
    var tbody = $("#fleet-table tbody");
    function draw() {
      var fs = $("#f-status").value, fl = $("#f-level").value;
      var ft = $("#f-text").value.toLowerCase();
      var shown = rows.filter(function (r) {
        return (!fs || r.status === fs) && (!fl || String(r.alert_level) === fl) &&
          (!ft || JSON.stringify(r).toLowerCase().indexOf(ft) >= 0);
      }).sort(function (a, b) {
        var x = a[sortKey], y = b[sortKey];
        if (x == null) return 1;
        if (y == null) return -1;
        return (x > y ? 1 : x < y ? -1 : 0) * sortDir;
      });
      tbody.replaceChildren.apply(tbody, shown.map(function (r) {
        return h("tr", { "data-station": r.station || "" }, [
          h("td", {}, [r.station ? h("a", { href: stationHref(r.station), text: r.station })
            : r.hardware_id]),
          h("td", {}, [statusBadge(r.status)]),
          h("td", {}, [levelBadge(r.alert_level)]),
          h("td", { text: metres(r.level_mm) }),
          h("td", { text: volts(r.battery_mv) }),
          h("td", { text: r.rssi_dbm == null ? "—" : r.rssi_dbm + " dBm" }),
          h("td", { text: r.firmware_version || "—" }),
          h("td", { text: r.last_seen_ago_s == null ? "—" : when(r.last_seen) + " (" +
            ago(r.last_seen_ago_s) + ")" }),
          h("td", { text: r.queue_depth == null ? "—" : String(r.queue_depth) })]);
      }));
    }
    document.querySelectorAll("#fleet-table th[data-key]").forEach(function (th) {
      th.addEventListener("click", function () {
        sortDir = sortKey === th.dataset.key ? -sortDir : 1;
        sortKey = th.dataset.key;
        document.querySelectorAll("#fleet-table th").forEach(function (o) {
          o.classList.remove("sorted-asc", "sorted-desc"); });
        th.classList.add(sortDir > 0 ? "sorted-asc" : "sorted-desc");
        draw();
      });
    });
    ["#f-status", "#f-level", "#f-text"].forEach(function (s) {
      $(s).addEventListener("input", draw); });
    live(async function () {
      var both = await Promise.all([api("/api/fleet"), api("/api/latest")]);
      var byCode = {};
      both[1].forEach(function (s) { byCode[s.code] = s; });
      rows = both[0].map(function (d) {
        var s = byCode[d.station] || {};
        return Object.assign({}, d, { alert_level: s.alert_level || 0,
          level_mm: s.level_mm });
      });
      draw();
    });
  }

  // --- station -----------------------------------------------------------------------
  var RANGES = { hour: 3600, day: 86400, week: 7 * 86400, year: 365 * 86400 };
  // What the station reported about itself: its last restart (a watchdog or brown-out one
  // stands out) and its last error. Text nodes only: an error is whatever the station sent.
  var ALARM_RESETS = { wdt: 1, brownout: 1 };
  function resetWords(cause) { return cause ? t("reset_" + cause) : "—"; }
  function healthLine(d) {
    if (!d) return [];
    var kids = [t("last_reset") + ": "];
    if (d.reset_cause) {
      var alarm = ALARM_RESETS[d.reset_cause] === 1;
      kids.push(h("span", { id: "station-reset", "data-cause": d.reset_cause,
        "class": alarm ? "badge reset-alarm" : "", text: resetWords(d.reset_cause) }),
        " " + when(d.reset_at));
      if (alarm) kids.push(" ", h("span", { "class": "warn",
        text: t("reset_hint_" + d.reset_cause) }));
    } else kids.push("—");
    kids.push(h("br"), t("last_error") + ": ");
    if (d.last_error) {
      kids.push(h("span", { id: "station-error", "class": d.error_cleared_at ? "" : "error",
        text: d.last_error }), " " + when(d.last_error_at));
      if (d.error_cleared_at) kids.push(" · " + t("error_cleared") + " " +
        when(d.error_cleared_at));
    } else kids.push(t("none"));
    return kids;
  }
  function healthEvent(e) {
    var kind = e.kind === "reset" ? t("restart") : e.kind === "cleared" ?
      t("last_error") + " " + t("error_cleared") : t("error");
    return h("li", { "data-kind": e.kind }, [when(e.at) + " ", h("b", { text: kind }),
      e.kind === "cleared" ? "" : " " + (e.kind === "reset" ? resetWords(e.text) : e.text)]);
  }
  // The charts' time axis in the dashboard's language and time zone, 24-hour: times of
  // day for an hour or a day, dates with times for a week, dates for a year.
  var AXIS = {
    hour: { hour: "2-digit", minute: "2-digit" },
    day: { hour: "2-digit", minute: "2-digit" },
    week: { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" },
    year: { year: "numeric", month: "2-digit", day: "2-digit" } };
  var axisFmt = {};
  Object.keys(AXIS).forEach(function (k) {
    axisFmt[k] = new Intl.DateTimeFormat(LOCALE, Object.assign({ timeZone: C.tz,
      hourCycle: "h23" }, AXIS[k]));
  });
  function fixed(unit, digits) {
    return function (u, v) { return v == null ? "—" : v.toFixed(digits) + " " + unit; };
  }
  function stationPage() {
    var code = C.station, range = "day", charts = {};
    // lo, hi: the chosen range, which the x axis spans whatever the data covers
    function chart(id, title, series, data, lo, hi, points) {
      var el = document.getElementById(id);
      if (charts[id]) charts[id].destroy();
      var fmtX = axisFmt[range];
      var opts = { title: title, width: el.clientWidth || 800,
        height: el.classList.contains("small") ? 200 : 320,
        series: [{ label: t("time"), value: function (u, v) { return when(v); } }]
          .concat(series.map(function (s) {
            // lines only: no marker on every reading (a lone reading still shows)
            return Object.assign({ points: { show: function (u) {
              return points < 2; } } }, s); })),
        scales: { x: { time: true, range: function () { return [lo, hi]; } } },
        axes: [{ values: function (u, splits) {
          var labels = splits.map(function (v) { return fmtX.format(new Date(v * 1000)); });
          u.root.dataset.xticks = labels.join("|");  // the canvas's labels, readable
          return labels; },
          space: range === "week" || range === "year" ? 90 : 60 }, {}],
        // uPlot's time axis, in the deployment's time zone (JST by default)
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), C.tz); } };
      charts[id] = new uPlot(opts, data, el);
      charts[id].root.dataset.points = String(points);
      // what is drawn on the canvas, for a reader (and the browser tests): the x range and
      // which series mark their points
      charts[id].root.dataset.range = lo + "-" + hi;
      charts[id].root.dataset.markers = charts[id].series.slice(1).map(function (s, i) {
        var show = s.points && s.points.show;
        return typeof show === "function" ? show(charts[id], i + 1) : !!show; }).join(",");
    }
    async function load() {
      var st = await api("/api/stations/" + encodeURIComponent(code));
      $("#station-title").textContent = st.name + " (" + st.code + ")";
      var l = st.latest || {};
      $("#station-state").replaceChildren(statusBadge(l.status || "unseen"), " ",
        levelBadge(l.alert_level), " " + t("level") + ": " + metres(l.level_mm) + " · " +
        t("last_seen") + ": " + when(l.last_seen) + " · ",
        h("span", { id: "station-mode", "data-mode": l.observation_mode || "standard",
          text: t("observation_mode") + ": " + t("mode_" + (l.observation_mode || "standard")) }));
      var health = $("#station-health"), events = st.device ? st.device.events : [];
      health.replaceChildren.apply(health, healthLine(st.device));
      $("#station-events").replaceChildren.apply($("#station-events"), events.length ?
        events.map(healthEvent) : [h("li", { text: t("none") })]);
      var end = (l.t || Math.floor(Date.now() / 1000)) + 1, start = end - RANGES[range];
      var r = await api("/api/stations/" + encodeURIComponent(code) + "/readings?start=" +
        start + "&end=" + end + "&max_points=600");
      var pts = r.points, n = pts.length;
      // the range's ends as points without readings: the axis and the threshold lines
      // span the whole range, however short the data
      var xs = [start].concat(pts.map(function (p) { return p.t; }), [end]);
      function column(f) { return [null].concat(pts.map(f), [null]); }
      var lv = column(function (p) {
        var v = r.downsampled ? p.level_max_mm : p.level_mm;
        return v == null ? null : v / 1000; });
      var levels = ["standby_mm", "caution_mm", "evacuation_mm", "danger_mm"];
      var css = getComputedStyle(document.documentElement);
      // the operator's unit: m with cm precision (docs/operator.md, "Units")
      var series = [{ label: t("level_m"), stroke: "#0b3d91", width: 2,
        value: fixed("m", 2) }];
      var data = [xs, lv];
      levels.forEach(function (k, i) {
        if (st[k] == null) return;
        series.push({ label: t("level_" + (i + 1)), stroke:
          css.getPropertyValue("--level-" + (i + 1)).trim(), dash: [6, 4], width: 1.5,
          value: fixed("m", 2), points: { show: false } });
        data.push(xs.map(function () { return st[k] / 1000; }));
      });
      chart("level-chart", t("level_m"), series, data, start, end, n);
      chart("temp-chart", t("temperature") + " (°C)", [{ label: t("temperature"),
        stroke: "#e8590c", value: fixed("°C", 1) }],
        [xs, column(function (p) { return p.temperature_c; })], start, end, n);
      chart("rain-chart", t("rain") + " (mm)", [{ label: t("rain"), stroke: "#1971c2",
        value: fixed("mm", 1),
        paths: uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8] }) : undefined }],
        [xs, column(function (p) { return p.rain_mm; })], start, end, n);
      var alerts = await api("/api/alerts?state=all&limit=20&station=" +
        encodeURIComponent(code));
      $("#station-alerts").replaceChildren.apply($("#station-alerts"), alerts.length ?
        alerts.map(function (a) { return h("li", {}, [h("b", { text: t("type_" + a.type) }),
          " " + a.message + " · " + t(a.state) + " · " + t("since") + " ",
          h("span", { "class": "since", text: isoWhen(a.level_since) })]); }) :
          [h("li", { text: t("none") })]);
      $("#station-devices").replaceChildren.apply($("#station-devices"), st.devices.map(
        function (d) { return h("li", { "data-device": String(d.device_id), text: "#" +
          d.device_id + " " + t("installed") + " " + when(d.installed_at) + " (" + d.by + ")" +
          (d.removed_at ? " · " + t("removed") + " " + when(d.removed_at) +
          (d.removed_by ? " (" + d.removed_by + ")" : "") : "") +
          (d.replaced_by ? " · " + t("replaced_by").replace("{n}", d.replaced_by) : "") });
        }));
      await loadCalibration();
      var form = $("#station-form");
      if (form && !form.dataset.filled) {
        Array.prototype.forEach.call(form.elements, function (e) {
          if (e.name && st[e.name] != null) e.value = shown(e, st[e.name]); });
        showMillimetres(form);
        form.dataset.filled = "1";
      }
    }
    // Calibration against the staff gauge: what the station uses, the last check's
    // residual and the history (who, when, gauge, reading). Text nodes only.
    function mm(v) { return (v > 0 ? "+" : "") + v + " mm"; }
    function calText(c) {
      return t("cal_kind_" + c.kind) + " #" + c.version + " · " + t("cal_offset") + " " +
        mm(c.offset_mm) + " · " + t("cal_scale") + " " + c.scale.toFixed(5) + " · " +
        t("cal_staff") + " " + metres(c.staff_mm) + " · " + t("cal_reading") + " " +
        metres(c.level_mm) + " · " + t("cal_residual") + " " + mm(c.residual_mm) + " · " +
        when(c.at) + " (" + c.by + ")";
    }
    async function loadCalibration() {
      var cal = await api("/api/stations/" + encodeURIComponent(code) + "/calibrations");
      var cur = cal.current;
      $("#cal-current").textContent = t("cal_current") + ": " + (cur ? t("cal_offset") + " " +
        mm(cur.offset_mm) + " · " + t("cal_scale") + " " + cur.scale.toFixed(5) + " (#" +
        cur.version + ") · " + (cur.active_from == null ? t("cal_pending") :
        t("cal_active_from") + " " + when(cur.active_from)) : t("cal_uncalibrated"));
      var chk = cal.last_check || cur;
      var last = $("#cal-last-check");
      last.textContent = t("cal_last_check") + ": " + (chk ? t("cal_residual") + " " +
        mm(chk.residual_mm) + " (" + t("cal_staff") + " " + metres(chk.staff_mm) + ", " +
        when(chk.at) + ")" : t("none"));
      last.dataset.residual = chk ? String(chk.residual_mm) : "";
      $("#cal-history").replaceChildren.apply($("#cal-history"), cal.history.length ?
        cal.history.map(function (c) {
          return h("li", { "data-calibration": String(c.id), text: calText(c) }); }) :
        [h("li", { text: t("none") })]);
    }
    var calForm = $("#cal-form");
    if (calForm) calForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      $("#cal-form-error").hidden = true;
      try {
        await api("/api/stations/" + encodeURIComponent(code) + "/calibrations", {
          method: "POST", json: { staff_gauge_m: Number(calForm.elements.staff_gauge_m.value),
            kind: calForm.elements.kind.value } });
        toast(t("saved"));
        calForm.reset();
        loadCalibration();
      } catch (e) { showError("#cal-form-error", e); }
    });
    document.querySelectorAll("#ranges button").forEach(function (b) {
      b.addEventListener("click", function () {
        range = b.dataset.range;
        document.querySelectorAll("#ranges button").forEach(function (o) {
          o.classList.toggle("active", o === b); });
        load();
      });
    });
    // The form shows levels in m (as the chart) and sends the API's mm: an input with
    // data-scale="1000" holds metres, its <output> the millimetres that will be stored.
    function shown(e, v) { return e.dataset.scale ? v / Number(e.dataset.scale) : v; }
    function stored(e) {
      if (e.value === "") return null;
      var v = Number(e.value);
      return e.dataset.scale ? Math.round(v * Number(e.dataset.scale)) : v;
    }
    function showMillimetres(f) {
      f.querySelectorAll("input[data-scale]").forEach(function (e) {
        var out = f.querySelector("output[data-for='" + e.name + "']");
        var v = stored(e);
        if (out) out.textContent = v == null || isNaN(v) ? "" : "= " + v + " " + e.dataset.unit;
      });
    }
    var form = $("#station-form");
    if (form) form.addEventListener("input", function () { showMillimetres(form); });
    if (form) form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var body = {};
      Array.prototype.forEach.call(form.elements, function (e) {
        if (e.name) body[e.name] = stored(e); });
      $("#station-form-error").hidden = true;
      try {
        var saved = await api("/api/stations/" + encodeURIComponent(code), { method: "PATCH",
          json: body });
        toast(saved.calibration_warning || t("saved"));  // a calibration to check again
        load();
      } catch (e) { showError("#station-form-error", e); }
    });
    live(load);
  }

  // --- alerts ------------------------------------------------------------------------
  function alertsPage() {
    function row(a, active) {
      var cells = [h("td", {}, [h("a", { href: stationHref(a.station), text: a.station })]),
        h("td", {}, [a.type === "level" ? levelBadge(a.level) :
          h("span", { text: t("type_" + a.type) })]),
        h("td", { text: a.message }),
        // the time the shown level was reached (an escalated alert opened earlier), and
        // the levels before it
        h("td", { "class": "since-cell" }, [h("span", { "class": "since",
          text: isoWhen(a.level_since) })].concat((a.levels || []).length > 1 ?
          [levelHistory(a)] : []))];
      if (!active) {
        cells.push(h("td", { text: isoWhen(a.closed_at) }));
        return h("tr", { "data-alert": String(a.id), "data-state": a.state }, cells);
      }
      cells.push(h("td", { text: t(a.state) + (a.acknowledged_by ? " (" +
        a.acknowledged_by + (a.ack_note ? ": " + a.ack_note : "") + ")" : "") }));
      var act = h("td");
      if (C.can.operate && a.state === "open") {
        var note = h("input", { placeholder: t("note"), "class": "ack-note" });
        act.append(note, " ", h("button", { type: "button", "class": "ack", text:
          t("acknowledge"), onclick: async function () {
            try {
              await api("/api/alerts/" + a.id + "/ack", { method: "POST",
                json: { note: note.value } });
              toast(t("acknowledged"));
              refresh();
            } catch (e) { showError(null, e); }
          } }));
      }
      cells.push(act);
      return h("tr", { "data-alert": String(a.id), "data-state": a.state }, cells);
    }
    async function refresh() {
      var both = await Promise.all([api("/api/alerts?state=active"),
        api("/api/alerts?state=closed&limit=50")]);
      var act = $("#active-alerts tbody"), old = $("#closed-alerts tbody");
      act.replaceChildren.apply(act, both[0].map(function (a) { return row(a, true); }));
      old.replaceChildren.apply(old, both[1].map(function (a) { return row(a, false); }));
    }
    live(refresh);
  }

  // --- OTA ---------------------------------------------------------------------------
  function otaPage() {
    async function refresh() {
      var rel = await api("/api/releases");
      $("#releases").replaceChildren.apply($("#releases"), rel.map(function (r) {
        return h("li", { text: r.version + " · " + when(r.created_at) + " · " +
          (r.created_by || "") }); }));
      var sel = $("#rollout-form select[name=release]");
      if (sel && sel.options.length !== rel.length) {
        sel.replaceChildren.apply(sel, rel.map(function (r) {
          return h("option", { value: r.version, text: r.version }); }));
      }
      var ros = await api("/api/rollouts");
      var detailed = await Promise.all(ros.map(function (r) {
        return api("/api/rollouts/" + r.id); }));
      $("#rollouts").replaceChildren.apply($("#rollouts"), detailed.map(rolloutBox));
    }
    function rolloutBox(r) {
      var counts = r.counts || {};
      var total = 0, done = 0;
      Object.keys(counts).forEach(function (k) { total += counts[k];
        if (k === "confirmed" || k === "succeeded") done += counts[k]; });
      var box = h("div", { "class": "rollout", "data-rollout": String(r.id),
        "data-state": r.state }, [
        h("b", {}, ["#" + r.id + " " + r.release + " · ", h("span", { "class":
          "rollout-state", text: t("rollout_" + r.state) })]),
        h("div", { "class": "rollout-progress", text: t("progress") + ": " +
          Object.keys(counts).filter(function (k) {
          return counts[k]; }).map(function (k) { return t("device_" + k) + " " + counts[k]; })
          .join(" · ") + " (" + t("stages") + " " + r.stage + "/" + r.stages.length +
          ": " + r.stages.join(", ") + ")" }),
        h("progress", { max: String(total || 1), value: String(done) }),
        h("ul", { "class": "plain devices" }, (r.devices || []).map(function (d) {
          return h("li", { "data-state": d.state, text: "#" + d.device_id + " " +
            t("device_" + d.state) + (d.reason ? " (" + d.reason + ")" : "") }); }))]);
      if (C.can.release) {
        ["pause", "resume", "abort"].forEach(function (action) {
          box.append(" ", h("button", { type: "button", "data-action": action,
            text: t(action), onclick: async function () {
              try {
                await api("/api/rollouts/" + r.id + "/" + action, { method: "POST" });
                refresh();
              } catch (e) { showError(null, e); }
            } }));
        });
      }
      return box;
    }
    var rf = $("#release-form");
    if (rf) rf.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      $("#release-error").hidden = true;
      try {
        await api("/api/releases", { method: "POST", body: rf.elements.bundle.files[0],
          headers: { "Content-Type": "application/x-tar" } });
        toast(t("uploaded"));
        rf.reset();
        refresh();
      } catch (e) { showError("#release-error", e); }
    });
    var ro = $("#rollout-form");
    if (ro) ro.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      $("#rollout-error").hidden = true;
      var stages = ro.elements.stages.value.split(",").map(function (s) {
        return Number(s.trim()); });
      try {
        var tag = ro.elements.tag.value.trim();
        await api("/api/rollouts", { method: "POST", json: { release:
          ro.elements.release.value, target: tag ? { tag: tag } : { all: true },
          stages: stages, success_pct: Number(ro.elements.success_pct.value),
          max_failure_pct: Number(ro.elements.max_failure_pct.value) } });
        refresh();
      } catch (e) { showError("#rollout-error", e); }
    });
    live(refresh);
  }

  // --- provisioning ------------------------------------------------------------------
  // Registering a board at a station that has a device replaces it: the server refuses
  // (409 station_has_device, naming that device and its last report) unless the request
  // says replace, which it does only after the technician confirms here.
  async function provisionPage() {
    var form = $("#provision-form"), box = $("#replace-confirm"), pending = null;
    var sel = $("#provision-form select[name=station]");
    var stations = await api("/api/stations");
    sel.replaceChildren.apply(sel, stations.map(function (s) {
      return h("option", { value: s.code, text: s.code + " " + s.name }); }));
    function dismiss() { box.hidden = true; pending = null; }
    function askReplace(body, conflict) {
      var cur = conflict.current_device || {};
      $("#replace-warning").replaceChildren.apply($("#replace-warning"),
        fillIn(t("replace_warning"), { station: conflict.station, device: cur.device_id,
          hardware: cur.hardware_id, last: cur.last_report == null ? t("never_reported") :
            when(cur.last_report) }));
      pending = Object.assign({}, body, { replace: true });
      box.hidden = false;
      $("#replace-no").focus();  // the safe choice first
    }
    async function register(body) {
      $("#provision-error").hidden = true;
      $("#provisioned").hidden = true;
      try {
        var p = await api("/api/devices/provision", { method: "POST", json: body });
        dismiss();
        $("#p-device").textContent = p.device_id;
        $("#p-secret").textContent = p.secret;
        $("#provisioned").hidden = false;
      } catch (e) {
        if (e.status === 409 && e.body && e.body.code === "station_has_device" &&
            !body.replace) return askReplace(body, e.body);
        dismiss();
        showError("#provision-error", e);
      }
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = {};
      new FormData(form).forEach(function (v, k) { if (v) body[k] = v; });
      register(body);
    });
    form.addEventListener("input", dismiss);  // a changed form is asked about again
    $("#replace-yes").addEventListener("click", function () {
      if (pending) register(pending);
    });
    $("#replace-no").addEventListener("click", dismiss);
  }

  // --- every page --------------------------------------------------------------------
  var logout = $("#logout");
  if (logout) logout.addEventListener("click", async function () {
    await api("/api/logout", { method: "POST" }).catch(function () {});
    location.href = "/login";
  });
  ({ login: loginPage, map: mapPage, fleet: fleetPage, station: stationPage,
     alerts: alertsPage, ota: otaPage, provision: provisionPage }[C.page] ||
   function () {})();
})();
