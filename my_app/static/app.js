// The browser side of the service: submit jobs, and follow tasks live.
// Live updates come from Server-Sent Events; polling is only the fallback.

const ACTIVE = new Set(["QUEUED", "STARTED", "PROGRESS", "RETRY"]);
const RETRYABLE = new Set(["FAILURE", "REVOKED", "LOST"]);
const POLL_MILLISECONDS = 2000;

const tasks = new Map(); // id -> latest task record
const SYSTEM_POLL_MILLISECONDS = 5000;
// What the table shows: a state and kind filter, and a page of older tasks.
const view = { state: "", kind: "", page: 1, pageSize: 20, totalPages: 1 };

// ---- small helpers -------------------------------------------------------------

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function announce(text) {
  const announcer = document.getElementById("announcer");
  if (announcer) announcer.textContent = text;
}

function shortId(id) {
  return id.slice(0, 8);
}

function localTime(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "—";
}

function duration(task) {
  if (!task.started_at) return "—";
  const end = task.finished_at ? new Date(task.finished_at) : new Date();
  const seconds = Math.max(0, (end - new Date(task.started_at)) / 1000);
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

async function api(method, url, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, options);
  const payload = await response.json().catch(() => ({}));
  return { response, payload };
}

// ---- task rendering ------------------------------------------------------------

function progressView(task) {
  const percent = task.progress ? task.progress.percent : 0;
  const message = task.progress && task.progress.message ? ` · ${task.progress.message}` : "";
  return element(
    "div",
    { class: "progress" },
    element("progress", { max: 100, value: percent, "aria-label": `Progress of task ${shortId(task.id)}` }),
    element("span", { class: "percent" }, `${percent} %${message}`),
  );
}

function artifactsView(task) {
  const links = (task.links && task.links.artifacts) || {};
  const items = Object.entries(links).map(([name, url]) =>
    name.startsWith("thumb-")
      ? element("a", { href: url, class: "thumb" }, element("img", { src: url, alt: `Thumbnail ${name}`, loading: "lazy" }))
      : element("a", { href: `${url}?download=1`, download: name, class: "artifact" }, name),
  );
  return element("span", { class: "artifacts" }, ...items);
}

const IMAGE_FILE = /\.(png|jpe?g|webp|gif)$/i;
const VIDEO_FILE = /\.(mp4|webm)$/i;

function mediaView(task) {
  // A job's pictures and videos, shown in the page: a video plays (and seeks: the
  // download answers ranges), with the job's poster image as its poster.
  const links = (task.links && task.links.artifacts) || {};
  const entries = Object.entries(links);
  const poster = entries.find(([name]) => name.startsWith("poster."));
  // The video first, then its poster, then the rest (a contact sheet, thumbnails).
  const order = ([name]) => (VIDEO_FILE.test(name) ? 0 : name.startsWith("poster.") ? 1 : 2);
  return entries
    .filter(([name]) => IMAGE_FILE.test(name) || VIDEO_FILE.test(name))
    .sort((a, b) => order(a) - order(b))
    .map(([name, url]) => {
      const media = VIDEO_FILE.test(name)
        ? element("video", { src: url, controls: true, preload: "auto", playsinline: true, muted: true, poster: poster ? poster[1] : undefined, "aria-label": `Video ${name}` })
        : element("img", { src: url, alt: name, loading: "lazy" });
      return element("figure", { "data-media": name }, media, element("figcaption", {}, name));
    });
}

function actionsView(task) {
  const buttons = [];
  if (ACTIVE.has(task.state)) {
    buttons.push(element("button", { type: "button", class: "secondary", onclick: () => cancelTask(task) }, "Cancel"));
  }
  if (RETRYABLE.has(task.state)) {
    buttons.push(element("button", { type: "button", class: "secondary", onclick: () => retryTask(task) }, "Retry"));
  }
  return element("span", { class: "actions" }, ...buttons);
}

function warningView(task) {
  return task.warning ? element("span", { class: "warning-text", role: "note" }, task.warning) : null;
}

