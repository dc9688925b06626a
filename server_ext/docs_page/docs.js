// The claude-nb API page: renders {base_url}v1/openapi.json for a person and lets them try each
// route with this page's Jupyter session (the cookie, plus the X-XSRFToken header Jupyter
// requires on requests that change something). No library, nothing loaded from outside.
"use strict";

(function () {
  const body = document.body;
  const BASE = body.dataset.baseUrl || "/";
  const SUPPORT = "x-claude-nb-support";
  const BY_VALUE = "x-claude-nb-support-by-value";
  const REFUSED = "x-claude-nb-refused";
  const EXAMPLE = "x-claude-nb-example";
  const SERVER_URL = window.location.origin + BASE;
  let spec = null;

  function xsrfToken() {
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("_xsrf="));
    return cookie ? decodeURIComponent(cookie.slice(6)) : (body.dataset.xsrfToken || "");
  }

  // -- tiny DOM helpers -----------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Descriptions use `code` spans; everything else stays text (never innerHTML).
  function prose(text) {
    const span = el("span");
    String(text || "").split(/(`[^`]+`)/).forEach((part) => {
      if (part.startsWith("`") && part.endsWith("`") && part.length > 1) span.append(el("code", {}, part.slice(1, -1)));
      else if (part) span.append(part);
    });
    return span;
  }

  function badge(level) {
    return level ? el("span", { class: "badge " + level, title: level }, level) : null;
  }

  // -- schemas --------------------------------------------------------------------------------
  function refName(schema) {
    return schema && schema.$ref ? schema.$ref.split("/").pop() : null;
  }

  function resolve(schema) {
    let seen = 0;
    while (schema && schema.$ref && seen++ < 20) {
      schema = schema.$ref.split("/").slice(1).reduce((node, key) => node[key], spec);
    }
    return schema || {};
  }

  function typeOf(schema) {
    if (!schema) return "";
    const name = refName(schema);
    if (name) return el("a", { href: "#schema-" + name }, name);
    if (schema.const !== undefined) return JSON.stringify(schema.const);
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
    const alternatives = schema.anyOf || schema.oneOf;
    if (alternatives) {
      const out = el("span");
      alternatives.forEach((alt, i) => { if (i) out.append(" | "); out.append(typeOf(alt)); });
      return out;
    }
    if (schema.type === "array") {
      const out = el("span", {}, "array of ");
      out.append(schema.items ? typeOf(schema.items) : "any");
      return out;
    }
    const type = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || "any");
    const limits = [];
    if (schema.minimum !== undefined) limits.push("≥ " + schema.minimum);
    if (schema.maximum !== undefined) limits.push("≤ " + schema.maximum);
    if (schema.pattern) limits.push(schema.pattern);
    return limits.length ? type + " (" + limits.join(", ") + ")" : type;
  }

  function supportCell(schema) {
    const cell = el("td", { class: "support" }, badge(schema[SUPPORT]));
    const byValue = schema[BY_VALUE];
    if (byValue) {
      for (const [value, level] of Object.entries(byValue)) {
        cell.append(el("div", {}, el("code", {}, value), " ", badge(level)));
      }
    }
    return cell;
  }

  function fieldsTable(schema) {
    schema = resolve(schema);
    const props = schema.properties || {};
    const required = new Set(schema.required || []);
    const names = Object.keys(props);
    if (!names.length) return null;
    const table = el("table", { class: "fields" },
      el("tr", {}, el("th", {}, "Field"), el("th", {}, "Type"), el("th", {}, "Support"), el("th", {}, "Description")));
    for (const name of names) {
      const prop = props[name];
      table.append(el("tr", { "data-field": name },
        el("td", { class: "name" }, name, required.has(name) ? el("span", { class: "required" }, "required") : null),
        el("td", {}, typeOf(prop)),
        supportCell(prop),
        el("td", {}, prose(prop.description || ""))));
    }
    return table;
  }

  function refusals(schema) {
    const list = resolve(schema)[REFUSED];
    if (!list) return null;
    return el("ul", { class: "refusals" },
      Object.values(list).map((text) => el("li", {}, badge("refused"), prose(text))));
  }

  // -- code samples ---------------------------------------------------------------------------
  function samplesBlock(op) {
    const samples = op["x-codeSamples"] || [];
    if (!samples.length) return null;
    const wrap = el("div", { class: "samples" });
    const tabs = el("div", { class: "tabs" });
    const pre = el("pre", { class: "code sample" });
    samples.forEach((sample, i) => {
      const button = el("button", { type: "button", class: i === 0 ? "active" : "" }, sample.label);
      button.addEventListener("click", () => {
        tabs.querySelectorAll("button").forEach((b) => b.classList.remove("active"));
        button.classList.add("active");
        pre.textContent = sample.source;
      });
      tabs.append(button);
    });
    pre.textContent = samples[0].source;
    wrap.append(tabs, pre);
    return wrap;
  }

  // -- try it ---------------------------------------------------------------------------------
  function tryBlock(path, method, op) {
    const form = el("form", { class: "try" });
    const inputs = [];
    for (const param of op.parameters || []) {
      const input = el("input", { type: "text", name: param.name, "data-in": param.in,
        placeholder: param.in + (param.required ? ", required" : "") });
      inputs.push(input);
      form.append(el("label", {}, el("code", {}, param.name), " ", input));
    }
    const content = (op.requestBody && op.requestBody.content) || {};
    let textarea = null, fileInput = null;
    if (content["application/json"]) {
      const example = op[EXAMPLE] !== undefined ? op[EXAMPLE] : {};
      textarea = el("textarea", { name: "body", spellcheck: "false" });
      textarea.value = JSON.stringify(example, null, 2);
      form.append(el("label", {}, "Body (JSON)"), textarea);
    } else if (content["multipart/form-data"]) {
      fileInput = el("input", { type: "file", name: "file" });
      form.append(el("label", {}, el("code", {}, "file"), " ", fileInput));
    }
    const send = el("button", { type: "submit", class: "send" }, "Send");
    const status = el("span", { class: "status", role: "status" });
    const output = el("pre", { class: "code response", hidden: true });
    form.append(el("div", {}, send, status), output);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      send.disabled = true;
      status.className = "status";
      status.textContent = "sending…";
      output.hidden = false;
      output.textContent = "";
      try {
        await sendRequest(path, method, inputs, textarea, fileInput, status, output);
      } catch (err) {
        status.className = "status bad";
        status.textContent = "failed";
        output.textContent = String(err);
      } finally {
        send.disabled = false;
      }
    });
    return el("details", { class: "try-it" }, el("summary", {}, "Try it"), form);
  }

  async function sendRequest(path, method, inputs, textarea, fileInput, status, output) {
    let url = path;
    const query = new URLSearchParams();
    const headers = { "X-XSRFToken": xsrfToken() };
    for (const input of inputs) {
      const value = input.value.trim();
      if (!value) continue;
      if (input.dataset.in === "path") url = url.replace("{" + input.name + "}", encodeURIComponent(value));
      else if (input.dataset.in === "query") query.append(input.name, value);
      else if (input.dataset.in === "header") headers[input.name] = value;
    }
    let requestBody;
    if (textarea) {
      JSON.parse(textarea.value);              // say so here rather than as a 400
      requestBody = textarea.value;
      headers["Content-Type"] = "application/json";
    } else if (fileInput) {
      requestBody = new FormData();
      if (fileInput.files[0]) requestBody.append("file", fileInput.files[0]);
    }
    const qs = query.toString();
    const response = await fetch(BASE + url.replace(/^\//, "") + (qs ? "?" + qs : ""), {
      method: method.toUpperCase(), headers, body: requestBody, credentials: "same-origin",
    });
    status.className = "status " + (response.ok ? "ok" : "bad");
    status.textContent = response.status + " " + (response.statusText || "");
    const shown = ["request-id", "claude-nb-ignored", "content-type"]
      .filter((h) => response.headers.get(h))
      .map((h) => h + ": " + response.headers.get(h)).join("\n");
    output.textContent = shown ? shown + "\n\n" : "";
    const type = response.headers.get("content-type") || "";
    if (type.startsWith("text/event-stream") && response.body) {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        output.textContent += decoder.decode(value, { stream: true });
        output.scrollTop = output.scrollHeight;
      }
      return;
    }
    const text = await response.text();
    if (type.startsWith("application/json")) {
      try { output.textContent += JSON.stringify(JSON.parse(text), null, 2); return; } catch (e) { /* as text */ }
    }
    output.textContent += text.length > 20000 ? text.slice(0, 20000) + "\n…" : text;
  }

  // -- operations -----------------------------------------------------------------------------
  function responsesTable(op) {
    const table = el("table", { class: "responses" }, el("tr", {}, el("th", {}, "Status"), el("th", {}, "Answer")));
    for (const [code, response] of Object.entries(op.responses || {})) {
      const resolved = resolve(response);
      const media = Object.entries(resolved.content || {}).map(([type, m]) => {
        const name = refName(m.schema) || refName(m["x-claude-nb-event-schema"]) || refName(m["x-claude-nb-line-schema"]);
        return el("span", {}, " ", el("code", {}, type), name ? [" ", el("a", { href: "#schema-" + name }, name)] : null);
      });
      table.append(el("tr", {}, el("td", { class: "name" }, code), el("td", {}, prose(resolved.description || ""), media)));
    }
    return table;
  }

  function operationBlock(path, method, op) {
    const section = el("section", { class: "op", id: "op-" + op.operationId, "data-path": path, "data-method": method },
      el("div", { class: "op-head" }, el("span", { class: "method " + method }, method), el("span", { class: "path" }, path),
        el("span", { class: "summary" }, op.summary || "")));
    if (op.description) section.append(el("p", {}, prose(op.description)));
    if (op.security && op.security.some((s) => !Object.keys(s).length)) {
      section.append(el("p", { class: "muted" }, "Answers without a token too (less detail)."));
    }
    if (op.parameters && op.parameters.length) {
      const table = el("table", { class: "params" },
        el("tr", {}, el("th", {}, "Parameter"), el("th", {}, "In"), el("th", {}, "Type"), el("th", {}, "Description")));
      for (const p of op.parameters) {
        table.append(el("tr", {}, el("td", { class: "name" }, p.name, p.required ? el("span", { class: "required" }, "required") : null),
          el("td", {}, p.in), el("td", {}, typeOf(p.schema)), el("td", {}, prose(p.description || ""))));
      }
      section.append(el("h3", {}, "Parameters"), table);
    }
    const content = (op.requestBody && op.requestBody.content) || {};
    const bodyMedia = content["application/json"] || content["multipart/form-data"];
    if (bodyMedia) {
      const name = refName(bodyMedia.schema);
      section.append(el("h3", {}, "Request body ", name ? el("a", { href: "#schema-" + name }, name) : null),
        fieldsTable(bodyMedia.schema), refusals(bodyMedia.schema));
    }
    section.append(el("h3", {}, "Responses"), responsesTable(op));
    section.append(el("h3", {}, "Example"), samplesBlock(op));
    section.append(tryBlock(path, method, op));
    return section;
  }

  function render() {
    document.getElementById("server-url").textContent = SERVER_URL;
    document.getElementById("setup-code").textContent =
      "export JUPYTER_TOKEN=<the token `jupyter server list` shows>\n" +
      "curl " + SERVER_URL + "v1/models -H \"x-api-key: $JUPYTER_TOKEN\"\n\n" +
      "import os, anthropic\n" +
      "client = anthropic.Anthropic(base_url=\"" + SERVER_URL + "\", api_key=os.environ[\"JUPYTER_TOKEN\"])";
    const container = document.getElementById("operations");
    const toc = document.getElementById("toc");
    container.textContent = "";
    toc.append(el("h4", {}, "Start"), el("a", { href: "#start" }, "Getting started"));
    const byTag = new Map((spec.tags || []).map((t) => [t.name, []]));
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const tag = (op.tags || ["Other"])[0];
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push([path, method, op]);
      }
    }
    for (const [tag, ops] of byTag) {
      if (!ops.length) continue;
      const id = "tag-" + tag.toLowerCase().replace(/[^a-z0-9]+/g, "-");
      container.append(el("h2", { class: "tag-title", id }, tag));
      toc.append(el("h4", {}, tag));
      for (const [path, method, op] of ops) {
        container.append(operationBlock(path, method, op));
        toc.append(el("a", { href: "#op-" + op.operationId, title: method.toUpperCase() + " " + path },
          method.toUpperCase() + " " + path));
      }
    }
    container.append(el("h2", { class: "tag-title", id: "schemas" }, "Schemas"));
    toc.append(el("h4", {}, "Schemas"), el("a", { href: "#schemas" }, "All schemas"));
    for (const [name, schema] of Object.entries(spec.components.schemas)) {
      const section = el("section", { class: "op schema", id: "schema-" + name },
        el("div", { class: "op-head" }, el("span", { class: "path" }, name), badge(schema[SUPPORT])));
      if (schema.description) section.append(el("p", {}, prose(schema.description)));
      const table = fieldsTable(schema);
      if (table) section.append(table);
      else section.append(el("p", { class: "muted" }, typeOf(schema)));
      const refused = refusals(schema);
      if (refused) section.append(refused);
      container.append(section);
    }
    if (window.location.hash) {
      const target = document.getElementById(window.location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
    body.dataset.ready = "true";
  }

  fetch(BASE + "v1/openapi.json", { credentials: "same-origin" })
    .then((r) => {
      if (!r.ok) throw new Error("GET v1/openapi.json answered " + r.status);
      return r.json();
    })
    .then((doc) => { spec = doc; render(); })
    .catch((err) => {
      document.getElementById("operations").textContent = "Could not load the API description: " + err;
      body.dataset.ready = "error";
    });
})();
