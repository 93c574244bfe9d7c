// What both pages share: calling the API, problems in words, the SVG map, formats.
// Plain browser JavaScript: no build step, no library, nothing from another origin.
"use strict";

const Csms = (() => {
  const SVG = "http://www.w3.org/2000/svg";

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  // One call to the JSON API. Answers the parsed body; throws ApiError.
  async function api(path, { method = "GET", token, json, form, headers = {} } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers } };
    if (token) init.headers.Authorization = `Bearer ${token}`;
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (form !== undefined) {
      init.body = new URLSearchParams(form);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(0, null);
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (error) {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // -- problems in words a driver understands ----------------------------------

  const BY_TITLE = {
    "Station unavailable":
      "This station is offline or out of order right now. Please choose another one.",
    "Station not connected": "This station is offline right now. Please choose another one.",
    "Connector busy":
      "That connector is in use or not ready. Choose another connector or station.",
    "No such connector": "That connector does not exist here. Please pick one from the list.",
    "Charging session not found": "We could not find that charge.",
    "Charge Detail Record not found": "We could not find that charge.",
    "Car not found": "We could not find that car; it may have been removed.",
    "Station not found": "We could not find that station.",
    "Email already registered":
      "An account with this email already exists. Log in instead, or use another email.",
    "Plate already registered": "You already have a car with this number plate.",
    "No usable id token":
      "Your charging card is blocked or expired, so a charge cannot start. Please contact us.",
    "Idempotency key reused": "That request was already used for another charge. Please try again.",
    "Station did not answer": "The station did not answer in time. Please try again.",
  };

  const FIELD_NAMES = {
    email: "the email address", username: "the email address", password: "the password",
    name: "your name", make: "the make", model: "the model", plate: "the number plate",
    battery_capacity_kwh: "the battery size", connector_type: "the connector type",
    lat: "the latitude", lon: "the longitude", radius_km: "the search radius",
    latitude: "the latitude", longitude: "the longitude", id: "the station id",
    car_id: "the car", station_id: "the station",
  };

  function describeInvalid(errors) {
    const parts = (errors || []).map((error) => {
      const field = [...(error.location || [])].reverse().find((part) => typeof part === "string"
        && !["body", "query", "path"].includes(part));
      const what = FIELD_NAMES[field] || field || "the form";
      let message = String(error.message || "").replace(/^Value error, /, "");
      let found = message.match(/at least (\d+) characters?/);
      if (found) message = `it needs at least ${found[1]} characters`;
      else if ((found = message.match(/at most (\d+) characters?/))) {
        message = `it may have at most ${found[1]} characters`;
      } else if (/email/i.test(message)) message = "that does not look like an email address";
      else if (/Field required/i.test(message)) message = "it is required";
      else message = message.charAt(0).toLowerCase() + message.slice(1);
      return `${what}: ${message}`;
    });
    return parts.length ? `Please check ${parts.join("; ")}.` : "Please check the form.";
  }

  // A sentence for a failed call. `overrides` maps a status to a sentence.
  function friendly(error, overrides = {}) {
    if (!(error instanceof ApiError)) return "Something went wrong in this page. Please reload it.";
    if (overrides[error.status]) return overrides[error.status];
    const problem = error.problem;
    if (error.status === 0) {
      return "We cannot reach the charging service. Check your connection and try again.";
    }
    if (problem.title === "Charge cannot be stopped") {
      return /Pending/.test(problem.detail || "")
        ? "This charge has not started yet, so it cannot be stopped. Wait a moment and try again."
        : "The station did not accept the stop request. Try again, or end the charge at the station.";
    }
    if (BY_TITLE[problem.title]) return BY_TITLE[problem.title];
    if (error.status === 422 && problem.errors) return describeInvalid(problem.errors);
    if (error.status === 401) return "Your session has ended. Please log in again.";
    if (error.status === 404) return "We could not find what you asked for.";
    if (error.status === 429) return "Too many attempts. Please wait a minute and try again.";
    if (error.status >= 500) return "Something went wrong on our side. Please try again in a moment.";
    return problem.detail || problem.title || "That did not work. Please try again.";
  }

  // -- building the page safely (text, never HTML from data) -------------------

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attributes = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === undefined || value === null) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function show(node, message, { ok = false } = {}) {
    node.textContent = message;
    node.classList.toggle("ok", ok);
    node.hidden = !message;
    if (message) node.scrollIntoView({ block: "nearest" });
  }

  // -- formats ------------------------------------------------------------------

  function kwh(energyKwh) {
    return `${(energyKwh || 0).toFixed(2)} kWh`;
  }

  function distance(km) {
    return km < 1 ? `${Math.round(km * 1000)} m` : `${km.toFixed(km < 10 ? 1 : 0)} km`;
  }

  function duration(seconds) {
    const total = Math.max(0, Math.floor(seconds));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const rest = total % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return hours ? `${hours}:${pad(minutes)}:${pad(rest)}` : `${minutes}:${pad(rest)}`;
  }

  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function ago(iso) {
    if (!iso) return "never";
    const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    if (seconds < 5) return "just now";
    if (seconds < 90) return `${Math.round(seconds)} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
    return when(iso);
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  // -- the map ------------------------------------------------------------------
  // TODO: no streets under the stations; map tiles would need the pages'
  // Content-Security-Policy opened to a tile server.

  const KM_PER_DEGREE = 111.32;
  const STATE_COLOURS = {
    Available: "#1a8f4c", Charging: "#1f6fd1", Unavailable: "#7b8794", offline: "#c2570c",
  };

  // Draw `points` ({id, label, lat, lon, state, offline}) and `here` ({lat, lon})
  // into an <svg>, placed by an equirectangular projection around their centre:
  // right relative to each other at city scale, with a scale bar in km.
  function drawMap(node, { points = [], here = null, chosen = null, onChoose = null } = {}) {
    // The drawing's size in user units: the page's CSS scales it, text with it.
    const WIDTH = Number(node.dataset.width || 640);
    const HEIGHT = Number(node.dataset.height || 400);
    node.replaceChildren();
    node.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
    const all = [...points, ...(here ? [here] : [])];
    if (!all.length) {
      node.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle" },
        "Nothing to show on the map yet."));
      return;
    }
    const meanLat = all.reduce((sum, p) => sum + p.lat, 0) / all.length;
    const cosLat = Math.cos((meanLat * Math.PI) / 180) || 1;
    const xs = all.map((p) => p.lon * cosLat);
    const ys = all.map((p) => p.lat);
    // At least ~1 km across, so one station is not a dot in a void.
    const minSpan = 1 / KM_PER_DEGREE;
    let [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const spanX = Math.max(maxX - minX, minSpan);
    const spanY = Math.max(maxY - minY, minSpan);
    const margin = 40;
    const scale = Math.min((WIDTH - 2 * margin) / spanX, (HEIGHT - 2 * margin) / spanY);
    const centreX = (minX + maxX) / 2;
    const centreY = (minY + maxY) / 2;
    const project = (p) => [
      WIDTH / 2 + (p.lon * cosLat - centreX) * scale,
      HEIGHT / 2 - (p.lat - centreY) * scale,
    ];

    // A grid every "nice" distance, and a scale bar of the same length.
    const kmPerPixel = KM_PER_DEGREE / scale;
    const step = niceStep(kmPerPixel * 120);
    const stepPixels = step / kmPerPixel;
    const grid = svg("g", { class: "grid" });
    for (let x = (WIDTH / 2) % stepPixels; x < WIDTH; x += stepPixels) {
      grid.append(svg("line", { x1: x, y1: 0, x2: x, y2: HEIGHT }));
    }
    for (let y = (HEIGHT / 2) % stepPixels; y < HEIGHT; y += stepPixels) {
      grid.append(svg("line", { x1: 0, y1: y, x2: WIDTH, y2: y }));
    }
    node.append(svg("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, fill: "#e9eef2" }), grid);
    node.append(svg("g", { class: "scale" },
      svg("line", { x1: 16, y1: HEIGHT - 16, x2: 16 + stepPixels, y2: HEIGHT - 16 }),
      svg("text", { x: 16, y: HEIGHT - 22 }, step < 1 ? `${Math.round(step * 1000)} m` : `${step} km`)));
    node.append(svg("text", { x: WIDTH - 20, y: 24, "text-anchor": "middle" }, "N ↑"));

    if (here) {
      const [x, y] = project(here);
      node.append(svg("g", { class: "here" },
        svg("circle", { cx: x, cy: y, r: 7 }),
        svg("text", { x: x + 10, y: y + 4 }, "you"),
        svg("title", {}, "Where you are")));
    }
    for (const point of points) {
      const [x, y] = project(point);
      // Labels go left of the dot near the right edge, so they stay inside.
      const leftwards = x > WIDTH * 0.7;
      const colour = STATE_COLOURS[point.offline ? "offline" : point.state] || STATE_COLOURS.Unavailable;
      const group = svg("g", {
        class: `station${point.id === chosen ? " chosen" : ""}`,
        "data-station": point.id, tabindex: onChoose ? 0 : null, role: onChoose ? "button" : null,
      },
      svg("circle", { cx: x, cy: y, r: 9, fill: colour }),
      svg("text", { x: leftwards ? x - 12 : x + 12, y: y + 4, "text-anchor": leftwards ? "end" : "start" },
        point.label || point.id),
      svg("title", {}, `${point.label || point.id}: ${point.offline ? "offline while charging" : point.state}`));
      if (onChoose) {
        group.addEventListener("click", () => onChoose(point.id));
        group.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") onChoose(point.id);
        });
      }
      node.append(group);
    }
    // A legend of the states on this map only, top left.
    const shown = new Set(points.map((p) => (p.offline ? "offline" : p.state)));
    const legend = svg("g", { class: "legend" });
    let legendX = 16;
    for (const [state, colour] of Object.entries(STATE_COLOURS)) {
      if (!shown.has(state)) continue;
      const label = state === "offline" ? "offline, charging" : state;
      legend.append(svg("circle", { cx: legendX + 5, cy: 18, r: 5, fill: colour }),
        svg("text", { x: legendX + 14, y: 22 }, label));
      legendX += label.length * 7 + 30;
    }
    node.append(legend);
  }

  function niceStep(km) {
    const power = 10 ** Math.floor(Math.log10(km));
    for (const factor of [1, 2, 5, 10]) {
      if (factor * power >= km) return +(factor * power).toPrecision(2);
    }
    return 10 * power;
  }

  // -- Server-Sent Events over fetch (so the token goes in a header) ------------

  // Calls onEvent(name, data) for each message; resolves when the stream ends.
  async function readEventStream(response, onEvent) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length) {
          try {
            onEvent(name, JSON.parse(data.join("\n")));
          } catch (error) {
            console.error("event not handled", name, error);
          }
        }
      }
    }
  }

  return {
    ApiError, api, friendly, el, svg, show, kwh, distance, duration, when, ago, newKey,
    drawMap, readEventStream,
  };
})();
