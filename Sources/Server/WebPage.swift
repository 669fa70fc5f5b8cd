import Foundation

/// The chat page served at `GET /`: one self-contained HTML document (inline CSS and script,
/// system fonts, no requests anywhere but this server). It lists models from /v1/models,
/// streams answers from /v1/chat/completions (SSE read with fetch + ReadableStream), keeps the
/// conversation in the page, and shows tokens/s from the stream's usage. Model text only ever
/// reaches the DOM through textContent.
///
/// The Documents menu lists the collections the key may read (GET /v1/rag/collections); with
/// one chosen, each question is answered from it (chat's `collections` field) and the answer
/// shows its sources (file:line, cited ones marked) from the stream's `citations`.
///
/// `/?model=ID` preselects a model, `&collection=NAME` a collection.
public enum WebPage {
    public static func response() -> HTTPResponse {
        HTTPResponse(status: 200, headers: [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            // The browser itself refuses anything but this server: no CDN, fonts or beacons.
            ("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"),
        ], body: .bytes(Data(html.utf8)))
    }

    public static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Steward chat</title>
<link rel="icon" href="data:,">
<style>
  :root { --bg: #f6f7f9; --panel: #ffffff; --ink: #1d2330; --muted: #667085; --line: #d9dde4;
          --user: #e7efff; --accent: #2f5bd3; --error: #b42318; --error-bg: #fdecea; }
  @media (prefers-color-scheme: dark) {
    :root { --bg: #14161b; --panel: #1c1f26; --ink: #e6e8ee; --muted: #98a0b0; --line: #2e333d;
            --user: #233150; --accent: #7ea2ff; --error: #ff8a80; --error-bg: #3a1f1f; }
  }
  * { box-sizing: border-box; }
  html, body { height: 100%; margin: 0; }
  body { background: var(--bg); color: var(--ink); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
         display: flex; flex-direction: column; }
  header { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; padding: 10px 16px;
           background: var(--panel); border-bottom: 1px solid var(--line); }
  header h1 { font-size: 17px; margin: 0 8px 0 0; }
  header label { display: flex; gap: 6px; align-items: center; color: var(--muted); font-size: 13px; }
  select, input, textarea, button { font: inherit; color: inherit; background: var(--bg);
           border: 1px solid var(--line); border-radius: 6px; padding: 5px 8px; }
  input[type=number] { width: 80px; }
  button { cursor: pointer; background: var(--panel); }
  button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
  button:disabled { opacity: .45; cursor: default; }
  #status { margin-left: auto; color: var(--muted); font-size: 13px; }
  #log { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 12px; }
  .empty { color: var(--muted); text-align: center; margin-top: 15vh; }
  .msg { max-width: 52rem; width: fit-content; min-width: 8rem; padding: 8px 12px; border-radius: 10px;
         background: var(--panel); border: 1px solid var(--line); }
  .msg.user { align-self: flex-end; background: var(--user); }
  .msg .who { font-size: 12px; color: var(--muted); margin-bottom: 2px; }
  .msg .body { white-space: pre-wrap; overflow-wrap: anywhere; }
  .msg.pending .body:empty::after { content: "…"; color: var(--muted); }
  .msg .meta { font-size: 12px; color: var(--muted); margin-top: 4px; }
  .msg .meta:empty { display: none; }
  .msg .sources { font-size: 12px; color: var(--muted); margin-top: 4px; border-top: 1px solid var(--line); padding-top: 4px; }
  .msg .sources .cited { color: var(--ink); font-weight: 600; }
  #collection-label[hidden] { display: none; }
  .error { color: var(--error); background: var(--error-bg); border-radius: 6px; padding: 6px 8px; margin-top: 6px;
           white-space: pre-wrap; }
  footer { display: flex; gap: 8px; padding: 10px 16px; background: var(--panel); border-top: 1px solid var(--line); }
  footer textarea { flex: 1; resize: vertical; min-height: 44px; max-height: 40vh; }
  #system { width: 100%; }
  details { padding: 0 16px; }
  details summary { cursor: pointer; color: var(--muted); font-size: 13px; padding: 6px 0; }
</style>
</head>
<body>
<header>
  <h1>Steward</h1>
  <label>Model <select id="model" aria-label="Model"></select></label>
  <label id="collection-label" hidden>Documents <select id="collection" aria-label="Documents"><option value="">none</option></select></label>
  <label>Temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
  <label>Max tokens <input id="max-tokens" type="number" min="1" step="1" value="256"></label>
  <label>API key <input id="api-key" type="password" autocomplete="off" size="14" placeholder="if the server needs one"></label>
  <button id="clear" type="button" title="Forget the conversation">New chat</button>
  <span id="status">Loading models…</span>
</header>
<details>
  <summary>System prompt</summary>
  <textarea id="system" rows="2" placeholder="Optional instructions sent before the conversation"></textarea>
</details>
<main id="log" aria-live="polite"><div class="empty" id="empty">Pick a model and say something.</div></main>
<footer>
  <textarea id="input" rows="2" placeholder="Message (Enter sends, Shift+Enter for a new line)"></textarea>
  <button id="send" class="primary" type="button">Send</button>
  <button id="stop" type="button" disabled>Stop</button>
</footer>
<script>
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const log = $("log"), input = $("input"), modelSelect = $("model");
  const state = { messages: [], controller: null, busy: false };

  function setStatus(text) { $("status").textContent = text; }

  // A server with keys needs Authorization on every call. The key lives in this tab only
  // (sessionStorage); a page opened with HTTP Basic credentials needs none here.
  const keyInput = $("api-key");
  keyInput.value = sessionStorage.getItem("steward-key") || "";
  function auth(headers) {
    const key = keyInput.value.trim();
    return key ? Object.assign({ Authorization: "Bearer " + key }, headers || {}) : (headers || {});
  }
  keyInput.addEventListener("change", () => { sessionStorage.setItem("steward-key", keyInput.value.trim()); loadCollections().then(loadModels); });

  function setBusy(busy) {
    state.busy = busy;
    $("send").disabled = busy;
    $("stop").disabled = !busy;
    $("clear").disabled = busy;
    modelSelect.disabled = busy;
  }

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  // Every piece of text goes in through textContent: model output is never parsed as HTML.
  function addMessage(role, text) {
    const empty = $("empty");
    if (empty) empty.remove();
    const div = document.createElement("div");
    div.className = "msg " + role;
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = role === "user" ? "You" : (modelSelect.value || "assistant");
    const body = document.createElement("div");
    body.className = role === "user" ? "body" : "body answer";
    body.textContent = text;
    const meta = document.createElement("div");
    meta.className = "meta";
    div.append(who, body, meta);
    log.append(div);
    scrollDown();
    return { div, body, meta };
  }

  function showError(view, message) {
    const e = document.createElement("div");
    e.className = "error";
    e.textContent = message;
    view.div.append(e);
    scrollDown();
  }

  // The API's own words: OpenAI's {"error": {"message"}}, Ollama's {"error": "..."}, else the status.
  async function errorFrom(res) {
    const text = await res.text().catch(() => "");
    try {
      const j = JSON.parse(text);
      if (j && j.error) return typeof j.error === "string" ? j.error : (j.error.message || JSON.stringify(j.error));
    } catch (_) { /* not JSON */ }
    return "HTTP " + res.status + (text ? ": " + text : "");
  }

  // Server-Sent Events over fetch: split the byte stream into lines, hand each `data:` payload
  // (JSON) to onEvent; true when the stream ended with [DONE].
  async function readEvents(res, onEvent) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        let line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (!line.startsWith("data:")) continue;
        let data = line.slice(5);
        if (data.startsWith(" ")) data = data.slice(1);
        if (data === "[DONE]") { reader.cancel().catch(() => {}); return true; }
        let event;
        try { event = JSON.parse(data); } catch (_) { continue; }
        onEvent(event);
      }
    }
    return false;
  }

  function number(id) {
    const v = parseFloat($(id).value);
    return Number.isFinite(v) ? v : null;
  }

  // Sends `text` as the next user turn and streams the answer. Resolves to a summary.
  async function send(text) {
    text = (text || "").trim();
    if (state.busy || !text) return null;
    const model = modelSelect.value;
    const userView = addMessage("user", text);
    if (!model) {
      showError(userView, "No model to send to: the server lists none (start steward serve with --model).");
      return { error: "no model" };
    }
    state.messages.push({ role: "user", content: text });
    const view = addMessage("assistant", "");
    view.div.classList.add("pending");
    const messages = [];
    const system = $("system").value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push(...state.messages);
    const request = { model, messages, stream: true, stream_options: { include_usage: true } };
    const collection = $("collection").value;
    if (collection) request.collections = [collection];
    const temperature = number("temperature");
    if (temperature !== null) request.temperature = temperature;
    const maxTokens = number("max-tokens");
    if (maxTokens !== null && maxTokens > 0) request.max_tokens = Math.floor(maxTokens);

    const controller = new AbortController();
    state.controller = controller;
    setBusy(true);
    setStatus("Generating…");
    const t0 = performance.now();
    let tFirst = null, answer = "", pieces = 0, usage = null, finish = null, error = null, stopped = false, sawDone = false, citations = null;
    try {
      const res = await fetch("/v1/chat/completions", {
        method: "POST", headers: auth({ "Content-Type": "application/json" }),
        body: JSON.stringify(request), signal: controller.signal,
      });
      if (!res.ok) {
        error = await errorFrom(res);
      } else {
        sawDone = await readEvents(res, (event) => {
          if (event.error) { error = event.error.message || JSON.stringify(event.error); return; }
          if (event.usage) usage = event.usage;
          if (event.citations) citations = event.citations;
          for (const choice of event.choices || []) {
            const delta = choice.delta || {};
            if (delta.content) {
              if (tFirst === null) tFirst = performance.now();
              answer += delta.content;
              pieces += 1;
              view.body.textContent = answer;
              scrollDown();
            }
            if (choice.finish_reason) finish = choice.finish_reason;
          }
        });
        if (!sawDone && !error && !controller.signal.aborted) error = "The stream ended before [DONE]: the server stopped or the connection dropped.";
      }
    } catch (e) {
      if (e && e.name === "AbortError") stopped = true;
      else error = "Request failed: " + (e && e.message ? e.message : String(e));
    }
    const tEnd = performance.now();
    state.controller = null;
    view.div.classList.remove("pending");
    if (answer) {
      state.messages.push({ role: "assistant", content: answer });
    } else if (!stopped) {
      // Nothing came back: take the turn out of the history so a retry starts clean.
      state.messages.pop();
    }
    // Tokens from the stream's usage; a stopped stream has none, so count the pieces (≈ tokens).
    const tokens = usage ? usage.completion_tokens : pieces;
    const parts = [];
    if (tokens || answer) parts.push((usage ? "" : "~") + tokens + " tokens");
    if (tFirst !== null && tokens > 0) {
      const seconds = Math.max((tEnd - tFirst) / 1000, 1e-3);
      parts.push((tokens / seconds).toFixed(1) + " tok/s");
      parts.push("first token " + ((tFirst - t0) / 1000).toFixed(2) + " s");
    }
    parts.push(((tEnd - t0) / 1000).toFixed(2) + " s total");
    if (stopped) parts.push("stopped");
    else if (finish) parts.push("finish: " + finish);
    view.meta.textContent = parts.join(" · ");
    if (citations) showSources(view, citations);
    if (error) showError(view, error);
    setBusy(false);
    setStatus(error ? "Error" : stopped ? "Stopped" : "Ready");
    input.focus();
    return { tokens, answer, error, stopped };
  }

  // The sources a grounded answer was given, cited ones first and marked.
  function showSources(view, citations) {
    const box = document.createElement("div");
    box.className = "sources";
    if (!citations.length) {
      box.textContent = "No passage in the collection matched the question.";
    } else {
      const title = document.createElement("div");
      title.textContent = "Sources";
      box.append(title);
      for (const c of citations) {
        const line = document.createElement("div");
        line.className = c.cited ? "source cited" : "source";
        line.textContent = "[" + c.index + "] " + c.file + ":" + c.line + " (" + c.collection + ")" + (c.cited ? " — cited" : "");
        line.title = c.path;
        box.append(line);
      }
    }
    view.div.append(box);
    scrollDown();
  }
  // Collections this key may read; the menu stays hidden when there are none (or no access).
  async function loadCollections() {
    const select = $("collection");
    const keep = select.value || params.get("collection") || "";
    try {
      const res = await fetch("/v1/rag/collections", { headers: auth() });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const names = ((await res.json()).data || []).map((c) => c.name);
      const none = document.createElement("option");
      none.value = "";
      none.textContent = "none";
      select.replaceChildren(none, ...names.map((n) => { const o = document.createElement("option"); o.value = n; o.textContent = n; return o; }));
      if (names.includes(keep)) select.value = keep;
      $("collection-label").hidden = names.length === 0;
    } catch (_) {
      $("collection-label").hidden = true;
    }
  }
  async function loadModels() {
    let ids = [];
    try {
      const res = await fetch("/v1/models", { headers: auth() });
      if (!res.ok) throw new Error(await errorFrom(res));
      const list = await res.json();
      ids = (list.data || []).map((m) => m.id);
      // /v1/models also lists embedding models; /api/tags lists only the ones that chat.
      try {
        const tags = await fetch("/api/tags", { headers: auth() });
        if (tags.ok) {
          const names = new Set(((await tags.json()).models || []).map((m) => m.name));
          const chat = ids.filter((id) => names.has(id));
          if (chat.length) ids = chat;
        }
      } catch (_) { /* keep the full list */ }
    } catch (e) {
      setStatus("Could not list models: " + (e && e.message ? e.message : String(e)));
      return false;
    }
    modelSelect.replaceChildren(...ids.map((id) => {
      const o = document.createElement("option");
      o.value = id;
      o.textContent = id;
      return o;
    }));
    const wanted = params.get("model");
    if (wanted && ids.includes(wanted)) modelSelect.value = wanted;
    setStatus(ids.length ? "Ready" : "No models loaded");
    return ids.length > 0;
  }

  function submit() {
    const text = input.value;
    if (!text.trim() || state.busy) return;
    input.value = "";
    send(text);
  }

  $("send").addEventListener("click", submit);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  $("stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
  $("clear").addEventListener("click", () => {
    if (state.busy) return;
    state.messages = [];
    log.replaceChildren();
    const empty = document.createElement("div");
    empty.className = "empty";
    empty.id = "empty";
    empty.textContent = "New conversation.";
    log.append(empty);
    input.focus();
  });

  loadCollections().then(loadModels).then(() => input.focus());
})();
</script>
</body>
</html>
"""#
}
