// drbench report: sortable tables and the per-query drill-down. No libraries, no requests.
(function () {
  "use strict";

  // A column sorts as numbers when its header says so (class "num"), else as text.
  function sortValue(cell, numeric) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null || raw === "") return null;
    return numeric ? Number(raw) : raw.toLowerCase();
  }

  function sortBy(table, column, header) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var descending = header.getAttribute("aria-sort") !== "descending";
    if (header.getAttribute("aria-sort") === null) descending = header.classList.contains("num");
    var numeric = header.classList.contains("num");
    rows.sort(function (a, b) {
      var x = sortValue(a.cells[column], numeric), y = sortValue(b.cells[column], numeric);
      if (x === null && y === null) return 0;
      if (x === null) return 1;  // missing values last, either way
      if (y === null) return -1;
      var order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.title = "sort by " + header.textContent;
      header.tabIndex = 0;  // reachable and sortable from the keyboard too
      header.addEventListener("click", function () { sortBy(table, column, header); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, column, header); }
      });
    });
  });

  function element(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function relMark(grade, judged) {
    if (!judged) return element("span", {"class": "rel", title: "labels not available"}, "·");
    if (grade === null || grade === undefined) return element("span", {"class": "rel", title: "not judged"}, "–");
    return element("span", {"class": "rel r" + Math.min(grade, 2), title: "relevance " + grade}, String(grade));
  }

  function showQuery(drill, data, index) {
    var query = data.queries[index];
    var out = drill.querySelector(".drill-out");
    out.textContent = "";
    out.setAttribute("data-query", query.id);
    out.appendChild(element("p", {"class": "query-text"}, query.id + ": " + (query.text || "(text not available)")));
    if (data.judged) {
      out.appendChild(element("p", {"class": "muted"}, query.relevant + " relevant document(s) judged; spread " +
        "between the best and worst system on " + data.metrics[0] + ": " + query.spread.toFixed(4)));
    }
    var table = element("table", {"class": "query-metrics"});
    var head = table.createTHead().insertRow();
    head.appendChild(element("th", {}, "system"));
    data.metrics.forEach(function (metric) { head.appendChild(element("th", {}, metric)); });
    var body = table.createTBody();
    data.systems.forEach(function (system, s) {
      var row = body.insertRow();
      row.appendChild(element("td", {}, system));
      query.metrics[s].forEach(function (value) { row.appendChild(element("td", {}, value.toFixed(4))); });
    });
    out.appendChild(table);
    var grid = element("div", {"class": "rankings"});
    data.systems.forEach(function (system, s) {
      var card = element("div", {"class": "ranking", "data-system": system});
      var seeds = data.seeds[s].length > 1 ? " (seed " + data.seeds[s][0] + ")" : "";
      card.appendChild(element("h4", {}, system + seeds + ": " + data.metrics[0] + " " +
        query.metrics[s][0].toFixed(4)));
      var list = element("ol");
      query.top[s].forEach(function (hit) {
        var item = element("li");
        item.appendChild(relMark(hit[2], data.judged));
        item.appendChild(document.createTextNode((data.titles[hit[0]] || hit[0]) + " "));
        item.appendChild(element("span", {"class": "doc"}, "[" + hit[0] + ", " + hit[1].toFixed(3) + "]"));
        list.appendChild(item);
      });
      if (!query.top[s].length) list.appendChild(element("li", {"class": "muted"}, "no stored ranking"));
      card.appendChild(list);
      grid.appendChild(card);
    });
    if (query.judged.length) {
      out.appendChild(element("h4", {}, "Judged relevant documents: the rank each system gives them"));
      var ranks = element("table", {"class": "judged"});
      var top = ranks.createTHead().insertRow();
      ["label", "document"].concat(data.systems).forEach(function (name, i) {
        top.appendChild(element("th", i < 2 ? {"class": "text"} : {}, name));
      });
      var rows = ranks.createTBody();
      query.judged.forEach(function (doc) {
        var row = rows.insertRow();
        var label = row.insertCell();
        label.appendChild(relMark(doc[1], true));
        var name = row.insertCell();
        name.className = "text";
        name.appendChild(document.createTextNode((data.titles[doc[0]] || doc[0]) + " "));
        name.appendChild(element("span", {"class": "doc"}, "[" + doc[0] + "]"));
        doc[2].forEach(function (rank) {
          row.appendChild(element("td", rank === null ? {"class": "muted", title: "not in the stored ranking"} : {},
                                  rank === null ? "–" : String(rank)));
        });
      });
      out.appendChild(ranks);
      if (query.relevant > query.judged.length) {
        out.appendChild(element("p", {"class": "muted"}, "the first " + query.judged.length + " of " +
          query.relevant + ", highest label first"));
      }
    }
    out.appendChild(element("h4", {}, "Top " + data.top + " of each system"));
    out.appendChild(grid);
  }

  document.querySelectorAll(".drill").forEach(function (drill) {
    var data = JSON.parse(drill.querySelector("script[type='application/json']").textContent);
    var select = drill.querySelector("select");
    data.queries.forEach(function (query, i) {
      var text = query.text ? ": " + (query.text.length > 90 ? query.text.slice(0, 89) + "…" : query.text) : "";
      select.appendChild(element("option", {value: String(i)}, query.id + text));
    });
    select.addEventListener("change", function () {
      if (select.value !== "") showQuery(drill, data, Number(select.value));
    });
  });
})();
