// The one websocket to /api/events, reconnecting by itself with capped backoff.

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 3000;

// `onOpen` runs on every (re)connection, when the caller must reload what it shows (a promise;
// if it fails, the connection is dropped and tried again);
// `onEvent(frame)` for each event; `onState("connecting" | "live" | "offline")` for the
// indicator. A socket that closes before it opened may have been refused for want of the
// token, which a browser does not tell: `unreachable()` then finds out before the next
// attempt, and resolves true when that attempt may come at once (a token was given).
export class Live {
  constructor(url, { unreachable, onOpen, onEvent, onState }) {
    this.url = url;
    this.handlers = { unreachable, onOpen, onEvent, onState };
    this.delay = FIRST_RETRY_MS;
    this.socket = null;
    this.timer = null;
    this.wasLive = false;
    // Back on a tab that waits to reconnect (a laptop woken up): try at once.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.timer) this.retryNow();
    });
  }

  connect() {
    this.timer = null;
    if (this.socket) return;
    const socket = new WebSocket(this.url());
    this.socket = socket;
    let opened = false;
    socket.onopen = async () => {
      if (this.socket !== socket) return;
      opened = true;
      this.wasLive = true;
      this.handlers.onState("live");
      try {
        await this.handlers.onOpen();
        this.delay = FIRST_RETRY_MS;
      } catch {
        socket.close(); // what it shows could not be read: connect again, after the backoff
      }
    };
    socket.onmessage = (message) => {
      if (this.socket === socket) this.handlers.onEvent(JSON.parse(message.data));
    };
    socket.onclose = async () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.handlers.onState(this.wasLive ? "offline" : "connecting");
      if (!opened && (await this.handlers.unreachable().catch(() => false))) {
        this.delay = FIRST_RETRY_MS;
      }
      this.retryLater();
    };
  }

  retryLater() {
    clearTimeout(this.timer);
    const jitter = 0.8 + Math.random() * 0.4;
    this.timer = setTimeout(() => this.connect(), this.delay * jitter);
    this.delay = Math.min(this.delay * 2, MAX_RETRY_MS);
  }

  // Reconnect now: a socket still open is closed first (its close schedules the attempt).
  retryNow() {
    clearTimeout(this.timer);
    this.timer = null;
    this.delay = FIRST_RETRY_MS;
    if (this.socket) this.socket.close();
    else this.connect();
  }
}
