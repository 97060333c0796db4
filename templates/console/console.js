// The console's one script: uploads with a progress bar, live numbers (imports,
// campaigns), the segment rule builder with live counts, the template preview.
// No framework, no build step; everything it calls is under /console.
"use strict";

(function () {
  const csrf = () => (document.querySelector("main[data-csrf]") || {}).dataset?.csrf || "";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const fmt = (n) => Number(n).toLocaleString("en-US");

  async function postJson(url, body) {
    const r = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, data };
  }

  function debounce(fn, ms) {
    let t = null;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  }

  function errorText(data) {
    const e = data && data.error;
    if (!e) return "Something went wrong.";
    return e.message;
  }

  // -- uploads (CSV imports) with a progress bar -----------------------------------------
  document.querySelectorAll("form[data-upload]").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const file = $("input[type=file]", form).files[0];
      if (!file) return;
      const bar = $("progress", form);
      const state = $("[role=status]", form);
      const tag = $("input[name=tag]", form);
      let url = form.dataset.upload;
      if (tag && tag.value.trim()) url += "?tag=" + encodeURIComponent(tag.value.trim());
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("Content-Type", "text/csv");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      xhr.upload.onprogress = (e) => {
        if (bar && e.lengthComputable) bar.value = e.loaded / e.total;
        if (state) state.textContent = `Uploading… ${Math.round((100 * e.loaded) / (e.total || 1))} %`;
      };
      xhr.onload = () => {
        let data = {};
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status >= 400) { if (state) state.textContent = errorText(data); return; }
        if (bar) bar.value = 1;
        if (data.report) { window.location.assign(data.report); return; }
        if (state) state.textContent = `Imported: ${fmt(data.created ?? 0)} added, ${fmt(data.rejected ?? 0)} rejected. Reload to see them.`;
      };
      xhr.onerror = () => { if (state) state.textContent = "The upload failed; try again."; };
      if (state) state.textContent = "Uploading…";
      xhr.send(file);
    });
  });

  // -- live numbers: an import's report, a campaign's page -------------------------------
  function poll(el, render, running) {
    const url = el.dataset.statusUrl;
    let last = el.dataset.status;
    const tick = async () => {
      try {
        const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (r.ok) {
          const data = await r.json();
          render(data);
          if (data.status !== last) { window.location.reload(); return; }
        }
      } catch (e) { /* try again */ }
      if (running(last)) setTimeout(tick, 1000);
    };
    if (running(last)) setTimeout(tick, 1000);
  }

  const report = $("#import-report");
  if (report) {
    poll(report, (d) => {
      for (const k of ["total_rows", "created", "updated", "rejected"]) {
        const n = $("#" + k); if (n) n.textContent = fmt(d[k]);
      }
    }, (s) => s === "pending" || s === "running");
  }

  const live = $("#campaign-live");
  if (live) {
    poll(live, (d) => {
      $("#progress").value = d.progress;
      $("#progress-text").textContent = (d.progress * 100).toFixed(1);
      for (const [k, v] of Object.entries(d.stats)) {
        const n = $("#stat-" + k); if (n) n.textContent = fmt(v);
      }
      $("#paused-reason").textContent = d.paused_reason || "";
    }, (s) => s === "scheduled" || s === "sending" || s === "paused");
  }

  // -- the campaign wizard: the chosen segment's eligible count --------------------------
  const segmentSelect = $("#segment_id");
  const eligible = $("#segment-eligible");
  if (segmentSelect && eligible) {
    const show = async () => {
      if (!segmentSelect.value) return;
      const r = await fetch(`/console/segments/${segmentSelect.value}/count`, { headers: { Accept: "application/json" } });
      if (r.ok) { const d = await r.json(); eligible.textContent = `${fmt(d.eligible)} (of ${fmt(d.matching)} matching)`; }
    };
    segmentSelect.addEventListener("change", show);
    show();
  }

  // -- saved segments: their counts, one request each -------------------------------------
  document.querySelectorAll("td[data-count-url]").forEach(async (cell) => {
    const r = await fetch(cell.dataset.countUrl, { headers: { Accept: "application/json" } });
    if (!r.ok) return;
    const d = await r.json();
    cell.textContent = fmt(d.matching);
    cell.parentElement.querySelector("td.eligible").textContent = fmt(d.eligible);
  });

  // -- the review before launch: the audience's counts ------------------------------------
  const audience = $("#review-eligible[data-segment-count]");
  if (audience) {
    fetch(audience.dataset.segmentCount, { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((d) => {
        if (!d) return;
        audience.textContent = fmt(d.eligible);
        $("#review-matching").textContent = fmt(d.matching);
      });
  }

  // -- the segment rule builder ----------------------------------------------------------
  const builder = $("#builder");
  if (builder) {
    const fieldOps = JSON.parse(builder.dataset.fieldOps);
    const editable = builder.dataset.editable === "yes";
    const hidden = $("#filter");
    let tree = JSON.parse(hidden.value || '{"all": []}');
    let uid = 0;

    const fieldKind = (f) => (f.startsWith("attributes.") ? "attributes" : f);
    const parseValue = (op, raw, field) => {
      if (op === "exists") return raw === "" ? true : raw !== "false";
      if (op === "in" || op === "not_in") return raw.split(",").map((s) => s.trim()).filter(Boolean).map((v) => typed(v, field));
      return typed(raw, field);
    };
    const typed = (raw, field) => {
      if (!field.startsWith("attributes.")) return raw;
      if (/^-?\d+(\.\d+)?$/.test(raw)) return Number(raw);
      if (raw === "true" || raw === "false") return raw === "true";
      return raw;
    };
    const showValue = (v) => (Array.isArray(v) ? v.join(", ") : v === undefined ? "" : String(v));

    function groupKind(node) { return "all" in node ? "all" : "any" in node ? "any" : "not" in node ? "not" : null; }

    function condEl(node, onChange, onRemove) {
      const row = document.createElement("div");
      row.className = "cond";
      const id = ++uid;
      const kind = fieldKind(node.field || "email");
      row.innerHTML = `
        <label class="sr" for="f${id}" style="display:inline;font-weight:400">field</label>
        <select id="f${id}" class="field">${Object.keys(fieldOps).map((f) => `<option value="${f}">${f}</option>`).join("")}</select>
        <label for="k${id}" style="display:inline;font-weight:400">key</label>
        <input id="k${id}" class="key" type="text" size="10" placeholder="attribute">
        <label for="o${id}" style="display:inline;font-weight:400">operator</label>
        <select id="o${id}" class="op"></select>
        <label for="v${id}" style="display:inline;font-weight:400">value</label>
        <input id="v${id}" class="value" type="text" size="18">
        <button type="button" class="remove" aria-label="Remove this condition">✕</button>`;
      const field = $(".field", row), key = $(".key", row), op = $(".op", row), value = $(".value", row);
      field.value = kind;
      key.value = kind === "attributes" ? (node.field || "").slice("attributes.".length) : "";
      const fillOps = () => {
        const current = op.value || node.op;
        op.innerHTML = fieldOps[field.value].map((o) => `<option>${o}</option>`).join("");
        op.value = fieldOps[field.value].includes(current) ? current : fieldOps[field.value][0];
        key.hidden = field.value !== "attributes";
        key.previousElementSibling.hidden = key.hidden;
      };
      fillOps();
      value.value = showValue(node.value);
      const read = () => {
        node.field = field.value === "attributes" ? `attributes.${key.value.trim()}` : field.value;
        node.op = op.value;
        if (op.value === "exists" && value.value.trim() === "") delete node.value;
        else node.value = parseValue(op.value, value.value.trim(), node.field);
        onChange();
      };
      field.addEventListener("change", () => { fillOps(); read(); });
      for (const el of [key, op, value]) el.addEventListener("input", read);
      op.addEventListener("change", read);
      $(".remove", row).addEventListener("click", onRemove);
      if (!editable) row.querySelectorAll("select,input,button").forEach((e) => (e.disabled = true));
      return row;
    }

    function groupEl(node, onChange, onRemove) {
      const box = document.createElement("div");
      box.className = "group";
      const id = ++uid;
      const kind = groupKind(node);
      const children = kind === "not" ? [node.not] : node[kind];
      box.innerHTML = `
        <div class="row" style="align-items:center">
          <label for="g${id}" style="display:inline;margin:0">Match</label>
          <select id="g${id}" class="kind"><option value="all">all of</option><option value="any">any of</option><option value="not">none of</option></select>
          <button type="button" class="add-cond">+ condition</button>
          <button type="button" class="add-group">+ group</button>
          ${onRemove ? '<button type="button" class="remove-group">remove group</button>' : ""}
        </div><div class="children"></div>`;
      const kindSel = $(".kind", box);
      kindSel.value = kind === "not" ? "not" : kind;
      const list = $(".children", box);
      // "none of" keeps its children as {"not": {"any": [...]}} (a single one: {"not": c})
      let items = kind === "not" ? ("any" in node.not ? node.not.any : [node.not]) : children;
      const rebuild = () => {
        for (const k of ["all", "any", "not"]) delete node[k];
        const k = kindSel.value;
        if (k === "not") node.not = { any: items };
        else node[k] = items;
        onChange();
      };
      const draw = () => {
        list.innerHTML = "";
        items.forEach((child, i) => {
          const remove = () => { items.splice(i, 1); draw(); rebuild(); };
          list.appendChild(groupKind(child) ? groupEl(child, rebuild, remove) : condEl(child, rebuild, remove));
        });
      };
      kindSel.addEventListener("change", rebuild);
      $(".add-cond", box).addEventListener("click", () => { items.push({ field: "email", op: "ends_with", value: "" }); draw(); rebuild(); });
      $(".add-group", box).addEventListener("click", () => { items.push({ any: [] }); draw(); rebuild(); });
      if (onRemove) $(".remove-group", box).addEventListener("click", onRemove);
      if (!editable) box.querySelectorAll("select,button").forEach((e) => (e.disabled = true));
      draw();
      return box;
    }

    const preview = debounce(async () => {
      const { ok, data } = await postJson("/console/segments/preview", { filter: tree });
      $("#filter-error").textContent = ok ? "" : errorText(data);
      if (!ok) return;
      $("#matching").textContent = fmt(data.matching);
      $("#eligible").textContent = fmt(data.eligible);
      $("#sample").textContent = data.sample.join(", ") || "nobody";
    }, 300);

    const changed = () => {
      hidden.value = JSON.stringify(tree);
      $("#filter-json").textContent = JSON.stringify(tree, null, 2);
      preview();
    };
    if (!groupKind(tree)) tree = { all: [tree] };
    builder.appendChild(groupEl(tree, changed, null));
    changed();
  }

  // -- the template editor's preview -----------------------------------------------------
  const previewBox = $("#preview[data-preview-url]");
  if (previewBox) {
    const form = $("#template-form");
    const refresh = async () => {
      let data = {};
      try { data = JSON.parse($("#preview-data").value || "{}"); } catch (e) {
        $("#template-error").textContent = "The sample data is not JSON."; return;
      }
      const body = {
        subject: $("#subject").value, html: $("#html").value, text: $("#text").value,
        format: $("#format").value, email: $("#preview-email").value.trim(), data,
      };
      const r = await postJson(previewBox.dataset.previewUrl, body);
      if (!r.ok) {
        const msg = errorText(r.data);
        $("#template-error").textContent = msg;
        const line = /line (\d+)/.exec(msg);
        if (line) markLine(Number(line[1]));
        return;
      }
      $("#template-error").textContent = "";
      $("#preview-subject").textContent = r.data.subject;
      $("#preview-desktop").srcdoc = r.data.html;
      $("#preview-phone").srcdoc = r.data.html;
      $("#preview-text").textContent = r.data.text;
    };
    // select the line an error names, so the author lands on it
    const markLine = (n) => {
      const area = $("#html");
      const lines = area.value.split("\n");
      if (n < 1 || n > lines.length) return;
      const start = lines.slice(0, n - 1).reduce((a, l) => a + l.length + 1, 0);
      area.setSelectionRange(start, start + lines[n - 1].length);
    };
    const later = debounce(refresh, 400);
    form.querySelectorAll("input,textarea,select").forEach((el) => el.addEventListener("input", later));
    for (const id of ["#preview-email", "#preview-data"]) $(id).addEventListener("input", later);
    const button = $("#refresh-preview");
    if (button) button.addEventListener("click", refresh);
    refresh();
  }
})();
