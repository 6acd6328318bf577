import { act, renderHook } from "@testing-library/react";
import { FakeSocket, fakeSocketFactory } from "../test/fakeSocket";
import { describeResult } from "../test/fixtures";
import { IDLE, reduceEvent, streamUrl, useStream } from "./useStream";

const request = { type: "run" as const, task: "describe" as const, image_ids: ["abc"], question: null };

beforeEach(() => {
  FakeSocket.instances = [];
});

function started() {
  const hook = renderHook(() => useStream(fakeSocketFactory));
  act(() => hook.result.current.run(request));
  const socket = FakeSocket.instances[0]!;
  return { hook, socket };
}

test("sends the task once the socket opens and follows the events to the result", () => {
  const { hook, socket } = started();
  expect(hook.result.current.state.status).toBe("connecting");
  expect(socket.sent).toEqual([]);
  act(() => socket.open());
  expect(socket.sent).toEqual([request]);

  act(() => socket.emit({ type: "queued", position: 2 }));
  expect(hook.result.current.state).toMatchObject({ status: "queued", position: 2 });
  act(() => socket.emit({ type: "started" }));
  act(() => socket.emit({ type: "token", text: "A yellow" }));
  act(() => socket.emit({ type: "token", text: " sun" }));
  expect(hook.result.current.state).toMatchObject({ status: "running", text: "A yellow sun" });
  act(() => socket.emit({ type: "done", result: describeResult }));
  expect(hook.result.current.state).toMatchObject({ status: "done", text: describeResult.text });
  expect(hook.result.current.state.result).toEqual(describeResult);
});

test("cancel sends a cancel message and the server's answer ends the run", () => {
  const { hook, socket } = started();
  act(() => socket.open());
  act(() => socket.emit({ type: "started" }));
  act(() => hook.result.current.cancel());
  expect(socket.sent.at(-1)).toEqual({ type: "cancel" });
  act(() => socket.emit({ type: "cancelled" }));
  expect(hook.result.current.state.status).toBe("cancelled");
});

test("the socket is reused for the next task", () => {
  const { hook, socket } = started();
  act(() => socket.open());
  act(() => socket.emit({ type: "done", result: describeResult }));
  act(() => hook.result.current.run(request));
  expect(FakeSocket.instances).toHaveLength(1);
  expect(socket.sent).toHaveLength(2);
  expect(hook.result.current.state.text).toBe("");
});

test("a dropped connection during a run is an error; afterwards a new socket is opened", () => {
  const { hook, socket } = started();
  act(() => socket.open());
  act(() => socket.emit({ type: "started" }));
  act(() => socket.drop());
  expect(hook.result.current.state).toMatchObject({ status: "error", error: { code: "connection_lost" } });
  act(() => hook.result.current.run(request));
  expect(FakeSocket.instances).toHaveLength(2);
});

test("server errors carry their code, message and field", () => {
  const state = reduceEvent(
    { ...IDLE, status: "running", sentAt: 0, startedAt: 0 },
    { type: "error", code: "queue_full", message: "busy", field: null, request_id: "r-1" },
    5,
  );
  expect(state).toMatchObject({ status: "error", error: { code: "queue_full", message: "busy" }, finishedAt: 5 });
});

test("the stream URL follows the page's scheme and host, and names the image for a load balancer", () => {
  expect(streamUrl({ protocol: "https:", host: "example.org" } as Location)).toBe("wss://example.org/api/v1/stream");
  expect(streamUrl({ protocol: "http:", host: "localhost:8000" } as Location)).toBe("ws://localhost:8000/api/v1/stream");
  expect(streamUrl({ protocol: "http:", host: "h" } as Location, "abc")).toBe("ws://h/api/v1/stream?image=abc");
});

test("a task about another image opens a socket routed for it; the same image keeps the socket", () => {
  const { hook, socket } = started();
  act(() => socket.open());
  act(() => socket.emit({ type: "done", result: describeResult }));
  act(() => hook.result.current.run(request));
  expect(FakeSocket.instances).toHaveLength(1);
  act(() => socket.emit({ type: "done", result: describeResult }));
  act(() => hook.result.current.run({ ...request, image_ids: ["def"] }));
  expect(FakeSocket.instances).toHaveLength(2);
  expect(FakeSocket.instances[0]!.url).toMatch(/\?image=abc$/);
  expect(FakeSocket.instances[1]!.url).toMatch(/\?image=def$/);
  expect(socket.readyState).toBe(WebSocket.CLOSED);
  expect(hook.result.current.state.status).toBe("connecting"); // the old socket's close is no error
});

test("a reset starts the text over: what follows replaces it", () => {
  const { hook, socket } = started();
  act(() => socket.open());
  act(() => socket.emit({ type: "started" }));
  act(() => socket.emit({ type: "token", text: "fast text" }));
  act(() => socket.emit({ type: "reset" }));
  act(() => socket.emit({ type: "token", text: "VLM" }));
  expect(hook.result.current.state.text).toBe("VLM");
});
