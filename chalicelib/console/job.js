// The console's Job and Opt-outs pages (console.js holds the helpers they use).
"use strict";

// -- Job -------------------------------------------------------------------------------------

function openJob(id) {
  state.job = null;
  state.samples = [];
  state.errorsShown = false;
  state.openedAt = Date.now();
  $("job-id").textContent = id;
  $("job-body").hidden = true;
  $("job-waiting").hidden = true;
  $("job-errors").replaceChildren(el("p", "Shown once every row has its outcome."));
  pollJob(id, nextPoll());
}

// One poll loop at a time: each start takes a new generation, and a loop whose generation is
// not the latest (or whose job's page was left) stops at its next step.
function nextPoll() {
  clearTimeout(state.poll);
  state.pollGen = (state.pollGen || 0) + 1;
  return state.pollGen;
}

function polling(id, gen) {
  return gen === state.pollGen && location.hash === `#/job/${encodeURIComponent(id)}`;
}

// A job not seen yet: wait for it, up to GIVE_UP_MS after the page opened.
function awaitJob(id, gen) {
  if (Date.now() - state.openedAt < GIVE_UP_MS) {
    $("job-waiting").hidden = false;
    state.poll = setTimeout(() => pollJob(id, gen), POLL_MS);
    return;
  }
  $("job-waiting").hidden = true;
  showAlert(`No job ${id} appeared within a minute: check the job id, or find the job on the Jobs page.`);
}

async function pollJob(id, gen) {
  let job;
  try {
    // A job just uploaded exists once its file is read: until the list shows it, wait
    // (asking for it by id would be a 404 each time).
    if (state.awaiting === id) {
      const { jobs } = await api("GET", "/jobs?limit=20");
      if (!polling(id, gen)) return;
      if (!jobs.some((j) => j.job_id === id)) { awaitJob(id, gen); return; }
      state.awaiting = null;
    }
    job = await api("GET", `/jobs/${encodeURIComponent(id)}`);
  } catch (error) {
    if (!polling(id, gen)) return;
    if (error.status === 404 && !state.job) awaitJob(id, gen); else failed(error);
    return;
  }
  if (!polling(id, gen)) return;
  renderJob(job);
  if (!FINISHED.includes(job.state)) state.poll = setTimeout(() => pollJob(id, gen), POLL_MS);
}

function renderJob(job) {
  state.job = job;
  $("job-waiting").hidden = true;
  $("job-body").hidden = false;
  $("job-title").textContent = `Job ${job.key.split("/").pop()}`;
  $("job-state").textContent = job.state;
  const notes = [];
  if (job.error) notes.push(job.error);
  if (job.stalled) notes.push(`stalled: ${job.stalled.reason}`);
  if (job.waiting_for) notes.push(`waiting for its ${job.waiting_for}` + (job.next_window ? ` (${job.next_window})` : ""));
  if (job.eta_seconds !== null && job.eta_seconds !== undefined) notes.push(`last row due in ${duration(job.eta_seconds)}`);
  $("job-note").textContent = notes.join("; ");
  const counts = job.counts;
  const settled = Object.values(counts).reduce((a, b) => a + b, 0);
  const total = Math.max(job.rows, settled, 1);
  $("job-progress").max = total;
  $("job-progress").value = settled;
  $("job-progress-text").textContent = `${settled} of ${job.rows} rows have their outcome` + (job.pending ? `; ${job.pending} to go` : "");
  const body = $("job-counts").querySelector("tbody");
  body.replaceChildren(...Object.entries(counts).map(([name, n]) => row([OUTCOME_WORDS[name] || name, n], true)));
  const account = job.rate.account_cps ? ` (the account's limit: ${job.rate.account_cps})` : "";
  $("job-rate").textContent = `${job.rate.current_cps} calls a second now; target ${job.rate.target_cps}${account}.`;
  state.samples.push(job.rate.current_cps);
  drawChart(state.samples.slice(-60), job.rate.target_cps, job.rate.account_cps);
  const finished = FINISHED.includes(job.state);
  ["job-pause", "job-resume", "job-cancel"].forEach((b) => { $(b).hidden = finished; });
  const retriable = ["completed", "cancelled"].includes(job.state);
  $("job-retry").hidden = !(retriable && (counts.failed || counts.dead_lettered));
  $("job-retry-undelivered").hidden = !(retriable && notDelivered(job.delivery) > 0);
  renderDelivery(job);
  renderDownloads(job);
  if (job.links.outcomes_csv && !state.errorsShown) {
    state.errorsShown = true;
    showErrors(job.links.outcomes_csv);
  }
}