function errorView(task) {
  return task.error ? element("span", { class: "error-text" }, `${task.error.type}: ${task.error.message}`) : null;
}

// A record that would move a finished task back. A fast job can finish, and its final
// event arrive, before the answer to its own POST (or DELETE) does: that answer is older.
function isBehind(task) {
  const known = tasks.get(task.id);
  return Boolean(known) && !ACTIVE.has(known.state) && ACTIVE.has(task.state);
}

function rowFor(task) {
  return element(
    "tr",
    { "data-task-id": task.id, "data-state": task.state },
    element("td", { "data-label": "Task" }, element("a", { href: `/tasks/${task.id}` }, `${task.kind} ${shortId(task.id)}`)),
    element("td", { "data-label": "State" }, element("span", { class: `badge state-${task.state}` }, task.state)),
    element("td", { "data-label": "Progress" }, progressView(task)),
    element("td", { "data-label": "Submitted" }, localTime(task.submitted_at)),
    element("td", { "data-label": "Duration", "data-duration": true }, duration(task)),
    element("td", { "data-label": "Results" }, artifactsView(task), warningView(task), errorView(task), actionsView(task)),
  );
}

function matchesView(task) {
  return (!view.state || task.state === view.state) && (!view.kind || task.kind === view.kind);
}

function showTask(task) {
  if (isBehind(task)) return;
  const previous = tasks.get(task.id);
  tasks.set(task.id, task);
  const rows = document.querySelector("[data-task-rows]");
  if (!rows) return;
  const existing = rows.querySelector(`tr[data-task-id="${task.id}"]`);
  if (!matchesView(task)) {
    if (existing) existing.remove(); // it left the filter: a state changed
    return;
  }
  const row = rowFor(task);
  if (existing) existing.replaceWith(row);
  else if (view.page === 1) rows.prepend(row); // new tasks belong on the first page
  else return;
  document.querySelector("[data-empty]").hidden = true;
  if (!previous || previous.state !== task.state) {
    announce(`${task.kind} task ${shortId(task.id)} is ${task.state}`);
  }
}

function tickDurations() {
  for (const row of document.querySelectorAll("tr[data-task-id]")) {
    const task = tasks.get(row.dataset.taskId);
    if (task && ACTIVE.has(task.state)) row.querySelector("[data-duration]").textContent = duration(task);
  }
}

// ---- actions -------------------------------------------------------------------

async function cancelTask(task) {
  const { response, payload } = await api("DELETE", task.links.cancel);
  if (response.ok) showTask(payload);
  else announce(payload.message || `Could not cancel (${response.status})`);
}

async function retryTask(task) {
  const { response, payload } = await api("POST", task.links.retry);
  if (response.ok) showTask(payload);
  else announce(payload.message || `Could not retry (${response.status})`);
}

// ---- forms ---------------------------------------------------------------------

function formBody(form) {
  if (form.dataset.encoding === "multipart") return new FormData(form);
  const body = {};
  for (const field of form.querySelectorAll("input[name], textarea[name], select[name]")) {
    let value = field.value;
    if (field.dataset.type === "integer") value = value === "" ? undefined : Number(value);
    if (field.dataset.type === "list") value = value.split(",").map((part) => part.trim()).filter(Boolean);
    if (value === undefined) continue;
    // "sections.0.heading" builds {sections: [{heading: ...}]}
    const path = field.name.split(".");
    let node = body;
    path.slice(0, -1).forEach((key, index) => {
      const nextIsIndex = /^\d+$/.test(path[index + 1]);
      node[key] ??= nextIsIndex ? [] : {};
      node = node[key];
    });
    node[path[path.length - 1]] = value;
  }
  return body;
}

function flattenErrors(errors, prefix = "") {
  // {"sections": {"0": {"heading": ["..."]}}} -> [["sections.0.heading", "..."]]
  if (Array.isArray(errors)) return [[prefix, errors.join(" ")]];
  return Object.entries(errors).flatMap(([key, value]) => flattenErrors(value, prefix ? `${prefix}.${key}` : key));
}

