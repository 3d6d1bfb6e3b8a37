// The console's own script: keeps relative times and expiry countdowns current. Everything else
// is htmx; nothing here is evaluated from the page.
(function () {
  'use strict';

  function relative(at, now) {
    var seconds = Math.round((at - now) / 1000);
    var size = Math.abs(seconds);
    var text =
      size < 60
        ? size + ' s'
        : size < 3600
          ? Math.floor(size / 60) + ' min'
          : size < 86400
            ? Math.floor(size / 3600) + ' h'
            : Math.floor(size / 86400) + ' d';
    return seconds >= 0 ? 'in ' + text : text + ' ago';
  }

  function countdown(at, now) {
    var left = Math.floor((at - now) / 1000);
    if (left <= 0) return 'expired';
    var h = Math.floor(left / 3600);
    var m = Math.floor((left % 3600) / 60);
    var s = left % 60;
    var mmss = (h ? h + ':' + String(m).padStart(2, '0') : String(m)) + ':' + String(s).padStart(2, '0');
    return 'expires in ' + mmss;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll('time[data-relative]').forEach(function (el) {
      var rel = el.querySelector('.rel');
      var at = Date.parse(el.getAttribute('datetime'));
      if (rel && !isNaN(at)) rel.textContent = relative(at, now);
    });
    document.querySelectorAll('[data-countdown]').forEach(function (el) {
      var at = Date.parse(el.getAttribute('data-countdown'));
      if (isNaN(at)) return;
      el.textContent = countdown(at, now);
      el.classList.toggle('soon', at - now < 5 * 60 * 1000);
    });
  }

  document.addEventListener('DOMContentLoaded', tick);
  document.addEventListener('htmx:afterSettle', tick);
  setInterval(tick, 1000);
})();