// The final statuses of docs/outcomes.md in words; NOT_DELIVERED are the ones a retry of
// `undelivered` sends again (chalicelib.core.delivery.NOT_DELIVERED).
const DELIVERY_WORDS = {
  messages: {
    delivered: "Delivered to the handset", read: "Read by the recipient (WhatsApp)",
    undelivered: "Not delivered by the carrier", failed: "Could not be sent by Twilio",
    canceled: "Cancelled before its time", pending: "No final status yet",
  },
  calls: {
    completed: "Answered", answered_by_machine: "Answered by a machine", busy: "Busy",
    "no-answer": "No answer", failed: "Could not be placed", canceled: "Cancelled",
    pending: "No final status yet",
  },
};
const DELIVERY_API_WORDS = { messages: "Messages", calls: "Calls" };
const NOT_DELIVERED = { messages: ["undelivered", "failed"], calls: ["busy", "no-answer", "failed"] };

function notDelivered(delivery) {
  return Object.entries(NOT_DELIVERED).reduce(
    (sum, [api, names]) => sum + names.reduce((n, name) => n + ((delivery || {})[api] || {})[name] || 0, 0), 0);
}

function renderDelivery(job) {
  const delivery = job.delivery || {};
  const rows = [];
  Object.entries(delivery).forEach(([api, statuses]) => {
    const words = DELIVERY_WORDS[api] || {};
    Object.entries(statuses).forEach(([name, n]) => {
      rows.push(row([`${DELIVERY_API_WORDS[api] || api}: ${words[name] || name}`, n], true));
    });
  });
  $("job-delivery").querySelector("tbody").replaceChildren(...rows);
  const codes = Object.entries(job.delivery_error_codes || {}).map(([c, n]) => `${c} (${CODE_NAMES[c] || "see twilio.com/docs/api/errors/" + c}): ${n}`);
  $("job-delivery-note").textContent = !rows.length
    ? "No row has been sent yet."
    : codes.length ? `Not delivered, by error code: ${codes.join("; ")}.` : "";
}

// The job's rate over the last polls, under two dashed lines labelled in words: the job's target
// and the account's limit, which all its jobs share. The label says the same for screen readers.
function drawChart(samples, target, account) {
  const svg = $("job-chart");
  const ns = "http://www.w3.org/2000/svg";
  const top = Math.max(target, account || 0, ...samples, 1) * 1.1;
  const y = (v) => (80 - (v / top) * 70).toFixed(1);
  const make = (name, attrs, text) => {
    const node = document.createElementNS(ns, name);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
    if (text) node.textContent = text;
    return node;
  };
  // The target's label at the right end, the account's at the left: equal rates (one job using
  // the whole account) draw one line, and the two labels never overlap.
  const marks = [[target, "target", `job target ${target}/s`, 298, "end"]];
  if (account) marks.push([account, "account", `account limit ${account}/s`, 2, "start"]);
  const lines = marks.flatMap(([v, cls, words, x, anchor]) => [
    make("line", { x1: 0, x2: 300, y1: y(v), y2: y(v), class: cls }),
    make("text", { x, y: Math.max(Number(y(v)) - 2, 7), class: `label ${cls}`, "text-anchor": anchor, "aria-hidden": "true" }, words),
  ]);
  const path = make("polyline", { class: "current" });
  const step = samples.length > 1 ? 300 / (samples.length - 1) : 0;
  path.setAttribute("points", samples.map((v, i) => `${(i * step).toFixed(1)},${y(v)}`).join(" "));
  svg.setAttribute("aria-label", `Calls per second over time: ${samples.at(-1) ?? 0} now, against the job target of ${target}` + (account ? ` and the account limit of ${account}` : ""));
  svg.replaceChildren(...lines, path);
}

function renderDownloads(job) {
  const list = $("job-downloads");
  list.replaceChildren();
  [["outcomes_csv", "outcomes.csv", "Outcomes"], ["rejects_csv", "rejects.csv", "Rejected rows"]].forEach(([link, name, words]) => {
    if (!job.links[link]) return;
    const button = el("button", `${words} (${name})`);
    button.type = "button";
    button.id = `download-${link}`;
    button.addEventListener("click", () => download(job.links[link], `${job.job_id}-${name}`));
    const item = el("li");
    item.append(button);
    list.append(item);
  });
  if (!list.children.length) list.append(el("li", "The reports are ready once the file is read (rejects) and every row has its outcome (outcomes)."));
}