function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
  const formError = form.querySelector(".form-error");
  formError.hidden = true;
  formError.textContent = "";
}

function showErrors(form, payload) {
  const leftovers = [];
  const locations = payload.errors || {};
  for (const [path, message] of Object.values(locations).flatMap((fields) => flattenErrors(fields))) {
    // The most specific slot that exists: "to.0" falls back to "to".
    const parts = path.split(".");
    let slot = null;
    for (let length = parts.length; length > 0 && !slot; length--) {
      slot = form.querySelector(`[data-error-for="${parts.slice(0, length).join(".")}"]`);
    }
    if (slot) {
      slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
      const field = form.querySelector(`[name="${slot.dataset.errorFor}"]`);
      if (field) field.setAttribute("aria-invalid", "true");
    } else {
      leftovers.push(`${path}: ${message}`);
    }
  }
  if (leftovers.length || !Object.keys(locations).length) {
    const formError = form.querySelector(".form-error");
    formError.textContent = [payload.message, ...leftovers].filter(Boolean).join(" ");
    formError.hidden = false;
  }
}

function submitting(send) {
  // A form's submit: errors cleared, its button held while send(form) runs, and an
  // unreachable service said beside the form.
  return async (event) => {
    event.preventDefault();
    const form = event.target;
    clearErrors(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await send(form);
    } catch (error) {
      showErrors(form, { message: `The service did not answer: ${error.message}` });
    } finally {
      button.disabled = false;
    }
  };
}

const submitJob = submitting(async (form) => {
  const { response, payload } = await api("POST", form.dataset.endpoint, formBody(form));
  if (response.ok) {
    showTask(payload);
  } else if (response.status === 429 || response.status === 503) {
    const retry = response.headers.get("Retry-After");
    showErrors(form, { message: `${payload.message || response.statusText}${retry ? ` (retry in ${retry} s)` : ""}` });
  } else {
    showErrors(form, payload);
  }
});

function addSection(form) {
  const sections = form.querySelector("[data-sections]");
  const index = sections.querySelectorAll("[data-section]").length;
  const id = (field) => `report-section-${index}-${field}`;
  const slot = (field) => element("span", { class: "field-error", id: `report-sections.${index}.${field}-error`, "data-error-for": `sections.${index}.${field}` });
  const fieldset = element(
    "fieldset",
    { class: "section", "data-section": true },
    element("legend", {}, `Section ${index + 1}`),
    element("label", { for: id("heading") }, "Heading"),
    element("input", { id: id("heading"), name: `sections.${index}.heading`, required: true, "aria-describedby": `report-sections.${index}.heading-error` }),
    slot("heading"),
    element("label", { for: id("text") }, "Text"),
    element("textarea", { id: id("text"), name: `sections.${index}.text`, rows: 2, "aria-describedby": `report-sections.${index}.text-error` }),
    slot("text"),
  );
  sections.append(fieldset);
  fieldset.querySelector("input").focus();
}

// ---- live updates ----------------------------------------------------------------

function setConnection(text) {
  const status = document.querySelector("[data-connection]");
  if (status) status.textContent = text;
}

function follow(url, onTask, onFallback, onReconnect = () => {}) {
  if (!("EventSource" in window)) return onFallback();
  const source = new EventSource(url);
  let opened = false;
  source.onopen = () => {
    setConnection("Live: updates arrive as they happen.");
    // A reconnected stream starts from what is unfinished now: catch up on what
    // finished while it was away.
    if (opened) onReconnect();
    opened = true;
  };
  source.onmessage = (event) => onTask(JSON.parse(event.data));
  source.onerror = () => {
    // The browser reconnects by itself unless the stream could not be opened at all.
    if (source.readyState === EventSource.CLOSED) onFallback();
    else setConnection("Reconnecting…");
  };
  return source;
}

