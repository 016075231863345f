// The fetcher assignment in the browser's tracker client (web_demo/tracker.js) against the
// shared message vectors, and its use by the scheduler's view (docs/signaling.md, "Fetcher
// assignment"; docs/scheduling.md rule 8).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { FETCHERS_CAP, TrackerClient, parseFetchers } from "../../web_demo/tracker.js";
import { FakeSocket, fakeTracker, until } from "./fake_socket.mjs";

const doc = JSON.parse(
  readFileSync(new URL("../../docs/vectors/signaling/fetchers_message.json", import.meta.url), "utf8"),
);
const IH = doc.info_hash;
const ME = "-WW0208-meeeeeeeeeee";

for (const c of doc.cases) {
  test(`fetchers message: ${c.name}`, () => {
    if ("error" in c) {
      assert.throws(() => parseFetchers(c.message, IH), (e) => e.message.includes(c.error));
      return;
    }
    assert.deepEqual(parseFetchers(c.message, IH), c.expect);
  });
}

test("tracker: asks with its caps, holds the assignment while connected, refuses a malformed one", async () => {
  const client = fakeTracker(TrackerClient, {
    infoHash: IH,
    peerId: ME,
    config: { uplink_bytes_per_s: 500000, reconnect_initial_s: 10 },
  });
  client.start();
  try {
    await until(() => FakeSocket.last?.sent.length > 0);
    const ws = FakeSocket.last;
    assert.deepEqual(ws.sent[0].caps, [FETCHERS_CAP, "uplink:500000"]);
    assert.deepEqual(client.fetcherAssignment(), { fetchers: [], fetchers_until: 0 });

    const ok = doc.cases.find((c) => c.name === "two fetchers").message;
    const before = performance.now() / 1000;
    ws.receive(ok);
    const got = client.fetcherAssignment();
    assert.deepEqual(got.fetchers, ok.fetchers);
    assert.ok(got.fetchers_until >= before + ok.valid_s - 1e-6);
    assert.equal(client.stats.fetchers_received, 1);

    ws.receive({ ...ok, fetchers: [] }); // malformed: counted, the earlier one stays
    assert.equal(client.stats.fetchers_refused, 1);
    assert.deepEqual(client.fetcherAssignment(), got);

    ws.close(1006); // the server's word holds only while we hear it
    await until(() => client.assignment === null);
    assert.deepEqual(client.fetcherAssignment(), { fetchers: [], fetchers_until: 0 });
  } finally {
    client.stop();
  }
});

test("tracker: fetcher_assignment false sends no cap", async () => {
  const client = fakeTracker(TrackerClient, {
    infoHash: IH,
    peerId: ME,
    config: { fetcher_assignment: false },
  });
  client.start();
  try {
    await until(() => FakeSocket.last?.sent.length > 0);
    assert.equal(FakeSocket.last.sent[0].caps, undefined);
  } finally {
    client.stop();
  }
});