async function download(url, name) {
  try {
    const response = await fetch(url);
    if (!response.ok) throw new ApiError(response.status, "The report could not be downloaded; reload the page for a fresh link.");
    const link = el("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    failed(error instanceof ApiError ? error : new ApiError(0, "The report could not be downloaded: the storage did not answer."));
  }
}

function parseCsv(text) {
  const rows = [];
  let field = "", record = [], quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { record.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      record.push(field); rows.push(record); record = []; field = "";
    } else field += c;
  }
  if (field || record.length) { record.push(field); rows.push(record); }
  return rows;
}

async function showErrors(url) {
  const box = $("job-errors");
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error("unreadable");
    const [header, ...records] = parseCsv(await response.text());
    const at = header.indexOf("error_code");
    const byCode = {};
    records.forEach((r) => {
      const code = (r[at] || "").replace(/^'/, "");
      if (code) byCode[code] = (byCode[code] || 0) + 1;
    });
    const codes = Object.keys(byCode).sort();
    if (!codes.length) { box.replaceChildren(el("p", "No row ended with an error.")); return; }
    const table = el("table");
    table.append(row(["Code", "What it means", "Rows"].map((t) => el("span", t))));
    codes.forEach((c) => table.append(row([c, CODE_NAMES[c] || "see twilio.com/docs/api/errors/" + c, byCode[c]], true)));
    box.replaceChildren(wrap(table));
  } catch (error) {
    box.replaceChildren(el("p", "The errors could not be read; download outcomes.csv instead."));
  }
}

const STEERING = {
  pause: (id) => `/jobs/${id}/pause`,
  resume: (id) => `/jobs/${id}/resume`,
  cancel: (id) => `/jobs/${id}/cancel`,
};

async function steer(action) {
  const job = state.job;
  if (!job) return;
  clearAlert();
  try {
    if (action === "retry" || action === "retry-undelivered") {
      const undelivered = action === "retry-undelivered";
      const made = await api("POST", `/jobs/${encodeURIComponent(job.job_id)}/retry`, undelivered ? { outcomes: ["undelivered"] } : {});
      state.notice = `A new job sends the ${made.rows} ${undelivered ? "undelivered" : "failed"} row(s) again.`;
      state.awaiting = made.job_id;
      location.hash = `#/job/${encodeURIComponent(made.job_id)}`;
      return;
    }
    if (action === "cancel" && !confirm("Cancel this job? Rows not yet sent are never sent.")) return;
    const changed = await api("POST", STEERING[action](encodeURIComponent(job.job_id)));
    showAlert(`The job is ${changed.state}.`, true);
    pollJob(job.job_id, nextPoll());
  } catch (error) {
    failed(error);
  }
}

// -- Opt-outs --------------------------------------------------------------------------------

async function listOptouts() {
  try {
    const { suppressions } = await api("GET", "/suppression?format=json");
    state.optouts = suppressions;
    filterOptouts();
  } catch (error) {
    failed(error);
  }
}

function filterOptouts() {
  const all = state.optouts || [];
  const term = $("optout-search").value.trim().toLowerCase();
  const shown = all.filter((s) => !term || `${s.number} ${s.reason || ""}`.toLowerCase().includes(term));
  const body = $("optout-table").querySelector("tbody");
  body.replaceChildren(...shown.slice(0, 500).map((s) => row([s.number, s.reason || "", s.source || "", s.added_at || ""], true)));
  $("optout-count").textContent = term ? `${shown.length} of ${all.length} numbers match.` : `${all.length} numbers.`;
}

async function importOptouts(text, what) {
  clearAlert();
  try {
    const result = await api("POST", "/suppression/import", text, "text/csv");
    showAlert(`${what}: ${result.read} number(s) read, ${result.added} newly opted out.`, true);
    await listOptouts();
  } catch (error) {
    failed(error);
  }
}

function csvCell(text) {
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

async function exportOptouts() {
  try {
    const text = await api("GET", "/suppression");
    const link = el("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    link.download = "opt-outs.csv";
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    failed(error);
  }
}
