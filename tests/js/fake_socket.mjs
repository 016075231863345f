// A WebSocket stand-in for the tracker client's unit tests: opens on the next tick, records
// what is sent (parsed JSON), and lets a test deliver server messages with receive().
export class FakeSocket {
  static last = null;
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.last = this;
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.();
    }, 0);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000) {
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code }), 0);
  }
  receive(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
}

/** A TrackerClient (the class under test) on a FakeSocket at ws://t/announce with a fixed
 * random (0.5); `options` add to or replace those. */
export function fakeTracker(TrackerClient, options) {
  FakeSocket.last = null;
  return new TrackerClient({ url: "ws://t/announce", WebSocket: FakeSocket, random: () => 0.5, ...options });
}

/** Wait (about a second at most) until `pred()` holds; fails the test otherwise. */
export async function until(pred) {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!pred()) throw new Error("condition not reached");
}
