// The customer web app: log in, cars, find a station, charge, history.
"use strict";

(() => {
  const { api, friendly, el, show, kwh, distance, duration, when, newKey, drawMap } = Csms;
  const $ = (selector) => document.querySelector(selector);
  const TOKEN_KEY = "csms.customer.token";
  const CHARGE_KEY = "csms.customer.charge";
  const FREE_STATUSES = new Set(["Available", "Preparing"]);
  // TODO: the live charge polls once a second; a customer event stream would
  // save one request a second per open page.
  const POLL_MS = 1000;
  const NEARBY_REFRESH_MS = 10000;
  const STATE_WORDS = {
    Pending: "Waiting for the station to start…",
    Started: "Charging",
    Finished: "Finished",
    Failed: "Could not start",
  };

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    view: null,
    cars: [],
    found: [],
    here: null,
    chosen: null,
    recordId: sessionStorage.getItem(CHARGE_KEY),
    pollTimer: null,
    nearbyTimer: null,
    lastReading: null,
  };
  const message = $("#message");
  const say = (text, options) => show(message, text, options);

  async function call(path, options = {}) {
    try {
      return await api(path, { token: state.token, ...options });
    } catch (error) {
      if (error.status === 401 && state.token) logOut("Your session has ended. Please log in again.");
      throw error;
    }
  }

  // -- views ------------------------------------------------------------------

  function go(view) {
    state.view = view;
    for (const section of document.querySelectorAll("main > section")) {
      section.hidden = section.id !== `view-${view}`;
    }
    for (const button of document.querySelectorAll("#nav button")) {
      if (button.dataset.view === view) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
    $("#nav").hidden = !state.token;
    const load = { cars: loadCars, records: loadRecords, account: loadAccount, charge: watchCharge };
    if (load[view]) load[view]().catch((error) => say(friendly(error)));
    clearInterval(state.nearbyTimer);
    if (view === "find" && state.here) {
      state.nearbyTimer = setInterval(() => search(state.here, { quiet: true }), NEARBY_REFRESH_MS);
    }
  }

  for (const button of document.querySelectorAll("#nav button")) {
    button.addEventListener("click", () => {
      say("");
      go(button.dataset.view);
    });
  }

  // -- logging in and out -----------------------------------------------------

  async function logIn(email, password) {
    const answer = await api("/api/v1/auth/token", { method: "POST", form: { username: email, password } });
    state.token = answer.access_token;
    sessionStorage.setItem(TOKEN_KEY, state.token);
  }

  function logOut(reason = "") {
    state.token = null;
    state.recordId = null;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(CHARGE_KEY);
    clearTimeout(state.pollTimer);
    go("welcome");
    say(reason, { ok: !reason.includes("ended") });
  }

  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      await logIn(form.get("username"), form.get("password"));
      event.target.reset();
      say("");
      await start();
    } catch (error) {
      say(friendly(error, { 401: "That email and password do not match an account. Please try again." }));
    }
  });

  $("#register-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = Object.fromEntries(new FormData(event.target));
    try {
      await api("/api/v1/customers", { method: "POST", json: form });
      await logIn(form.email, form.password);
      event.target.reset();
      say("Welcome! Add your car, then find a station.", { ok: true });
      await start("cars");
    } catch (error) {
      say(friendly(error));
    }
  });

  $("#logout").addEventListener("click", () => logOut("You are logged out."));

  // -- cars -------------------------------------------------------------------

  async function loadCars() {
    state.cars = await call("/api/v1/cars");
    const list = $("#car-list");
    list.replaceChildren(...state.cars.map((car) => el("li", {},
      el("div", { class: "grow" },
        el("div", { class: "name", text: `${car.make} ${car.model}` }),
        el("div", { class: "small muted", text: [car.plate, car.connector_type].filter(Boolean).join(" · ") })),
      el("button", { type: "button", class: "secondary", onclick: () => removeCar(car) }, "Remove"))));
    if (!state.cars.length) list.append(el("li", { class: "muted", text: "No car yet: add one below." }));
    return state.cars;
  }

  async function removeCar(car) {
    if (!confirm(`Remove ${car.make} ${car.model} (${car.plate})?`)) return;
    try {
      await call(`/api/v1/cars/${car.id}`, { method: "DELETE" });
      await loadCars();
    } catch (error) {
      say(friendly(error));
    }
  }

  $("#car-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = Object.fromEntries(new FormData(event.target));
    if (!form.connector_type) delete form.connector_type;
    try {
      const car = await call("/api/v1/cars", { method: "POST", json: form });
      event.target.reset();
      await loadCars();
      say(`${car.make} ${car.model} added. Now find a station.`, { ok: true });
    } catch (error) {
      say(friendly(error));
    }
  });

  // -- finding a station --------------------------------------------------------

  $("#locate").addEventListener("click", () => {
    if (!navigator.geolocation) {
      say("This browser cannot tell us where you are. Type your coordinates instead.");
      return;
    }
    say("");
    navigator.geolocation.getCurrentPosition(
      (position) => {
        const here = { lat: position.coords.latitude, lon: position.coords.longitude };
        $("#search-form").lat.value = here.lat.toFixed(5);
        $("#search-form").lon.value = here.lon.toFixed(5);
        search(here);
      },
      () => say("We could not get your location. Allow it in your browser, or type your coordinates."),
      { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 },
    );
  });

  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const here = { lat: Number(form.lat.value.replace(",", ".")), lon: Number(form.lon.value.replace(",", ".")) };
    if (!Number.isFinite(here.lat) || !Number.isFinite(here.lon) || Math.abs(here.lat) > 90 || Math.abs(here.lon) > 180) {
      say("Please type a latitude between -90 and 90 and a longitude between -180 and 180.");
      return;
    }
    say("");
    search(here);
  });

  async function search(here, { quiet = false } = {}) {
    const radius = Number($("#search-form").radius_km.value.replace(",", ".")) || 5;
    state.here = here;
    try {
      const params = new URLSearchParams({ lat: here.lat, lon: here.lon, radius_km: radius });
      const answer = await api(`/api/v1/stations/nearby?${params}`);
      state.found = answer.items;
    } catch (error) {
      if (!quiet) say(friendly(error));
      return;
    }
    if (!quiet) {
      clearInterval(state.nearbyTimer);
      state.nearbyTimer = setInterval(() => search(state.here, { quiet: true }), NEARBY_REFRESH_MS);
    }
    renderFound();
  }

  function renderFound() {
    $("#results").hidden = false;
    const list = $("#station-list");
    if (!state.found.length) {
      list.replaceChildren(el("li", { class: "muted", text: "No station within this distance. Try a larger one." }));
    } else {
      list.replaceChildren(...state.found.map((station) => {
        const free = station.connectors.filter((c) => c.connector_id !== 0 && FREE_STATUSES.has(c.status)).length;
        const outlets = station.connectors.filter((c) => c.connector_id !== 0).length;
        return el("li", {
          class: `choosable${station.id === state.chosen ? " chosen" : ""}`,
          "data-station": station.id, tabindex: 0,
          onclick: () => choose(station.id),
          onkeydown: (event) => { if (event.key === "Enter") choose(station.id); },
        },
        el("div", { class: "grow" },
          el("div", { class: "name", text: station.name || station.id }),
          el("div", { class: "small muted", text: `${distance(station.distance_km)} · ${free} of ${outlets} connectors free · ${station.id}` })),
        el("span", { class: `badge ${station.state}`, text: station.state }));
      }));
    }
    drawMap($("#find-map"), {
      points: state.found.map((s) => ({ id: s.id, label: s.name || s.id, lat: s.location.latitude, lon: s.location.longitude, state: s.state })),
      here: state.here,
      chosen: state.chosen,
      onChoose: choose,
    });
    if (state.chosen) renderStart();
  }

  async function choose(stationId) {
    state.chosen = stationId;
    renderFound();
    if (!state.cars.length) await loadCars().catch(() => {});
    renderStart();
    $("#start-form").scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  function renderStart() {
    const station = state.found.find((s) => s.id === state.chosen);
    const form = $("#start-form");
    if (!station) {
      form.hidden = true;
      return;
    }
    form.hidden = false;
    $("#start-title").textContent = `Charge at ${station.name || station.id}`;
    $("#start-where").textContent = `${distance(station.distance_km)} away · ${station.state}`;
    const carSelect = $("#start-car");
    const chosenCar = carSelect.value;
    carSelect.replaceChildren(...state.cars.map((car) =>
      el("option", { value: car.id, text: `${car.make} ${car.model} (${car.plate})` })));
    if (chosenCar) carSelect.value = chosenCar;
    const connectorSelect = $("#start-connector");
    const chosenConnector = connectorSelect.value;
    const outlets = station.connectors.filter((c) => c.connector_id !== 0);
    connectorSelect.replaceChildren(...outlets.map((c) => el("option", {
      value: `${c.evse_id}:${c.connector_id}`,
      disabled: !FREE_STATUSES.has(c.status),
      text: `Connector ${c.evse_id}${c.connector_id > 1 ? `/${c.connector_id}` : ""} — ${FREE_STATUSES.has(c.status) ? "free" : c.status}`,
    })));
    const firstFree = outlets.find((c) => FREE_STATUSES.has(c.status));
    if (chosenConnector && outlets.some((c) => `${c.evse_id}:${c.connector_id}` === chosenConnector && FREE_STATUSES.has(c.status))) {
      connectorSelect.value = chosenConnector;
    } else if (firstFree) {
      connectorSelect.value = `${firstFree.evse_id}:${firstFree.connector_id}`;
    }
    const button = $("#start-button");
    if (!state.cars.length) {
      button.disabled = true;
      button.textContent = "Add a car first (Cars)";
    } else if (station.state === "Unavailable" || !firstFree) {
      button.disabled = true;
      button.textContent = station.state === "Unavailable" ? "This station is out of service" : "No free connector";
    } else {
      button.disabled = false;
      button.textContent = "Start charging";
    }
  }

  $("#start-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const [evseId, connectorId] = $("#start-connector").value.split(":").map(Number);
    const button = $("#start-button");
    button.disabled = true;
    button.textContent = "Asking the station…";
    try {
      const record = await call("/api/v1/charging-sessions", {
        method: "POST",
        headers: { "Idempotency-Key": newKey() },
        json: { car_id: Number($("#start-car").value), station_id: state.chosen, evse_id: evseId, connector_id: connectorId },
      });
      follow(record.id);
      say("");
      go("charge");
    } catch (error) {
      say(friendly(error));
      renderStart();
    }
  });

  // -- the live charge ------------------------------------------------------------

  function follow(recordId) {
    state.recordId = recordId;
    state.lastReading = null;
    sessionStorage.setItem(CHARGE_KEY, recordId);
  }

  async function watchCharge() {
    clearTimeout(state.pollTimer);
    if (!state.recordId) {
      // Pick up a charge started in another tab or before a reload.
      const page = await call("/api/v1/charge-detail-records?limit=5");
      const open = page.items.find((r) => r.state === "Pending" || r.state === "Started");
      if (open) follow(open.id);
    }
    if (!state.recordId) {
      $("#charge-none").hidden = false;
      $("#charge-live").hidden = true;
      return;
    }
    await poll();
  }

  async function poll() {
    if (state.view !== "charge" || !state.recordId) return;
    let record;
    try {
      record = await call(`/api/v1/charging-sessions/${encodeURIComponent(state.recordId)}`);
    } catch (error) {
      say(friendly(error));
      state.pollTimer = setTimeout(poll, POLL_MS * 3);
      return;
    }
    renderCharge(record);
    if (record.state === "Pending" || record.state === "Started") {
      state.pollTimer = setTimeout(poll, POLL_MS);
    } else {
      sessionStorage.removeItem(CHARGE_KEY);
    }
  }

  function renderCharge(record) {
    $("#charge-none").hidden = true;
    $("#charge-live").hidden = false;
    const badge = $("#charge-state");
    badge.className = `badge ${record.state}`;
    badge.textContent = STATE_WORDS[record.state] || record.state;
    const car = state.cars.find((c) => c.id === record.car_id);
    $("#charge-where").textContent = `at ${record.station_id}, connector ${record.connector_id}${car ? ` · ${car.make} ${car.model}` : ""}`;
    let status = "";
    if (record.state === "Pending") status = "The station is getting ready. This takes a few seconds.";
    if (record.state === "Started") status = `Started ${when(record.started_at)}. Energy updates as the station reports it.`;
    if (record.state === "Finished") status = `Finished ${when(record.stopped_at)}. You can unplug your car. It is in your history.`;
    if (record.state === "Failed") status = record.failure_reason || "The station did not start the charge.";
    $("#charge-status").textContent = status;
    $("#charge-energy").textContent = (record.energy_kwh || 0).toFixed(2);
    const end = record.stopped_at ? new Date(record.stopped_at) : new Date();
    const seconds = record.started_at ? (end - new Date(record.started_at)) / 1000 : 0;
    $("#charge-duration").textContent = duration(seconds);
    $("#stop-button").hidden = record.state !== "Started";
    $("#stop-button").disabled = false;
    $("#stop-button").textContent = "Stop charging";
  }

  $("#stop-button").addEventListener("click", async () => {
    const button = $("#stop-button");
    button.disabled = true;
    button.textContent = "Stopping…";
    try {
      await call(`/api/v1/charging-sessions/${encodeURIComponent(state.recordId)}/stop`, { method: "POST" });
      say("The station is stopping the charge.", { ok: true });
    } catch (error) {
      say(friendly(error));
      button.disabled = false;
      button.textContent = "Stop charging";
    }
  });

  // -- history and account --------------------------------------------------------

  async function loadRecords() {
    const page = await call("/api/v1/charge-detail-records?limit=50");
    const list = $("#record-list");
    list.replaceChildren(...page.items.map((record) => {
      const seconds = record.started_at && record.stopped_at
        ? (new Date(record.stopped_at) - new Date(record.started_at)) / 1000 : null;
      const details = [
        when(record.started_at || record.requested_at),
        seconds !== null ? duration(seconds) : null,
        record.stop_reason ? `stopped: ${record.stop_reason}` : null,
        record.failure_reason,
      ].filter(Boolean).join(" · ");
      return el("li", { "data-record": record.id },
        el("div", { class: "grow" },
          el("div", { class: "name", text: `${record.station_id} · ${kwh(record.energy_kwh)}` }),
          el("div", { class: "small muted", text: details })),
        el("span", { class: `badge ${record.state}`, text: record.state }));
    }));
    if (!page.items.length) list.append(el("li", { class: "muted", text: "No charges yet." }));
  }

  async function loadAccount() {
    const [me, tokens] = await Promise.all([call("/api/v1/me"), call("/api/v1/id-tokens")]);
    $("#account-who").textContent = `${me.name} · ${me.email}`;
    $("#token-list").replaceChildren(...tokens.map((token) => el("li", {},
      el("span", { class: "mono grow", text: token.value }),
      el("span", { class: `badge ${token.blocked ? "Unavailable" : "Available"}`, text: token.blocked ? "blocked" : "active" }),
      token.expires_at ? el("span", { class: "small muted", text: `until ${when(token.expires_at)}` }) : null)));
  }

  // -- start ----------------------------------------------------------------------

  async function start(view = null) {
    if (!state.token) {
      go("welcome");
      return;
    }
    try {
      await loadCars();
    } catch (error) {
      if (!state.token) return;
      say(friendly(error));
    }
    go(view || (state.recordId ? "charge" : "find"));
  }

  start();
})();
