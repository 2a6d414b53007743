// The console's New job and Jobs pages (console.js holds the helpers they use).
"use strict";

// -- New job ---------------------------------------------------------------------------------

function chooseFile(file) {
  state.file = null;
  state.plan = null;
  state.staged = null;
  $("plan").hidden = true;
  clearAlert();
  if (!file) return;
  const name = file.name.toLowerCase();
  if (!FORMATS.some((ext) => name.endsWith(ext))) {
    $("file-name").textContent = "";
    showAlert(`${file.name} is not a file callqueue reads: choose a .csv, .json, .jsonl or .ndjson file.`);
    return;
  }
  state.file = file;
  $("file-name").textContent = `${file.name} (${Math.max(1, Math.round(file.size / 1024))} KB)`;
}

function settings() {
  const out = {};
  ["cps", "window", "max_per_day"].forEach((name) => {
    const value = $(name).value.trim();
    if (value) out[name] = Number(value);
  });
  ["start_at", "send_window", "send_days"].forEach((name) => {
    const value = $(name).value.trim();
    if (value) out[name] = value;
  });
  const params = {};
  const body = $("body-template").value.trim();
  if (body) params.Body = body;
  for (const line of $("params").value.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    if (at < 1) throw new ApiError(400, `"${line.trim()}" is not name=value; write one parameter a line, such as From=+15005550006.`);
    params[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  if (Object.keys(params).length) out.params = params;
  return out;
}

async function checkPlan(event) {
  event.preventDefault();
  clearAlert();
  // Too large to travel in the plan's request: staged first, then planned by its key.
  if (state.file && state.file.size > MAX_PLAN_BYTES) { await planStaged(); return; }
  if (!state.file) { showAlert("Choose a file first."); $("file").focus(); return; }
  try {
    const body = JSON.stringify({ filename: state.file.name, content: await state.file.text(), ...settings() });
    // The API's limit is on the request, where escaping grows the text (a quote or a line end
    // takes two bytes): a file of many quotes can pass the size check above and still not fit.
    if (new Blob([body]).size > MAX_BODY_BYTES) { await planStaged(); return; }
    $("check").disabled = true;
    renderPlan(await api("POST", "/jobs/plan", body, "application/json"));
  } catch (error) {
    failed(error);
  } finally {
    $("check").disabled = false;
  }
}

// The file is uploaded once to a staged key (POST /jobs/uploads), where nothing starts; the plan
// is then of its first rows, and Start copies it into a job (POST /jobs with the key).
async function planStaged() {
  $("check").disabled = true;
  try {
    if (!state.staged) {
      const staged = await api("POST", "/jobs/uploads", { filename: state.file.name });
      showAlert(`Uploading ${state.file.name} to plan it: nothing is sent until you start it.`, true);
      await putFile(staged.upload, state.file);
      clearAlert();
      state.staged = staged.staged_key;
    }
    renderPlan(await api("POST", "/jobs/plan", { staged_key: state.staged, ...settings() }));
  } catch (error) {
    failed(error);
  } finally {
    $("check").disabled = false;
  }
}

function renderPlan(plan) {
  state.plan = plan;
  const out = $("plan-body");
  out.replaceChildren();
  $("plan").hidden = false;
  if (!plan) { out.append(el("p", "No plan for this file.")); return; }
  const sms = plan.sms_segments;
  out.append(facts([
    ["Rows", plan.rows], ["Valid", plan.valid], ["Rejected", plan.rejected],
    ["SMS segments", sms["GSM-7"] + sms["UCS-2"]], ["Estimated cost", money(plan.cost)],
    ["Last row due after", duration(plan.timeline.eta_seconds)],
  ]));
  if (plan.sampled) {
    const about = plan.estimated_rows.toLocaleString("en-US");
    const note = el("p", `Plan of the first ${plan.rows_read.toLocaleString("en-US")} rows of about ${about}: the counts, cost and times below are of those rows.`);
    note.id = "plan-sampled";
    out.prepend(note);
  }
  plan.warnings.forEach((w) => out.append(el("p", `Warning: ${w}`, "help")));
  if (plan.timeline.never) out.append(el("p", `${plan.timeline.never} rows can never be sent: their send window never opens.`));
  out.append(el("h3", "When, by time zone"));
  const zones = el("table");
  zones.append(row(["Time zone", "Rows", "First due", "Last due"].map((t) => el("span", t))));
  plan.timeline.by_zone.forEach((z) => zones.append(row([z.zone, z.rows, z.first || "never", z.last || "never"], true)));
  out.append(wrap(zones));
  out.append(el("h3", "Preview: the first rows as they are sent"));
  if (!plan.preview.length) out.append(el("p", "No valid row to show."));
  plan.preview.forEach((p) => {
    const size = p.segments ? `, ${p.segments} ${p.encoding} segment(s)` : "";
    out.append(el("p", `Row ${p.row} (${p.api}${size})`, "help"));
    const lines = Object.entries(p.params).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
    out.append(el("p", lines.join("\n"), "preview"));
  });
  if (plan.rejects.length) {
    out.append(el("h3", plan.rejected > plan.rejects.length ? `The first ${plan.rejects.length} rejected rows` : "Rejected rows"));
    const table = el("table");
    table.append(row(["Row", "Why"].map((t) => el("span", t))));
    plan.rejects.forEach((r) => table.append(row([r.row, r.reason])));
    out.append(wrap(table));
  }
  $("start").textContent = $("start_at").value.trim() ? "Schedule" : "Start";
  $("start").disabled = plan.valid === 0;
  $("plan").scrollIntoView();
}

function wrap(table) {
  const box = el("div", null, "scroll");
  box.append(table);
  return box;
}

// POST /jobs for a presigned URL, then the file's PUT to it (with the headers signed into it).
async function upload(body, content) {
  const created = await api("POST", "/jobs", body);
  await putFile(created.upload, content);
  return created;
}

// The file's PUT to a presigned URL, with the headers signed into it.
async function putFile(target, content) {
  let put;
  try {
    put = await fetch(target.url, { method: target.method, headers: target.headers, body: content });
  } catch (error) {
    throw new ApiError(0, "The file could not be uploaded: the storage did not answer. Try again.");
  }
  if (!put.ok) throw new ApiError(put.status, `The file could not be uploaded (storage answered ${put.status}). Try again.`);
}

async function startJob() {
  clearAlert();
  if (!state.file) { showAlert("Choose a file first."); return; }
  $("start").disabled = true;
  try {
    // A staged file is started by its key (copied, not uploaded again); it can start once.
    const created = state.staged
      ? await api("POST", "/jobs", { staged_key: state.staged, ...settings() })
      : await upload({ filename: state.file.name, ...settings() }, state.file);
    state.staged = null;
    state.awaiting = created.job_id;
    location.hash = `#/job/${encodeURIComponent(created.job_id)}`;
  } catch (error) {
    failed(error);
  } finally {
    $("start").disabled = false;
  }
}

// The preview's rows readdressed to the person's own number, as `callqueue test-send` does:
// a job of their own, sent even if their content was sent before.
async function sendTest(event) {
  event.preventDefault();
  clearAlert();
  const to = $("test-to").value.replace(/[\s().-]/g, "");
  if (!/^\+[1-9]\d{6,14}$/.test(to)) {
    showAlert("Give your number in international form, such as +14155550100.");
    return;
  }
  if (!state.plan || !state.plan.preview.length) { showAlert("Check the plan first: the test sends its preview."); return; }
  const lines = state.plan.preview.map((p) => {
    const field = p.api === "lookup" ? "PhoneNumber" : "To";
    const old = String(p.params[field] || "");
    const address = old.toLowerCase().startsWith("whatsapp:") ? `whatsapp:${to}` : to;
    return JSON.stringify({ api: p.api, ...p.params, [field]: address }) + "\n";
  });
  const stem = state.file.name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 30);
  try {
    const rows = new Blob(lines, { type: "application/x-ndjson" });
    const made = await upload({ filename: `test-${stem}.jsonl`, resend: true }, rows);
    state.notice = `A test job sends ${lines.length} row(s) to ${to}.`;
    state.awaiting = made.job_id;
    location.hash = `#/job/${encodeURIComponent(made.job_id)}`;
  } catch (error) {
    failed(error);
  }
}

// -- Jobs ------------------------------------------------------------------------------------

// An ended job's rows in three words (its counts as the reconciler stored them when it ended);
// a job still going shows how many responses came back so far.
function outcomeSummary(job) {
  const c = job.counts;
  if (!c) return job.responses ? `${job.responses} responses so far` : "none yet";
  const failed = c.failed + c.dead_lettered;
  const other = c.rejected + c.suppressed + c.unknown;
  return `Sent ${c.sent} · Failed ${failed} · Other ${other}`;
}

async function listJobs() {
  try {
    const { jobs } = await api("GET", "/jobs?limit=50");
    const body = $("jobs-table").querySelector("tbody");
    body.replaceChildren();
    jobs.forEach((job) => {
      const link = el("a", job.key.split("/").pop());
      link.href = `#/job/${encodeURIComponent(job.job_id)}`;
      link.title = job.job_id;
      const released = el("progress");
      released.max = Math.max(job.valid, 1);
      released.value = job.released_rows || 0;
      released.setAttribute("aria-label", `${job.released_rows || 0} of ${job.valid} valid rows released`);
      const progress = el("span");
      progress.append(released, el("span", ` ${job.released_rows || 0} of ${job.valid}`, "help"));
      body.append(row([link, when(job.created_at), job.state, job.rows, job.rejected, progress, outcomeSummary(job), `${job.cps}/s`]));
    });
    $("jobs-empty").hidden = jobs.length > 0;
  } catch (error) {
    failed(error);
  }
}
