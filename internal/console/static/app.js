// Vigil console: progressive enhancement only. Every page works without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Operators' tenant switcher submits on change.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });

  // Select all findings on the page.
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('#triage input[name="id"]').forEach(function (c) { c.checked = all.checked; });
    });
  }

  // Secrets shown once are selected on focus for copying.
  document.querySelectorAll("[data-select]").forEach(function (i) {
    i.addEventListener("focus", function () { i.select(); });
  });

  // Field autocompletion in the query box.
  var q = document.getElementById("q");
  var list = document.getElementById("q-suggest");
  if (q && list) {
    var fields = [];
    try { fields = JSON.parse(q.getAttribute("data-fields") || "[]"); } catch (e) { fields = []; }
    var active = -1, items = [];
    var word = function () {
      var end = q.selectionStart || q.value.length;
      var start = end;
      while (start > 0 && /[A-Za-z0-9_.]/.test(q.value.charAt(start - 1))) start--;
      return { start: start, end: end, text: q.value.slice(start, end) };
    };
    var close = function () { list.hidden = true; q.setAttribute("aria-expanded", "false"); q.removeAttribute("aria-activedescendant"); active = -1; };
    var choose = function (i) {
      var w = word(), f = items[i];
      if (!f) return;
      q.value = q.value.slice(0, w.start) + f.name + ":" + q.value.slice(w.end);
      var pos = w.start + f.name.length + 1;
      q.setSelectionRange(pos, pos);
      close();
      q.focus();
    };
    var mark = function () {
      Array.prototype.forEach.call(list.children, function (li, i) { li.setAttribute("aria-selected", i === active ? "true" : "false"); });
      if (active >= 0) q.setAttribute("aria-activedescendant", "q-opt-" + active);
    };
    q.addEventListener("input", function () {
      var w = word();
      var before = q.value.charAt(w.start - 1);
      if (w.text.length < 1 || before === ":" || before === '"') { close(); return; }
      items = fields.filter(function (f) { return f.name.indexOf(w.text.toLowerCase()) === 0 && f.name !== w.text; }).slice(0, 8);
      list.textContent = "";
      if (!items.length) { close(); return; }
      items.forEach(function (f, i) {
        var li = document.createElement("li");
        li.id = "q-opt-" + i;
        li.setAttribute("role", "option");
        li.textContent = f.name;
        var d = document.createElement("span");
        d.className = "doc";
        d.textContent = f.doc;
        li.appendChild(d);
        li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(i); });
        list.appendChild(li);
      });
      active = 0;
      mark();
      list.hidden = false;
      q.setAttribute("aria-expanded", "true");
    });
    q.addEventListener("keydown", function (e) {
      if (list.hidden) return;
      if (e.key === "ArrowDown") { active = (active + 1) % items.length; mark(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = (active - 1 + items.length) % items.length; mark(); e.preventDefault(); }
      else if (e.key === "Tab" || (e.key === "Enter" && active >= 0)) { choose(active); e.preventDefault(); }
      else if (e.key === "Escape") { close(); }
    });
    q.addEventListener("blur", function () { setTimeout(close, 100); });
  }

  // Exports: stream the download with a progress indicator, then save it.
  document.querySelectorAll("a[data-export]").forEach(function (a) {
    a.addEventListener("click", function (e) {
      if (!window.fetch || !window.ReadableStream) return;
      e.preventDefault();
      var bar = document.getElementById("export-progress"), status = document.getElementById("export-status");
      bar.hidden = false;
      bar.removeAttribute("value");
      status.textContent = "Exporting…";
      fetch(a.href, { credentials: "same-origin" }).then(function (resp) {
        if (!resp.ok) throw new Error("the export failed (HTTP " + resp.status + ")");
        var reader = resp.body.getReader(), chunks = [], bytes = 0, lines = 0;
        var pump = function () {
          return reader.read().then(function (r) {
            if (r.done) return;
            chunks.push(r.value);
            bytes += r.value.length;
            for (var i = 0; i < r.value.length; i++) if (r.value[i] === 10) lines++;
            status.textContent = "Exporting… " + lines + " rows, " + Math.round(bytes / 1024) + " KiB";
            return pump();
          });
        };
        return pump().then(function () {
          var name = (resp.headers.get("Content-Disposition") || "").replace(/.*filename="([^"]+)".*/, "$1") || "export";
          var blob = new Blob(chunks, { type: resp.headers.get("Content-Type") || "application/octet-stream" });
          var link = document.createElement("a");
          link.href = URL.createObjectURL(blob);
          link.download = name;
          document.body.appendChild(link);
          link.click();
          link.remove();
          bar.value = 100; bar.max = 100;
          status.textContent = "Exported " + lines + " lines (" + Math.round(bytes / 1024) + " KiB) to " + name + ".";
        });
      }).catch(function (err) {
        bar.hidden = true;
        status.textContent = "Export failed: " + err.message;
      });
    });
  });
})();
