// Churnwatch console: keyboard, live queue.  No framework, no network but the console's own.
(function () {
  "use strict";
  var page = document.body.getAttribute("data-page");
  var typing = function (el) {
    return el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA");
  };
  var rows = function () { return Array.prototype.slice.call(document.querySelectorAll("#rows tr[data-href]")); };

  function move(step) {
    var list = rows();
    if (!list.length) return;
    var at = list.indexOf(document.activeElement);
    var next = at < 0 ? 0 : Math.max(0, Math.min(list.length - 1, at + step));
    list[next].focus();
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var t = ev.target;
    if (typing(t)) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    if (ev.key === "/") {
      var s = document.getElementById("search");
      if (s) { ev.preventDefault(); s.focus(); s.select(); }
    } else if (page === "queue" && (ev.key === "j" || ev.key === "ArrowDown")) {
      ev.preventDefault(); move(1);
    } else if (page === "queue" && (ev.key === "k" || ev.key === "ArrowUp")) {
      ev.preventDefault(); move(-1);
    } else if (page === "queue" && ev.key === "Enter" && t.getAttribute && t.getAttribute("data-href")) {
      window.location.href = t.getAttribute("data-href");
    } else if (page === "card" && (ev.key === "u" || ev.key === "Escape")) {
      window.location.href = "/";
    } else if (page === "card" && /^[1-5]$/.test(ev.key)) {
      var b = document.querySelector('.outcomes button[data-key="' + ev.key + '"]');
      if (b) { ev.preventDefault(); b.focus(); }
    }
  });

  document.addEventListener("click", function (ev) {
    var tr = ev.target.closest ? ev.target.closest("tr[data-href]") : null;
    if (tr && ev.target.tagName !== "A") window.location.href = tr.getAttribute("data-href");
  });

  // Live queue: the server says when its picture changed; the rows are fetched again.
  if (page === "queue") {
    var selected = -1;
    var refresh = function () {
      selected = rows().indexOf(document.activeElement);
      fetch(window.location.pathname + window.location.search,
            { headers: { "X-Fragment": "rows" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          document.getElementById("rows").innerHTML = data.rows;
          var feed = document.getElementById("feed");
          if (feed) feed.innerHTML = data.feed;
          var list = rows();
          if (selected >= 0 && list.length) list[Math.min(selected, list.length - 1)].focus();
        })
        .catch(function () {});
    };
    var seen = null;
    if (window.EventSource) {
      var source = new EventSource("/events");
      source.onmessage = function (ev) {
        if (seen !== null && ev.data !== seen) refresh();
        seen = ev.data;
      };
    } else {
      setInterval(refresh, 10000);
    }
  }
})();
