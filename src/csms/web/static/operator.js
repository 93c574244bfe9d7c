// The operator dashboard: stations live (Server-Sent Events), one station's events
// and commands, Charge Detail Records with filters and CSV export, registration.
"use strict";

(() => {
  const { api, ApiError, friendly, el, show, kwh, when, ago, drawMap, readEventStream } = Csms;
  const $ = (selector) => document.querySelector(selector);
  const TOKEN_KEY = "csms.operator.token";
  const RECONNECT_MS = 2000;
  const STATIONS = "/api/v1/operator/stations";
  const RECORDS = "/api/v1/operator/charge-detail-records";

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    stations: new Map(),
    filter: "all",
    view: null,
    stationId: null,
    recordsBefore: null,
    stream: null,
    refreshing: new Map(),
  };
  const message = $("#message");
  const say = (text, options) => show(message, text, options);
  const tell = (error) => say(error instanceof ApiError && error.problem.title
    ? `${error.problem.title}: ${friendly(error)}` : friendly(error));

  async function call(path, options = {}) {
    try {
      return await api(path, { token: state.token, ...options });
    } catch (error) {
      if (error.status === 401 && state.token) logOut("That token is not (or no longer) valid.");
      throw error;
    }
  }

  const isOfflineCharging = (station) => station.offline_while_charging;

  // -- views and routing (#stations, #station/ID, #records, #register) ---------

  function route() {
    if (!state.token) return go("login");
    const [view, id] = location.hash.slice(1).split("/");
    if (view === "station" && id) {
      state.stationId = decodeURIComponent(id);
      return go("station");
    }
    return go(["records", "register"].includes(view) ? view : "stations");
  }

  function go(view) {
    state.view = view;
    for (const section of document.querySelectorAll("main > section")) {
      section.hidden = section.id !== `view-${view}`;
    }
    for (const button of document.querySelectorAll("#nav button[data-view]")) {
      if (button.dataset.view === view) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
    $("#nav").hidden = !state.token;
    $("#live").hidden = !state.token;
    if (view === "stations") renderStations();
    if (view === "station") loadStation().catch(tell);
    if (view === "records") loadRecords().catch(tell);
  }

  window.addEventListener("hashchange", () => {
    say("");
    route();
  });
  for (const button of document.querySelectorAll("#nav button[data-view]")) {
    button.addEventListener("click", () => {
      location.hash = button.dataset.view;
    });
  }

  // -- login --------------------------------------------------------------------

  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = new FormData(event.target).get("token").trim();
    try {
      await api(`${STATIONS}?limit=1`, { token });
    } catch (error) {
      say(friendly(error, { 401: "That token is not valid. Check it and try again." }));
      return;
    }
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    event.target.reset();
    say("");
    await begin();
  });

  function logOut(reason = "") {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (state.stream) state.stream.abort();
    state.stations.clear();
    location.hash = "";
    go("login");
    say(reason);
  }
  $("#logout").addEventListener("click", () => logOut());

  // -- stations -------------------------------------------------------------------

  // TODO: every station is loaded and rendered; a national fleet needs the
  // filters and paging done by the server.
  async function loadStations() {
    const stations = new Map();
    let after = null;
    do {
      const params = new URLSearchParams({ limit: 1000 });
      if (after) params.set("after", after);
      const page = await call(`${STATIONS}?${params}`);
      for (const station of page.items) stations.set(station.id, station);
      after = page.next_after;
    } while (after);
    state.stations = stations;
    renderStations();
  }

  // One refetch per station at a time: a burst of events costs one request.
  function refreshStation(stationId) {
    if (state.refreshing.has(stationId)) {
      state.refreshing.set(stationId, true);
      return;
    }
    state.refreshing.set(stationId, false);
    call(`${STATIONS}/${encodeURIComponent(stationId)}`)
      .then((station) => {
        state.stations.set(station.id, station);
        renderStations(station.id);
        if (state.view === "station" && state.stationId === station.id) renderStation(station);
      })
      .catch(() => {})
      .finally(() => {
        const again = state.refreshing.get(stationId);
        state.refreshing.delete(stationId);
        if (again) refreshStation(stationId);
      });
  }

  function matches(station) {
    if (state.filter === "all") return true;
    if (state.filter === "offline") return isOfflineCharging(station);
    return station.state === state.filter;
  }

  function stateBadge(station) {
    return isOfflineCharging(station)
      ? el("span", { class: "badge offline", text: "Charging, offline" })
      : el("span", { class: `badge ${station.state}`, text: station.state });
  }

  function connectorChips(station) {
    return station.connectors.map((c) => el("span", {
      class: `chip ${c.status}`,
      title: c.error_code && c.error_code !== "NoError" ? c.error_code : null,
      text: `${c.connector_id === 0 ? "station" : c.evse_id === c.connector_id ? c.connector_id : `${c.evse_id}/${c.connector_id}`}: ${c.status}`,
    }));
  }

  function renderStations(changedId = null) {
    if (state.view !== "stations") return;
    const all = [...state.stations.values()];
    const counts = {
      all: all.length,
      Unavailable: all.filter((s) => s.state === "Unavailable").length,
      Charging: all.filter((s) => s.state === "Charging").length,
      offline: all.filter(isOfflineCharging).length,
    };
    for (const button of document.querySelectorAll("#filters button")) {
      button.setAttribute("aria-pressed", String(button.dataset.filter === state.filter));
      button.querySelector("span").textContent = `(${counts[button.dataset.filter]})`;
    }
    const shown = all.filter(matches);
    const body = $("#station-table tbody");
    body.replaceChildren(...shown.map((station) => el("tr", {
      "data-station": station.id,
      "data-state": isOfflineCharging(station) ? "offline" : station.state,
      class: station.id === changedId ? "flash" : null,
    },
    el("td", {}, el("a", { href: `#station/${encodeURIComponent(station.id)}`, text: station.id }),
      station.name ? el("div", { class: "small muted", text: station.name }) : null),
    el("td", {}, stateBadge(station), station.online ? null : el("div", { class: "small muted", text: "offline" })),
    el("td", {}, connectorChips(station)),
    el("td", { title: station.last_seen_at || "", text: ago(station.last_seen_at) }),
    el("td", { text: station.ocpp_version || "—" }),
    el("td", { text: [station.vendor, station.model, station.firmware_version].filter(Boolean).join(" ") || "—" }))));
    if (!shown.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "No station matches." })));
    drawMap($("#fleet-map"), {
      points: shown.filter((s) => s.location).map((s) => ({
        id: s.id, label: s.id, lat: s.location.latitude, lon: s.location.longitude,
        state: s.state, offline: isOfflineCharging(s),
      })),
      onChoose: (id) => { location.hash = `station/${encodeURIComponent(id)}`; },
    });
  }

  for (const button of document.querySelectorAll("#filters button")) {
    button.addEventListener("click", () => {
      state.filter = button.dataset.filter;
      renderStations();
    });
  }
  // "Last seen 5 s ago" grows old by itself.
  setInterval(() => { if (state.view === "stations") renderStations(); }, 15000);

  // -- one station ------------------------------------------------------------------

  async function loadStation() {
    const id = encodeURIComponent(state.stationId);
    $("#new-password").hidden = true;
    const station = await call(`${STATIONS}/${id}`);
    state.stations.set(station.id, station);
    renderStation(station);
    await Promise.all([loadEvents(), loadOpenCharge()]);
  }

  function renderStation(station) {
    $("#station-title").replaceChildren(`${station.id} `, stateBadge(station));
    $("#station-facts").textContent = [
      station.name,
      station.online ? "online" : "offline",
      `last seen ${ago(station.last_seen_at)}`,
      station.ocpp_version,
      [station.vendor, station.model, station.firmware_version].filter(Boolean).join(" "),
      station.location ? `${station.location.latitude.toFixed(5)}, ${station.location.longitude.toFixed(5)}` : "no location",
      `security profile ${station.security_profile}`,
    ].filter(Boolean).join(" · ");
    $("#station-connectors").replaceChildren(...connectorChips(station));
    const outlets = station.connectors.filter((c) => c.connector_id !== 0);
    const options = () => outlets.map((c) => el("option", {
      value: `${c.evse_id}:${c.connector_id}`,
      text: `${c.evse_id === c.connector_id ? c.connector_id : `${c.evse_id}/${c.connector_id}`} (${c.status})`,
    }));
    const keep = (select, build) => {
      const value = select.value;
      select.replaceChildren(...build());
      if (value) select.value = value;
    };
    keep($("#action-connector"), options);
    keep($("#availability-target"), () => [el("option", { value: "", text: "the whole station" }), ...options()]);
  }

  async function loadEvents() {
    const events = await call(`${STATIONS}/${encodeURIComponent(state.stationId)}/events?limit=30`);
    $("#event-table tbody").replaceChildren(...events.map((event) => el("tr", {},
      el("td", { title: event.created_at, text: when(event.created_at) }),
      el("td", {}, event.security ? el("span", { class: "badge offline", text: "security" }) : null, " ", event.kind),
      el("td", { class: "small mono", text: describeEvent(event) }))));
    if (!events.length) $("#event-table tbody").append(el("tr", {}, el("td", { colspan: 3, class: "muted", text: "No events yet." })));
  }

  function describeEvent(event) {
    const details = { ...event.details };
    if (event.source_address) details.from = event.source_address;
    return Object.entries(details)
      .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`)
      .join(" ");
  }

  async function loadOpenCharge() {
    const params = new URLSearchParams({ station_id: state.stationId, state: "Started", limit: 10 });
    const pending = new URLSearchParams({ station_id: state.stationId, state: "Pending", limit: 10 });
    const [started, waiting] = await Promise.all([
      call(`${RECORDS}?${params}`), call(`${RECORDS}?${pending}`)]);
    const open = [...started.items, ...waiting.items];
    const box = $("#open-charge");
    if (!open.length) {
      box.replaceChildren("None.");
      return;
    }
    box.replaceChildren(...open.map((record) => el("div", { class: "row", "data-record": record.id },
      el("div", {},
        el("span", { class: `badge ${record.state}`, text: record.state }), " ",
        el("span", { class: "mono small", text: record.id }),
        el("div", { class: "small", text: `connector ${record.connector_id} · ${kwh(record.energy_kwh)} · since ${when(record.started_at || record.requested_at)} · customer ${record.customer_id ?? "—"}` })),
      record.state === "Started"
        ? el("button", { type: "button", class: "danger fixed", onclick: () => stopCharge(record.id) }, "Stop remotely")
        : null)));
  }

  async function stopCharge(recordId) {
    if (!confirm("Stop this charge now?")) return;
    try {
      await call(`/api/v1/operator/charging-sessions/${encodeURIComponent(recordId)}/stop`, { method: "POST" });
      say("The station accepted the stop; the record finishes when it reports the final meter.", { ok: true });
    } catch (error) {
      tell(error);
    }
  }

  async function command(action) {
    const id = encodeURIComponent(state.stationId);
    const [evseId, connectorId] = ($("#action-connector").value || "1:1").split(":").map(Number);
    const target = $("#availability-target").value;
    const requests = {
      "reset-soft": [`${STATIONS}/${id}/reset`, { type: "soft" }],
      "reset-hard": [`${STATIONS}/${id}/reset`, { type: "hard" }],
      unlock: [`${STATIONS}/${id}/unlock-connector`, { evse_id: evseId, connector_id: connectorId }],
      inoperative: [`${STATIONS}/${id}/availability`, availability("inoperative", target)],
      operative: [`${STATIONS}/${id}/availability`, availability("operative", target)],
      rotate: [`${STATIONS}/${id}/password`, {}],
    };
    if (action === "reset-hard" && !confirm("A hard reset interrupts any charge at once. Continue?")) return;
    if (action === "rotate" && !confirm("The station will need the new password to connect again. Continue?")) return;
    const [path, body] = requests[action];
    try {
      const answer = await call(path, { method: "POST", json: body });
      if (action === "rotate") {
        $("#new-password-value").textContent = answer.password;
        $("#new-password").hidden = false;
        say("Password rotated.", { ok: true });
      } else {
        say(`${answer.action}: the station answered ${answer.status}.`, { ok: ["Accepted", "Scheduled", "Unlocked"].includes(answer.status) });
      }
    } catch (error) {
      tell(error);
    }
  }

  function availability(kind, target) {
    if (!target) return { availability: kind };
    const [evseId, connectorId] = target.split(":").map(Number);
    return { availability: kind, evse_id: evseId, connector_id: connectorId };
  }

  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => command(button.dataset.action));
  }

  // -- charge detail records -------------------------------------------------------

  function recordQuery() {
    const form = new FormData($("#record-filters"));
    const params = new URLSearchParams();
    for (const [key, value] of form.entries()) {
      if (!value) continue;
      // datetime-local is the browser's local time: send it as an instant.
      params.set(key, key === "since" || key === "until" ? new Date(value).toISOString() : value);
    }
    return params;
  }

  async function loadRecords({ more = false } = {}) {
    const params = recordQuery();
    params.set("limit", 50);
    if (more && state.recordsBefore) params.set("before", state.recordsBefore);
    const page = await call(`${RECORDS}?${params}`);
    state.recordsBefore = page.next_before;
    $("#more-records").hidden = !page.next_before;
    const rows = page.items.map((r) => el("tr", { "data-record": r.id },
      el("td", { class: "mono small", text: r.id }),
      el("td", {}, el("span", { class: `badge ${r.state}`, text: r.state })),
      el("td", {}, el("a", { href: `#station/${encodeURIComponent(r.station_id)}`, text: r.station_id }), ` #${r.connector_id}`),
      el("td", { text: r.customer_id ?? "—" }),
      el("td", { text: r.energy_kwh === null ? "—" : kwh(r.energy_kwh) }),
      el("td", { text: when(r.started_at) }),
      el("td", { text: r.stopped_at ? `${when(r.stopped_at)} (${r.stop_reason || "?"})` : r.failure_reason || "—" }),
      el("td", { text: r.flags.join(", ") })));
    const body = $("#record-table tbody");
    if (more) body.append(...rows);
    else body.replaceChildren(...rows);
    if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted", text: "No record matches." })));
  }

  $("#record-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    say("");
    loadRecords().catch(tell);
  });
  $("#more-records").addEventListener("click", () => loadRecords({ more: true }).catch(tell));

  $("#export-csv").addEventListener("click", async () => {
    let response;
    try {
      response = await fetch(`${RECORDS}.csv?${recordQuery()}`, { headers: { Authorization: `Bearer ${state.token}` } });
    } catch (error) {
      say(friendly(new ApiError(0, null)));
      return;
    }
    if (!response.ok) {
      say(friendly(new ApiError(response.status, await response.json().catch(() => null))));
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: "charge-detail-records.csv" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });

  // -- registering a station ---------------------------------------------------------

  $("#register-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = Object.fromEntries(new FormData(event.target));
    const body = { id: form.id.trim(), security_profile: Number(form.security_profile) };
    if (form.name) body.name = form.name;
    if (form.latitude || form.longitude) {
      body.location = { latitude: Number(form.latitude), longitude: Number(form.longitude) };
    }
    try {
      const station = await call(STATIONS, { method: "POST", json: body });
      state.stations.set(station.id, station);
      $("#registered-password").textContent = station.password;
      $("#registered").hidden = false;
      say(`Station ${station.id} registered.`, { ok: true });
    } catch (error) {
      $("#registered").hidden = true;
      tell(error);
    }
  });

  // -- live updates: Server-Sent Events from /api/v1/operator/events ----------------

  const recordTimers = {};
  function soon(key, work, ms = 300) {
    if (recordTimers[key]) return;
    recordTimers[key] = setTimeout(() => {
      delete recordTimers[key];
      work();
    }, ms);
  }

  function onEvent(name, data) {
    if (name === "station.changed") refreshStation(data.station_id);
    const here = state.view === "station" && data.station_id === state.stationId;
    if (name === "station.event_recorded" && here) soon("events", () => loadEvents().catch(() => {}));
    if (name === "charge.changed" || name === "charges.expired") {
      if (state.view === "station" && (here || !data.station_id)) soon("open", () => loadOpenCharge().catch(() => {}));
      if (state.view === "records") soon("records", () => loadRecords().catch(() => {}), 1000);
    }
  }

  function setLive(on, text) {
    const live = $("#live");
    live.classList.toggle("on", on);
    live.textContent = text;
  }

  async function listen() {
    while (state.token) {
      const controller = new AbortController();
      state.stream = controller;
      try {
        const response = await fetch("/api/v1/operator/events", {
          headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
          signal: controller.signal,
        });
        if (response.status === 401) return logOut("That token is not (or no longer) valid.");
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        setLive(true, "live");
        // Whatever happened while we were not listening: read it all again.
        await loadStations();
        if (state.view === "station") loadStation().catch(() => {});
        await readEventStream(response, onEvent);
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      setLive(false, "reconnecting…");
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }

  // -- start ---------------------------------------------------------------------------

  async function begin() {
    route();
    setLive(false, "connecting…");
    try {
      await loadStations();
    } catch (error) {
      if (state.token) tell(error);
    }
    listen();
  }

  if (state.token) begin();
  else route();
})();
