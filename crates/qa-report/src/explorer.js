// The per-question explorer of report.html: search, presets (kept in the URL hash, so that a
// link opens the same view) and sorting over the static table, which is complete without this
// script. Plain ES5 with no dependency, so that the page stays one file that any browser opens.
(function () {
  "use strict";
  var root = document.getElementById("explorer");
  var table = root.querySelector("table");
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var search = document.getElementById("explorer-search");
  var preset = document.getElementById("explorer-preset");
  var count = document.getElementById("explorer-count");

  // The system columns' models, in the order of each row's data-em flags.
  var models = headers
    .filter(function (th) { return th.hasAttribute("data-model"); })
    .map(function (th) { return th.getAttribute("data-model"); });

  function words(text) {
    return (text || "").split(" ").filter(function (w) { return w.length > 0; });
  }

  // Whether every system of `model` has `flag` ("1": exact match, "0": not) on `row`; false
  // for a model that was not scored.
  function all(row, model, flag) {
    var flags = row.getAttribute("data-em");
    var seen = false;
    for (var s = 0; s < models.length; s++) {
      if (models[s] !== model) continue;
      seen = true;
      if (flags.charAt(s) !== flag) return false;
    }
    return seen;
  }

  function matches(row, option) {
    if (!option || option.value === "") return true;
    return words(option.getAttribute("data-right")).every(function (m) { return all(row, m, "1"); }) &&
      words(option.getAttribute("data-wrong")).every(function (m) { return all(row, m, "0"); });
  }

  function writeHash() {
    var parts = [];
    if (preset.value) parts.push("preset=" + encodeURIComponent(preset.value));
    if (search.value) parts.push("q=" + encodeURIComponent(search.value));
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (hash !== location.hash) {
      history.replaceState(null, "", hash || location.pathname + location.search);
    }
  }

  function readHash() {
    var values = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
      var at = pair.indexOf("=");
      if (at > 0) values[pair.slice(0, at)] = decodeURIComponent(pair.slice(at + 1));
    });
    preset.value = values.preset || "";
    if (preset.selectedIndex < 0) preset.value = "";
    search.value = values.q || "";
    return values.preset !== undefined || values.q !== undefined;
  }

  function apply() {
    var query = search.value.trim().toLowerCase();
    var option = preset.options[preset.selectedIndex];
    var shown = 0;
    rows.forEach(function (row) {
      var keep = matches(row, option) &&
        (query === "" || row.textContent.toLowerCase().indexOf(query) >= 0);
      row.hidden = !keep;
      if (keep) shown++;
    });
    count.textContent = shown + " of " + rows.length + " questions shown";
    count.setAttribute("data-shown", String(shown));
  }

  function update() {
    apply();
    writeHash();
  }

  // Sorting: a click on a header sorts by that column, a second click reverses the order.
  // System columns sort by F1, the others by their text.
  var sorted = { column: -1, descending: false };
  headers.forEach(function (th, column) {
    th.tabIndex = 0;
    th.title = "sort by this column";
    function sort() {
      sorted.descending = sorted.column === column ? !sorted.descending : th.hasAttribute("data-model");
      sorted.column = column;
      var key = function (row) {
        var cell = row.cells[column];
        return cell.hasAttribute("data-f1") ? Number(cell.getAttribute("data-f1")) : cell.textContent.toLowerCase();
      };
      var order = rows.map(function (row, index) { return { row: row, key: key(row), index: index }; });
      order.sort(function (x, y) {
        var by = x.key < y.key ? -1 : x.key > y.key ? 1 : x.index - y.index;
        return sorted.descending ? -by : by;
      });
      order.forEach(function (item) { body.appendChild(item.row); });
      headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", sorted.descending ? "descending" : "ascending");
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter") sort();
    });
  });

  search.addEventListener("input", update);
  preset.addEventListener("change", update);
  window.addEventListener("hashchange", function () {
    readHash();
    apply();
  });

  root.querySelector(".controls").hidden = false;
  var linked = readHash();
  apply();
  if (linked) root.scrollIntoView();
  root.setAttribute("data-ready", "true");
})();
