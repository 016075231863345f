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