async function loadTasks({ fresh = false } = {}) {
  const query = new URLSearchParams({ page: view.page, page_size: view.pageSize });
  for (const [name, value] of Object.entries(viewFilter())) query.set(name, value);
  const { response, payload } = await api("GET", `/api/tasks?${query}`);
  if (!response.ok) return;
  const pagination = JSON.parse(response.headers.get("X-Pagination") || "{}");
  view.totalPages = Math.max(1, pagination.total_pages || 1);
  const rows = document.querySelector("[data-task-rows]");
  if (fresh) rows.replaceChildren();
  for (const task of payload.slice().reverse()) {
    // A page's own tasks are shown as they are now, even if newer ones exist.
    tasks.set(task.id, task);
    const existing = rows.querySelector(`tr[data-task-id="${task.id}"]`);
    if (existing) existing.replaceWith(rowFor(task));
    else rows.prepend(rowFor(task));
  }
  document.querySelector("[data-empty]").hidden = rows.childElementCount > 0;
  document.querySelector("[data-page-label]").textContent = `Page ${view.page} of ${view.totalPages}`;
  document.querySelector("[data-newer]").disabled = view.page <= 1;
  document.querySelector("[data-older]").disabled = view.page >= view.totalPages;
}

function changeView(change) {
  Object.assign(view, change);
  const filtered = Object.keys(viewFilter()).length > 0;
  for (const button of document.querySelectorAll("[data-bulk-action]")) button.disabled = !filtered;
  loadTasks({ fresh: true });
}

// The list's filters as the API takes them ("Dead letters" is a filter of its own).
function viewFilter() {
  const filter = {};
  if (view.state === "DEAD_LETTER") filter.dead_letter = true;
  else if (view.state) filter.state = view.state;
  if (view.kind) filter.kind = view.kind;
  return filter;
}

// Cancel or retry every task the filtered view matches, after a confirmation.
async function bulkAction(event) {
  const action = event.target.dataset.bulkAction;
  const filter = viewFilter();
  const described = Object.entries(filter).map(([name, value]) => `${name} ${value}`).join(", ");
  if (!window.confirm(`${action === "cancel" ? "Cancel" : "Retry"} every task matching ${described}?`)) return;
  const status = document.querySelector("[data-bulk-status]");
  const { response, payload } = await api("POST", `/api/tasks/${action}`, { ...filter, limit: 1000 });
  if (!response.ok) {
    status.textContent = payload.message || `The service answered ${response.status}.`;
    return;
  }
  const verb = action === "cancel" ? "Cancelled" : "Queued again";
  const more = payload.more ? " More match: act again for them." : "";
  status.textContent = `${verb} ${payload.acted_on}; skipped ${payload.skipped_count}.${more}`;
  loadTasks({ fresh: true });
}

// ---- schedules -----------------------------------------------------------------------

async function loadSchedules() {
  const { response, payload } = await api("GET", "/api/schedules");
  if (!response.ok) return;
  document.querySelector("[data-schedules]").replaceChildren(...payload.map(scheduleView));
}

function scheduleView(schedule) {
  const timing = schedule.cron ? `${schedule.cron} (${schedule.timezone})` : `every ${schedule.every_seconds} s`;
  const next = schedule.paused ? "paused" : `next ${schedule.next_run_at || "—"}`;
  const act = (path, method = "POST") => async () => {
    if (method === "DELETE" && !window.confirm(`Delete the schedule ${schedule.name || schedule.id}?`)) return;
    await api(method, path);
    loadSchedules();
  };
  return element(
    "li",
    { "data-schedule-id": schedule.id, "data-paused": String(schedule.paused) },
    element("strong", {}, schedule.name || schedule.kind),
    ` · ${schedule.kind} · ${timing} · ${next} · ${schedule.total_runs} runs `,
    schedule.links.last_run
      ? element("a", { href: `/tasks/${schedule.recent_runs[0]}` }, "last run")
      : "",
    " ",
    schedule.paused
      ? element("button", { type: "button", class: "secondary", onclick: act(schedule.links.resume) }, "Resume")
      : element("button", { type: "button", class: "secondary", onclick: act(schedule.links.pause) }, "Pause"),
    " ",
    element("button", { type: "button", class: "secondary", onclick: act(schedule.links.self, "DELETE") }, "Delete"),
  );
}

