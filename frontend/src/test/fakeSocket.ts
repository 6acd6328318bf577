import type { ServerEvent } from "../api/client";

/** A WebSocket stand-in the test drives by hand: it records what the client sends. */
export class FakeSocket extends EventTarget {
  static instances: FakeSocket[] = [];
  readyState: number = WebSocket.CONNECTING;
  sent: unknown[] = [];
  onmessage: ((event: MessageEvent<string>) => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: (() => void) | null = null;

  constructor(public url: string) {
    super();
    FakeSocket.instances.push(this);
  }

  send(data: string) {
    this.sent.push(JSON.parse(data));
  }

  close() {
    this.readyState = WebSocket.CLOSED;
    this.onclose?.();
  }

  open() {
    this.readyState = WebSocket.OPEN;
    this.dispatchEvent(new Event("open"));
  }

  emit(event: ServerEvent) {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(event) }));
  }

  drop() {
    this.readyState = WebSocket.CLOSED;
    this.onclose?.();
  }
}

export const fakeSocketFactory = (url: string) => new FakeSocket(url) as unknown as WebSocket;
