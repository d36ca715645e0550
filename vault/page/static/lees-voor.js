/* "Lees voor" on the eenvoudig view of Mijn plan (issue 17 item 4).
 *
 * Reads the plan aloud with the browser's own speech synthesis: nothing leaves the
 * browser, no outside voice service. An extra: the buttons stay hidden unless this script
 * runs and the browser can speak, and the page works the same without it. Served as a file
 * of this site, the only script the page's Content-Security-Policy allows.
 */
(function () {
  "use strict";
  var box = document.getElementById("lees-voor");
  var source = document.getElementById("voorlezen");
  var synth = window.speechSynthesis;
  if (!box || !source || !synth || typeof window.SpeechSynthesisUtterance !== "function") {
    return;
  }
  var start = document.getElementById("lees-start");
  var pause = document.getElementById("lees-pauze");
  var resume = document.getElementById("lees-verder");
  var stop = document.getElementById("lees-stop");
  var lang = document.documentElement.lang === "en" ? "en-GB" : "nl-NL";
  var left = 0; // utterances still to be spoken
  var run = 0; // a stop or a new start makes the old utterances' events count for nothing

  // One utterance per heading, paragraph or item: short pieces, in the page's order, each
  // ending in a full stop so the voice pauses between a label ("Geld") and its sentence.
  function pieces() {
    var found = [];
    var nodes = source.querySelectorAll("h2, p, li");
    for (var i = 0; i < nodes.length; i += 1) {
      var node = nodes[i];
      if (node.tagName === "P" && node.closest("li")) {
        continue; // read as part of its item
      }
      var lines = node.innerText.split(/\n+/);
      var text = [];
      for (var j = 0; j < lines.length; j += 1) {
        var line = lines[j].trim();
        if (line) {
          text.push(/[.?!:]$/.test(line) ? line : line + ".");
        }
      }
      if (text.length) {
        found.push(text.join(" "));
      }
    }
    var title = document.querySelector("h1");
    if (title) {
      found.unshift(title.innerText.trim() + ".");
    }
    return found;
  }

  function voice() {
    var voices = synth.getVoices ? synth.getVoices() : [];
    for (var i = 0; i < voices.length; i += 1) {
      if (voices[i].lang && voices[i].lang.replace("_", "-") === lang) {
        return voices[i];
      }
    }
    return null;
  }

  function show(button, visible) {
    button.hidden = !visible;
  }

  function state(name) {
    show(start, name === "still");
    show(pause, name === "speaking");
    show(resume, name === "paused");
    show(stop, name !== "still");
  }

  function finished() {
    left -= 1;
    if (left <= 0) {
      left = 0;
      var hadFocus = box.contains(document.activeElement);
      state("still");
      if (hadFocus) {
        start.focus();
      }
    }
  }

  start.addEventListener("click", function () {
    run += 1;
    synth.cancel();
    var mine = run;
    var done = function () {
      if (mine === run) {
        finished();
      }
    };
    var texts = pieces();
    var chosen = voice();
    left = texts.length;
    state("speaking");
    pause.focus();
    for (var i = 0; i < texts.length; i += 1) {
      var utterance = new window.SpeechSynthesisUtterance(texts[i]);
      utterance.lang = lang;
      utterance.rate = 0.9; // a little slower than usual: easier to follow
      if (chosen) {
        utterance.voice = chosen;
      }
      utterance.onend = done;
      utterance.onerror = done;
      synth.speak(utterance);
    }
  });
  pause.addEventListener("click", function () {
    synth.pause();
    state("paused");
    resume.focus();
  });
  resume.addEventListener("click", function () {
    synth.resume();
    state("speaking");
    pause.focus();
  });
  stop.addEventListener("click", function () {
    run += 1;
    left = 0;
    synth.cancel();
    state("still");
    start.focus();
  });
  window.addEventListener("pagehide", function () {
    synth.cancel();
  });
  state("still");
  box.hidden = false;
})();