const createSchedule = submitting(async (form) => {
  const body = { name: form.elements.name.value, kind: "slow", inputs: { name: form.elements.greet.value, seconds: 1 } };
  if (form.elements.cron.value.trim()) {
    body.cron = form.elements.cron.value.trim();
    if (form.elements.timezone.value.trim()) body.timezone = form.elements.timezone.value.trim();
  } else {
    body.every_seconds = Number(form.elements.every_seconds.value);
  }
  const { response, payload } = await api("POST", "/api/schedules", body);
  if (!response.ok) return showErrors(form, payload);
  announce(`Schedule ${payload.name || payload.id} created`);
  loadSchedules();
});

function waited(seconds) {
  if (!seconds) return "—";
  return seconds < 60 ? `${Math.round(seconds)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

async function loadSystem() {
  const { response, payload } = await api("GET", "/api/system");
  if (!response.ok) return;
  document.querySelector("[data-queue-rows]").replaceChildren(
    ...payload.queues.map((queue) =>
      element(
        "tr",
        { "data-queue": queue.name },
        element("th", { scope: "row" }, queue.name),
        element("td", { "data-field": "depth" }, String(queue.depth)),
        element("td", { "data-field": "oldest" }, waited(queue.oldest_waiting_seconds)),
        element(
          "td",
          { "data-field": "consumers" },
          queue.consumers.length ? queue.consumers.join(", ") : element("span", { class: "warning-text" }, "none: its jobs wait"),
        ),
      ),
    ),
  );
  document.querySelector("[data-workers]").replaceChildren(
    ...payload.workers.map((worker) =>
      element(
        "li",
        { "data-worker": worker.name },
        element("strong", {}, worker.name),
        ` · ${worker.queues.join(", ")} · `,
        worker.running.length
          ? element("span", {}, "running ", ...worker.running.map((id) => element("a", { href: `/tasks/${id}` }, shortId(id) + " ")))
          : "idle",
      ),
    ),
  );
}

function startPolling(poll) {
  setConnection("Live updates unavailable: refreshing every 2 s.");
  setInterval(poll, POLL_MILLISECONDS);
}

function startIndex() {
  for (const form of document.querySelectorAll(".job-form")) form.addEventListener("submit", submitJob);
  for (const form of document.querySelectorAll("[data-photo-report]")) form.addEventListener("submit", runPhotoReport);
  for (const button of document.querySelectorAll("[data-add-section]")) {
    button.addEventListener("click", () => addSection(button.closest("form")));
  }
  const filters = document.querySelector("[data-filters]");
  filters.addEventListener("change", () =>
    changeView({ state: filters.elements.state.value, kind: filters.elements.kind.value, page: 1 }),
  );
  filters.addEventListener("submit", (event) => event.preventDefault());
  for (const button of document.querySelectorAll("[data-bulk-action]")) button.addEventListener("click", bulkAction);
  document.querySelector("[data-schedule-form]").addEventListener("submit", createSchedule);
  loadSchedules();
  setInterval(loadSchedules, SYSTEM_POLL_MILLISECONDS);
  document.querySelector("[data-newer]").addEventListener("click", () => changeView({ page: view.page - 1 }));
  document.querySelector("[data-older]").addEventListener("click", () => changeView({ page: view.page + 1 }));
  loadTasks().then(() => follow("/api/tasks/events", showTask, () => startPolling(loadTasks), loadTasks));
  loadSystem();
  setInterval(loadSystem, SYSTEM_POLL_MILLISECONDS);
  setInterval(tickDurations, 1000);
}

// ---- the task page -------------------------------------------------------------

function showDetail(task) {
  const detail = document.querySelector("[data-task-detail]");
  const field = (name) => detail.querySelector(`[data-field="${name}"]`);
  if (isBehind(task)) return;
  const previous = tasks.get(task.id);
  tasks.set(task.id, task);
  field("state").className = `badge state-${task.state}`;
  field("state").textContent = task.state;
  field("progress").replaceChildren(progressView(task));
  field("started_at").textContent = task.started_at || "—";
  field("finished_at").textContent = task.finished_at || "—";
  field("actions").replaceChildren(actionsView(task));
  field("warning").textContent = task.warning || "";
  field("warning").hidden = !task.warning;
  field("error").replaceChildren(errorView(task) || element("p", {}, "None."));
  const artifacts = artifactsView(task);
  field("artifacts").replaceChildren(artifacts.childElementCount ? artifacts : element("p", {}, "None."));
  const shown = [...field("media").querySelectorAll("[data-media]")].map((figure) => figure.dataset.media).join();
  const media = mediaView(task);
  // Rebuilt only when the files change, so a playing video keeps playing.
  if (media.map((figure) => figure.dataset.media).join() !== shown) field("media").replaceChildren(...media);
  if (task.timeline) field("timeline").replaceChildren(...task.timeline.map(timelineEntryView));
  field("webhook").hidden = !task.webhook;
  if (task.webhook) field("webhook").replaceChildren(...webhookView(task.webhook));
  field("result").textContent = JSON.stringify(task.result, null, 2);
  field("record").textContent = JSON.stringify(task, null, 2);
  if (!previous || previous.state !== task.state) announce(`Task is ${task.state}`);
}

// One transition of the task's timeline: when, what, which attempt and worker, why.
function timelineEntryView(entry) {
  const facts = [
    entry.attempt ? `attempt ${entry.attempt}` : null,
    entry.worker,
    entry.detail,
  ].filter(Boolean);
  return element(
    "li",
    { "data-event": entry.event },
    element("time", { datetime: entry.at }, entry.at),
    " ",
    element("strong", {}, entry.event.replace("_", " ")),
    facts.length ? ` · ${facts.join(" · ")}` : "",
  );
}

// Where the task's end is sent, and each delivery attempt.
function webhookView(webhook) {
  return [
    element("h2", {}, "Webhook"),
    element("p", {}, "To ", element("code", {}, webhook.url), ": ", element("strong", {}, webhook.state)),
    element(
      "ol",
      { class: "timeline" },
      ...webhook.attempts.map((attempt) =>
        element(
          "li",
          {},
          element("time", { datetime: attempt.at }, attempt.at),
          ` · ${attempt.status || "no answer"} · ${attempt.latency_ms} ms`,
          attempt.error ? ` · ${attempt.error}` : "",
        ),
      ),
    ),
  ];
}

function startTaskPage(taskId) {
  if (!document.querySelector("[data-task-detail]")) return;
  const poll = async () => {
    const { response, payload } = await api("GET", `/api/tasks/${taskId}`);
    if (response.ok) showDetail(payload);
  };
  poll().then(() => {
    const current = tasks.get(taskId);
    if (current && ACTIVE.has(current.state)) follow(`/api/tasks/${taskId}/events`, showDetail, () => startPolling(poll));
  });
}

// ---- workflows ---------------------------------------------------------------------

// The shipped example: upload the photo once, then one workflow of three steps.
const runPhotoReport = submitting(async (form) => {
  const upload = new FormData();
  upload.append("file", form.elements.file.files[0] || new Blob());
  const uploaded = await api("POST", "/api/uploads", upload);
  if (!uploaded.response.ok) return showErrors(form, { message: uploaded.payload.message });
  const workflow = {
    name: "Photo report",
    steps: [
      { name: "thumbnails", kind: "thumbnail", inputs: { upload_id: uploaded.payload.upload_id, sizes: [128, 256] } },
      { name: "report", kind: "report", uses: ["thumbnails"], inputs: { title: "Photo report", sections: [{ heading: "Your photo", text: "Thumbnails made by the workflow's first step." }] } },
      { name: "mail", kind: "email", uses: ["report"], inputs: { to: [form.elements.to.value], subject: "Your photo report", text: "The report is attached." } },
    ],
  };
  const started = await api("POST", "/api/workflows", workflow);
  if (!started.response.ok) return showErrors(form, { message: started.payload.message || JSON.stringify(started.payload.errors) });
  window.location.assign(`/workflows/${started.payload.id}`);
});

function stepView(step) {
  const task = step.task;
  const percent = step.state === "SUCCESS" ? 100 : task && task.progress ? task.progress.percent : 0;
  const title = task
    ? element("a", { href: `/tasks/${step.task_id}` }, step.name)
    : element("span", {}, step.name);
  return element(
    "div",
    { class: "step", "data-step": step.name, "data-state": step.state },
    element("strong", {}, title),
    element("span", { class: "kind" }, step.kind),
    element("span", { class: `badge state-${step.state}` }, step.state),
    element("progress", { max: 100, value: percent, "aria-label": `Progress of step ${step.name}` }),
    task ? artifactsView(task) : null,
    task ? errorView(task) : null,
  );
}

function showWorkflow(workflow) {
  const detail = document.querySelector("[data-workflow-detail]");
  const field = (name) => detail.querySelector(`[data-field="${name}"]`);
  const before = field("state").textContent;
  field("state").className = `badge state-${workflow.state}`;
  field("state").textContent = workflow.state;
  const { current, total, percent } = workflow.progress;
  field("progress").replaceChildren(
    element("progress", { max: 100, value: percent, "aria-label": "Workflow progress" }),
    element("span", {}, `${current} of ${total} steps · ${percent} %`),
  );
  const byName = new Map(workflow.steps.map((step) => [step.name, step]));
  const drawn = JSON.stringify(workflow.steps);
  if (field("steps").dataset.drawn !== drawn) {
    // Redrawn only when a step changed, and the keyboard's place kept.
    const focusedStep = document.activeElement && document.activeElement.closest("[data-step]");
    field("steps").replaceChildren(
      ...workflow.stages.map((stage) => element("li", { class: "stage" }, ...stage.map((name) => stepView(byName.get(name))))),
    );
    field("steps").dataset.drawn = drawn;
    if (focusedStep) {
      const again = field("steps").querySelector(`[data-step="${focusedStep.dataset.step}"] a`);
      if (again) again.focus();
    }
  }
  const buttons = [];
  if (ACTIVE.has(workflow.state)) buttons.push(element("button", { type: "button", class: "secondary", onclick: () => workflowAction("DELETE", workflow.links.cancel) }, "Cancel workflow"));
  if (RETRYABLE.has(workflow.state)) buttons.push(element("button", { type: "button", class: "secondary", onclick: () => workflowAction("POST", workflow.links.retry) }, "Retry from the failed step"));
  const focused = document.activeElement && document.activeElement.textContent;
  field("actions").replaceChildren(...buttons);
  for (const button of buttons) if (button.textContent === focused) button.focus();
  if (before !== workflow.state) announce(`Workflow is ${workflow.state}`);
}

async function workflowAction(method, url) {
  const { response, payload } = await api(method, url);
  if (response.ok) showWorkflow(payload);
  else announce(payload.message || `Could not do that (${response.status})`);
}

function startWorkflowPage(workflowId) {
  if (!document.querySelector("[data-workflow-detail]")) return;
  // A workflow's state is drawn from all its steps: read it whole, each second while
  // anything may still change.
  const poll = async () => {
    const { response, payload } = await api("GET", `/api/workflows/${workflowId}`);
    if (response.ok) showWorkflow(payload);
    setTimeout(poll, response.ok && !ACTIVE.has(payload.state) ? 5 * POLL_MILLISECONDS : WORKFLOW_POLL_MILLISECONDS);
  };
  poll();
}

const WORKFLOW_POLL_MILLISECONDS = 1000;

if (document.body.dataset.page === "index") startIndex();
if (document.body.dataset.page === "workflow") startWorkflowPage(document.body.dataset.workflowId);
if (document.body.dataset.page === "task") startTaskPage(document.body.dataset.taskId);
