import { act, renderHook } from "@testing-library/react";
import { describeResult } from "../test/fixtures";
import { useConversation } from "./useConversation";
import { IDLE, type StreamState } from "./useStream";

const running: StreamState = { ...IDLE, status: "running", text: "It is a" };
const done: StreamState = { ...IDLE, status: "done", text: "It is a sun.", result: describeResult };

function setup() {
  return renderHook(({ stream, selection }) => useConversation(stream, selection), {
    initialProps: { stream: IDLE, selection: "a" },
  });
}

test("an answered question joins the conversation with its answer", () => {
  const hook = setup();
  act(() => {
    // As in the app: the question is noted and the stream starts in one event handler.
    hook.result.current.asked("What is it?");
    hook.rerender({ stream: running, selection: "a" });
  });
  expect(hook.result.current.pendingQuestion).toBe("What is it?");
  expect(hook.result.current.turns).toEqual([]);
  hook.rerender({ stream: done, selection: "a" });
  expect(hook.result.current.turns).toEqual([
    { role: "user", content: "What is it?" },
    { role: "assistant", content: "It is a sun." },
  ]);
  expect(hook.result.current.pendingQuestion).toBeNull();
});

test("a failed or stopped question leaves the conversation as it was", () => {
  const hook = setup();
  act(() => {
    // As in the app: the question is noted and the stream starts in one event handler.
    hook.result.current.asked("What is it?");
    hook.rerender({ stream: running, selection: "a" });
  });
  hook.rerender({ stream: { ...IDLE, status: "cancelled" }, selection: "a" });
  expect(hook.result.current.turns).toEqual([]);
  expect(hook.result.current.pendingQuestion).toBeNull();
});

test("a new selection starts a new conversation, but not in the middle of an answer", () => {
  const hook = setup();
  act(() => {
    // As in the app: the question is noted and the stream starts in one event handler.
    hook.result.current.asked("What is it?");
    hook.rerender({ stream: running, selection: "a" });
  });
  hook.rerender({ stream: done, selection: "a" });
  expect(hook.result.current.turns).toHaveLength(2);
  act(() => {
    // As in the app: the question is noted and the stream starts in one event handler.
    hook.result.current.asked("And now?");
    hook.rerender({ stream: running, selection: "b" });
  });
  expect(hook.result.current.turns).toHaveLength(2); // still answering: kept
  hook.rerender({ stream: done, selection: "b" });
  expect(hook.result.current.turns).toEqual([]);
});
