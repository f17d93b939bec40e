// widget.js: the link widget's module (anywidget), appended to commrouter.js in the widget's
// `_esm`. The hub above defines (or keeps) `globalThis.commrouter`; this part gives the kernel's
// link a channel over the widget model's custom messages, on the page's own kernel connection
// (no WebSocket of its own, no token): JupyterLab, Notebook 7, VS Code, Colab.
//
// Each model instance on a page (one per tab, per widget manager) is a *window* with an id of its
// own, new at each open of the link. Page -> kernel custom messages:
//   {window, open: {kernel_id, resume?}}   the comm open (the kernel answers #comm_open_ack)
//   {window, data}                         one comm message's data (values, batches, #ack, pong)
//   {window, close: true}                  the page ends the link
// Kernel -> page: {window, data} and {window, close: true}. IOPub reaches every tab: each window
// takes only what names its id. The model's `config` holds the install settings and `values` the
// last value per address (bounded), which the widget manager restores on reload and saves in the
// notebook's widget state; the link starts from them, and keeps `values` current on this page.
// docs/frontend.md, "The widget transport".

const VALUES_LIMIT = 1000; // addresses in the model's `values` (the kernel keeps as many)

const windowId = () =>
  globalThis.crypto && crypto.randomUUID
    ? crypto.randomUUID().replaceAll("-", "")
    : Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");

// A link's channel over one model (see "A link's channel carries its comm" in commrouter.js).
class WidgetChannel {
  constructor(model, id) {
    this.model = model;
    this.windowId = id;
    this.link = null;
    this.live = true; // false once the model is gone (or a send failed)
    this.ignored = 0; // custom messages for this window that were not a channel message
  }

  get ready() {
    return this.live;
  }

  post(message) {
    if (!this.live) return;
    try {
      this.model.send({ window: this.windowId, ...message });
    } catch (error) {
      this.live = false; // the model's comm is gone (a closed or restarted kernel)
      if (this.link) this.link.log("widget send failed:", error);
    }
  }

  // Each open is a new window (as each open of the WebSocket channel is a new comm): an open
  // that waited behind a busy main shell and arrives late opens a window nobody listens to,
  // never the live one again.
  open() {
    this.windowId = windowId();
    const data = this.link.openData();
    this.link.log("widget open, window", this.windowId, "resume", data.resume);
    this.post({ open: data });
    this.link.openSent(this);
  }

  send(data) {
    this.post({ data });
  }

  close() {
    this.post({ close: true });
  }

  release() {} // the model stays: the next open uses it again

  // A custom message from the kernel: only this window's.
  receive(content) {
    if (!content || typeof content !== "object" || content.window !== this.windowId) return;
    const link = this.link;
    if (!link) return;
    if (content.close === true) {
      link.log("comm closed by the kernel");
      link.channelClosed(this, "comm closed by the kernel", false);
    } else if (content.data && typeof content.data === "object") {
      link.channelReceived(this, content.data);
    } else {
      this.ignored++;
      link.log("widget message ignored (neither data nor close):", content);
    }
  }
}

// The model's `values`, kept current on this page (at most once per task): the notebook's saved
// widget state then holds the last values. Set locally only (never sent to the kernel, which
// keeps its own copy).
function keepValues(model, link) {
  let due = false;
  return () => {
    if (due) return;
    due = true;
    setTimeout(() => {
      due = false;
      const entries = [...link.memory.entries()].slice(-VALUES_LIMIT);
      try {
        model.set("values", Object.fromEntries(entries));
      } catch (error) {
        link.log("could not keep the widget's values:", error);
      }
    }, 0);
  };
}

function initialize({ model }) {
  const hub = globalThis.commrouter;
  const config = model.get("config") || {};
  if (typeof config.kernel_id !== "string" || !config.kernel_id) {
    console.error("[commrouter] the link widget has no kernel_id in its config");
    return undefined;
  }
  const channel = new WidgetChannel(model, null); // its window id comes with each open
  const onCustom = (content) => channel.receive(content);
  model.on("msg:custom", onCustom);
  const link = hub.kernel(config.kernel_id);
  // the last values the kernel (or the saved notebook) had: synced variables made later start
  // from them; what this page already saw stays
  const saved = model.get("values");
  if (saved && typeof saved === "object") {
    for (const [address, value] of Object.entries(saved)) {
      if (!link.memory.has(address)) link.remember(address, value);
    }
  }
  channel.link = link;
  hub.install(config, channel);
  link.onValue = keepValues(model, link);
  model.commrouterChannel = channel; // for tests and the console: the window's channel
  return () => {
    channel.live = false;
    model.off("msg:custom", onCustom);
    if (channel.link.onValue) channel.link.onValue = null;
    channel.link.channelClosed(channel, "the widget model is gone", false);
  };
}

// A view is shown by the kernel's install display: the link should be open. If it is not, and
// no open is under way (the page gave up retrying, or the kernel closed the window), open it
// again on this model's channel.
function render({ model, el }) {
  const config = model.get("config") || {};
  el.style.display = "none";
  el.setAttribute("data-commrouter-link", config.kernel_id || "");
  const link = globalThis.commrouter.links.get(config.kernel_id);
  if (link && link.transport === "widget" && !link.opened && !link.opening) {
    link.attempts = 0;
    link.openLink();
  }
}

export default { initialize, render };
