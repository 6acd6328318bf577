import { useCallback, useEffect, useRef, useState } from "react";
import { streamProtocols, type ErrorBody, type OcrResult, type ServerEvent, type StreamRequest, type TaskResult } from "../api/client";

export type StreamStatus = "idle" | "connecting" | "queued" | "running" | "done" | "error" | "cancelled";

export interface StreamState {
  status: StreamStatus;
  /** Place in the queue while waiting (1 = next). */
  position: number | null;
  /** The text so far: streamed tokens, then the final result's text. */
  text: string;
  result: TaskResult | OcrResult | null;
  error: ErrorBody | null;
  /** A document task's progress: pages done of all. */
  page: { done: number; of: number } | null;
  /** When the request was sent and when generation started (ms since the epoch). */
  sentAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
}

export type SocketFactory = (url: string) => WebSocket;

export const IDLE: StreamState = {
  status: "idle",
  position: null,
  text: "",
  result: null,
  error: null,
  page: null,
  sentAt: null,
  startedAt: null,
  finishedAt: null,
};

export function streamUrl(location: Location = window.location, image: string | null = null): string {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // ?image= lets a load balancer in front of replicas send the socket where that image's encoding is
  // cached (browsers can't put headers on a WebSocket); the service itself ignores it.
  const route = image ? `?image=${encodeURIComponent(image)}` : "";
  return `${scheme}://${location.host}/api/v1/stream${route}`;
}

/** The image (or document) a task is about: what the stream's route names. */
export function routeOf(request: StreamRequest): string | null {
  return request.image_ids?.[0] ?? request.document_id ?? null;
}

/** Applies one server event to the state: the whole protocol in one pure function. */
export function reduceEvent(state: StreamState, event: ServerEvent, now: number): StreamState {
  switch (event.type) {
    case "queued":
      return { ...state, status: "queued", position: event.position };
    case "started":
      return { ...state, status: "running", position: null, startedAt: now };
    case "token":
      return { ...state, text: state.text + event.text };
    case "reset": // what follows replaces the text so far (auto OCR: the VLM takes over, or gives back)
      return { ...state, text: "" };
    case "page":
      return { ...state, page: { done: event.page, of: event.of } };
    case "done":
      return { ...state, status: "done", result: event.result, text: event.result.text, finishedAt: now };
    case "error":
      return {
        ...state,
        status: "error",
        error: { code: event.code, message: event.message, field: event.field, request_id: event.request_id },
        finishedAt: now,
      };
    case "cancelled":
      return { ...state, status: "cancelled", finishedAt: now };
  }
}

export function isActive(status: StreamStatus): boolean {
  return status === "connecting" || status === "queued" || status === "running";
}

/**
 * One WebSocket to /api/v1/stream, reused across tasks: `run` sends a task, `cancel` stops it.
 * The socket factory is injectable so tests can drive the protocol with a fake socket.
 */
export function useStream(createSocket: SocketFactory = (url) => new WebSocket(url, streamProtocols())) {
  const [state, setState] = useState<StreamState>(IDLE);
  const socket = useRef<WebSocket | null>(null);
  const socketRoute = useRef<string | null>(null);
  const activeRef = useRef(false);
  activeRef.current = isActive(state.status);

  const connect = useCallback((route: string | null): WebSocket => {
    const current = socket.current;
    const open = current && (current.readyState === WebSocket.OPEN || current.readyState === WebSocket.CONNECTING);
    if (current && open && socketRoute.current === route) return current;
    if (current && open) {
      // Another image: a socket routed for it (to the replica that has it cached). Only between tasks,
      // so nothing is lost when the old one closes.
      current.onclose = null;
      current.onmessage = null;
      current.close();
    }
    const ws = createSocket(streamUrl(window.location, route));
    socketRoute.current = route;
    ws.onmessage = (message: MessageEvent<string>) => {
      const event = JSON.parse(message.data) as ServerEvent;
      setState((previous) => reduceEvent(previous, event, Date.now()));
    };
    const fail = (code: string, message: string) =>
      setState((previous) => ({ ...previous, status: "error", error: { code, message, field: null, request_id: null }, finishedAt: Date.now() }));
    ws.onclose = () => {
      socket.current = null;
      if (activeRef.current) fail("connection_lost", "connection lost");
    };
    ws.onerror = () => {
      if (ws.readyState !== WebSocket.OPEN) fail("network_error", "server unreachable");
    };
    socket.current = ws;
    return ws;
  }, [createSocket]);

  const run = useCallback(
    (request: StreamRequest) => {
      const ws = connect(routeOf(request));
      const payload = JSON.stringify(request);
      setState({ ...IDLE, status: "connecting", sentAt: Date.now() });
      if (ws.readyState === WebSocket.OPEN) ws.send(payload);
      else ws.addEventListener("open", () => ws.send(payload), { once: true });
    },
    [connect],
  );

  const cancel = useCallback(() => {
    const ws = socket.current;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "cancel" }));
  }, []);

  const reset = useCallback(() => setState(IDLE), []);

  useEffect(() => () => socket.current?.close(), []);

  return { state, run, cancel, reset };
}
