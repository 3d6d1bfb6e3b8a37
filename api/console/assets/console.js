// The console's own script: keeps relative times and expiry countdowns current, and has a
// conversation's page follow its event stream. Everything else is htmx; nothing here is
// evaluated from the page.
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

  // A conversation's page follows its event stream: the model's text is written in as it comes,
  // and any other event fetches the transcript at once. While the stream is open the timed
  // refresh is held back; while it is not (refused, cut, reconnecting), the timed refresh goes on.
  var stream = { open: false, ours: false, fetching: false, stale: false, liveUrl: null, answer: null };
  var CHANGES = ['message', 'text', 'tool_call', 'approval_request', 'approval', 'action', 'tool_result', 'turn_end'];

  function follow() {
    var section = document.getElementById('conversation-live');
    var url = section && section.getAttribute('data-events');
    if (!url || !window.EventSource) return;
    stream.liveUrl = section.getAttribute('hx-get');
    var source = new EventSource(url);
    source.addEventListener('open', function () {
      stream.open = true;
    });
    source.addEventListener('error', function (e) {
      // A read the server failed and retries comes as an event named error: the stream stays open.
      if (!(e instanceof MessageEvent)) stream.open = false;
    });
    source.addEventListener('text_delta', function (e) {
      var piece = JSON.parse(e.data);
      if (piece.restart || !stream.answer || stream.answer.turn !== piece.turn) stream.answer = { turn: piece.turn, text: '' };
      stream.answer.text += piece.text;
      showAnswer();
    });
    CHANGES.forEach(function (kind) {
      source.addEventListener(kind, function () {
        // The transcript now holds what was streamed (or the turn moved on): the fetch shows it.
        if (kind !== 'message' && kind !== 'approval_request' && kind !== 'approval' && kind !== 'action') stream.answer = null;
        refresh();
      });
    });
    source.addEventListener('end', function () {
      source.close();
      stream.open = false;
      refresh();
    });
  }

  function refresh() {
    var section = document.getElementById('conversation-live');
    if (!section || !stream.liveUrl) return;
    if (stream.fetching) {
      stream.stale = true;
      return;
    }
    stream.fetching = true;
    stream.ours = true;
    htmx.ajax('GET', stream.liveUrl, { source: section, target: section, swap: 'outerHTML' }).then(fetched, fetched);
    stream.ours = false;
  }

  function fetched() {
    stream.fetching = false;
    if (stream.stale) {
      stream.stale = false;
      refresh();
    }
  }

  function showAnswer() {
    var box = stream.answer && document.querySelector('[data-answer-turn="' + stream.answer.turn + '"]');
    if (!box) return;
    box.querySelector('.text').textContent = stream.answer.text;
    box.hidden = false;
  }

  document.addEventListener('htmx:confirm', function (e) {
    if (stream.open && !stream.ours && e.detail.elt.id === 'conversation-live') e.preventDefault();
  });

  document.addEventListener('DOMContentLoaded', function () {
    tick();
    follow();
  });
  document.addEventListener('htmx:afterSettle', function () {
    tick();
    showAnswer();
  });
  setInterval(tick, 1000);
})();
