// The callqueue console: pages over the REST API (openapi.yaml), with the stage's API key kept
// in this tab's session storage. Every answer is turned into words and tables; an error shows the
// API's Message, never its JSON.
"use strict";

const BASE = location.pathname.replace(/\/console(\/.*)?$/, "");
const KEY = "callqueue.apiKey";
const FORMATS = [".csv", ".json", ".jsonl", ".ndjson"];
// POST /jobs/plan carries the file as a JSON string in a body of at most MAX_BODY_BYTES
// (chalicelib/api/request_bodies.py); escaping grows it, so a file is planned up to 4.5 MB.
const MAX_BODY_BYTES = 5 * 1024 * 1024;
const MAX_PLAN_BYTES = 4.5 * 1024 * 1024;
const FINISHED = ["completed", "failed", "cancelled", "duplicate"];
const POLL_MS = 2000;
// How long the Job page waits for a job id it has not seen before saying so.
const GIVE_UP_MS = 60000;
const OUTCOME_WORDS = {
  sent: "Sent", failed: "Failed", unknown: "Unknown (may have been sent)",
  dead_lettered: "Could not be sent", suppressed: "Opted out", rejected: "Rejected (not sent)",
};
// Twilio's codes a row most often ends with (https://www.twilio.com/docs/api/errors).
const CODE_NAMES = {
  "20429": "too many requests", "21211": "invalid 'To' number",
  "21214": "'To' number cannot be reached", "21408": "no permission to send SMS to that region",
  "21610": "recipient unsubscribed (replied STOP)", "21612": "cannot route to this number",
  "21614": "'To' number is not a mobile number", "30003": "handset unreachable",
  "30005": "unknown destination handset", "30006": "landline or unreachable carrier",
  "30007": "filtered as spam by the carrier", "30008": "unknown error",
  cancelled: "the job was cancelled before the row was sent",
};

const $ = (id) => document.getElementById(id);
const state = { file: null, plan: null, poll: null, samples: [] };

class ApiError extends Error {
  constructor(status, message, lines) {
    super(message);
    this.status = status;
    this.lines = lines || [];
  }
}

// -- talking to the API ----------------------------------------------------------------------

async function api(method, path, body, contentType) {
  const headers = { "x-api-key": sessionStorage.getItem(KEY) || "" };
  if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
  const payload = body === undefined || contentType ? body : JSON.stringify(body);
  let response;
  try {
    response = await fetch(BASE + path, { method, headers, body: payload });
  } catch (error) {
    throw new ApiError(0, "The stage cannot be reached: check the network and try again.");
  }
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (response.ok) return data;
  if (response.status === 403) {
    sessionStorage.removeItem(KEY);
    throw new ApiError(403, "The API key was refused. Enter the stage's API key again.");
  }
  const message = (data && (data.Message || data.message)) || `The stage answered ${response.status}.`;
  const lines = (data && data.bad_lines || []).map((b) => `line ${b.line}: ${b.error}`);
  throw new ApiError(response.status, message, lines);
}

function showAlert(message, ok, lines) {
  const box = $("alert");
  box.replaceChildren(document.createTextNode(message));
  if (lines && lines.length) {
    const list = document.createElement("ul");
    lines.slice(0, 20).forEach((line) => list.append(el("li", line)));
    box.append(list);
  }
  box.classList.toggle("ok", Boolean(ok));
  box.hidden = false;
}

function clearAlert() { $("alert").hidden = true; }

function failed(error) {
  if (error instanceof ApiError) {
    showAlert(error.message, false, error.lines);
    if (error.status === 403) showPage("key");
  } else {
    showAlert("Something went wrong in the page: " + error.message);
  }
}

// -- small helpers ---------------------------------------------------------------------------

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells, header) {
  const tr = document.createElement("tr");
  cells.forEach((cell, i) => {
    const td = el(i === 0 && header ? "th" : "td");
    if (i === 0 && header) td.scope = "row";
    if (cell instanceof Node) td.append(cell); else td.textContent = cell === null ? "" : String(cell);
    if (typeof cell === "number") td.className = "num";
    tr.append(td);
  });
  return tr;
}

function facts(pairs) {
  const dl = el("dl", null, "facts");
  pairs.forEach(([name, value]) => {
    const div = el("div");
    div.append(el("dt", name), el("dd", value));
    dl.append(div);
  });
  return dl;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "not known yet";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function when(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleString() : "";
}

function money(cost) {
  const total = `${cost.currency} ${cost.total.toFixed(2)}`;
  return cost.unpriced_rows ? `${total} (+${cost.unpriced_rows} rows without a price)` : total;
}

// -- pages -----------------------------------------------------------------------------------

function showPage(name) {
  document.querySelectorAll("main > section").forEach((s) => { s.hidden = s.id !== `page-${name}`; });
  document.querySelectorAll("nav a").forEach((a) => {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
}

function route() {
  nextPoll();
  clearAlert();
  // A message for the page being opened (a retry names the job it made).
  if (state.notice) { showAlert(state.notice, true); state.notice = null; }
  if (!sessionStorage.getItem(KEY)) { showPage("key"); $("api-key").focus(); return; }
  const [, page, id] = location.hash.split("/");
  if (page === "job" && id) { showPage("job"); openJob(decodeURIComponent(id)); return; }
  if (page === "jobs") { showPage("jobs"); listJobs(); return; }
  if (page === "optouts") { showPage("optouts"); listOptouts(); return; }
  showPage("new");
}

// -- wiring the page -------------------------------------------------------------------------

function init() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    $("api-key").value = "";
    if (!location.hash || location.hash === "#/key") location.hash = "#/new"; else route();
  });
  $("forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY); route(); });
  $("file").addEventListener("change", () => chooseFile($("file").files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    chooseFile(event.dataTransfer.files[0]);
  });
  $("new-form").addEventListener("submit", checkPlan);
  $("start").addEventListener("click", startJob);
  $("test-send").addEventListener("submit", sendTest);
  $("jobs-refresh").addEventListener("click", listJobs);
  ["pause", "resume", "cancel", "retry", "retry-undelivered"].forEach((a) => $(`job-${a}`).addEventListener("click", () => steer(a)));
  $("optout-search").addEventListener("input", filterOptouts);
  $("optout-export").addEventListener("click", exportOptouts);
  $("optout-add").addEventListener("submit", (event) => {
    event.preventDefault();
    const reason = $("optout-reason").value.trim();
    const line = `number,reason\n${csvCell($("optout-number").value.trim())},${csvCell(reason || "added in the console")}\n`;
    importOptouts(line, "Added");
  });
  $("optout-import").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("optout-file").files[0];
    if (!file) { showAlert("Choose a .csv file of numbers first."); return; }
    importOptouts(await file.text(), file.name);
  });
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", init);
